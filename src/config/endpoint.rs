//! S3 endpoint forms: `host`, `host:port` (https), or an explicit
//! `http://host:port` / `https://host` for self-hosted servers.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port]`, no trailing slash.
    url: String,
    /// `host[:port]` as operators wrote it (no scheme).
    display: String,
}

impl Endpoint {
    pub fn parse(input: &str) -> Result<Self, String> {
        let input = input.trim().trim_end_matches('/');
        if input.is_empty() {
            return Err("missing (required)".into());
        }
        let (scheme, rest) = match input.split_once("://") {
            Some((s, rest)) => {
                let s = s.to_ascii_lowercase();
                if s != "http" && s != "https" {
                    return Err(format!(
                        "unsupported scheme {s:?}; use a host name (https) or http://host:port"
                    ));
                }
                (s, rest)
            }
            None => ("https".to_string(), input),
        };
        if rest.is_empty() {
            return Err(format!("{input:?} has no host"));
        }
        if rest.contains('/') || rest.contains('?') || rest.contains('@') || rest.contains(char::is_whitespace) {
            return Err(format!(
                "{input:?} must be a host name with an optional port, without a path, e.g. s3.amazonaws.com"
            ));
        }
        if let Some((host, port)) = rest.rsplit_once(':')
            && !host.ends_with(']')
        {
            if host.is_empty() {
                return Err(format!("{input:?} has no host"));
            }
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(format!("{input:?} has an invalid port {port:?}"));
            }
        }
        Ok(Self {
            url: format!("{scheme}://{rest}"),
            display: rest.to_string(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn is_https(&self) -> bool {
        self.url.starts_with("https://")
    }

    /// AWS endpoints use virtual-hosted addressing; everything else defaults
    /// to path style.
    pub fn is_aws(&self) -> bool {
        let host = self.display.split(':').next().unwrap_or("");
        host == "amazonaws.com" || host.ends_with(".amazonaws.com")
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_host_means_https() {
        let e = Endpoint::parse("t5k4.ldn.idrivee2-61.com").unwrap();
        assert_eq!(e.url(), "https://t5k4.ldn.idrivee2-61.com");
        assert_eq!(e.display(), "t5k4.ldn.idrivee2-61.com");
        assert!(e.is_https());
        assert!(!e.is_aws());
    }

    #[test]
    fn host_and_port_keep_the_port() {
        let e = Endpoint::parse("minio.internal:9000").unwrap();
        assert_eq!(e.url(), "https://minio.internal:9000");
    }

    #[test]
    fn explicit_http_is_allowed() {
        let e = Endpoint::parse("http://127.0.0.1:3900/").unwrap();
        assert_eq!(e.url(), "http://127.0.0.1:3900");
        assert_eq!(e.display(), "127.0.0.1:3900");
        assert!(!e.is_https());
    }

    #[test]
    fn aws_is_detected() {
        assert!(Endpoint::parse("s3.amazonaws.com").unwrap().is_aws());
        assert!(Endpoint::parse("s3.eu-west-3.amazonaws.com").unwrap().is_aws());
        assert!(!Endpoint::parse("notamazonaws.com").unwrap().is_aws());
    }

    #[test]
    fn bad_forms_are_refused() {
        for bad in [
            "",
            "ftp://host",
            "https://",
            "host/path",
            "host:0",
            "host:99999",
            "host:abc",
            "user@host",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
