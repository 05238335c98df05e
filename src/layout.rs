//! The object layout: the one place that formats and parses archive keys,
//! their checksum sidecars and the prefix an installation owns.
//!
//! Two layouts share the bucket namespace:
//!
//! - standalone: `{host_id}/{YYYY}/{MM}/{DD}/{site}-backup-{YYYYMMDD-HHMMSS}[-N].tar.zst`
//! - node mode: `{node_uuid}/{site_uuid}/{site}_{YYYYMMDD_HHMMSS}[-N].tar.zst`
//!
//! `-N` (N ≥ 1) is added in the rare case two archives of a site get the
//! same second. Site names may themselves contain `-backup-` or `_`, so
//! keys are parsed from the end: the time stamp has a fixed shape, and
//! whatever precedes its separator is the site.
//!
//! Nothing here touches the network, the catalog or the configuration.

use chrono::{DateTime, NaiveDateTime, Utc};
use std::fmt;

/// Every archive key ends with this.
pub const ARCHIVE_SUFFIX: &str = ".tar.zst";
/// Name of the owner marker under a prefix.
pub const OWNER_MARKER: &str = ".sitebackup-owner";
/// Suffix of the checksum sidecar stored next to each archive.
pub const SIDECAR_SUFFIX: &str = ".sha256";

const STANDALONE_SEP: &str = "-backup-";
const STANDALONE_STAMP: &str = "%Y%m%d-%H%M%S";
const NODE_STAMP: &str = "%Y%m%d_%H%M%S";
/// Both stamp formats are 15 characters.
const STAMP_LEN: usize = 15;

/// Names used in object keys (sites, host ids): `[A-Za-z0-9._-]+`, not
/// starting with a dot (a leading dot names a hidden directory on a
/// `local` target and `.`/`..` walk out of it).
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A UUID in its canonical lower-case hyphenated text form, as the master
/// hands them out. Only the shape is checked.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The part of the bucket one installation writes under: `{host_id}/` in
/// standalone mode, `{node_uuid}/` in node mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Host(String),
    Node(String),
}

impl Owner {
    /// The key prefix, with its trailing slash.
    pub fn prefix(&self) -> String {
        match self {
            Owner::Host(h) => format!("{h}/"),
            Owner::Node(n) => format!("{n}/"),
        }
    }

    /// The owner marker's key, `{prefix}.sitebackup-owner` (see
    /// [`crate::install`]).
    pub fn marker_key(&self) -> String {
        format!("{}{OWNER_MARKER}", self.prefix())
    }

    /// The owner a key lies under, from its first segment (`None` for a
    /// key without one). Whether it is a host or a node prefix is told by
    /// the shape of the archive keys, which the caller knows.
    pub fn of_prefix_of(key: &str, node: bool) -> Option<Owner> {
        let (first, _) = key.split_once('/')?;
        (!first.is_empty()).then(|| {
            if node {
                Owner::Node(first.to_string())
            } else {
                Owner::Host(first.to_string())
            }
        })
    }
}

/// The stable identity of a storage location: the endpoint and bucket
/// (`local` and the directory for a `local` target). Catalog rows and usage
/// are keyed by it, so renumbering servers keeps their history, and a node
/// and the master name a provider the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ServerRef {
    pub endpoint: String,
    pub bucket: String,
}

impl ServerRef {
    pub fn new(endpoint: impl Into<String>, bucket: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            bucket: bucket.into(),
        }
    }
}

impl fmt::Display for ServerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.endpoint == LOCAL_ENDPOINT {
            write!(f, "local:{}", self.bucket)
        } else {
            write!(f, "{}/{}", self.endpoint, self.bucket)
        }
    }
}

/// The `endpoint` of a `local` directory target.
pub const LOCAL_ENDPOINT: &str = "local";

/// Where in the layout an archive sits: which installation, and in node
/// mode which site uuid.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Placement {
    Standalone { host_id: String },
    Node { node_uuid: String, site_uuid: String },
}

/// One archive's object key, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchiveKey {
    placement: Placement,
    site: String,
    /// Whole seconds, UTC.
    created_at: DateTime<Utc>,
    /// 0 for the plain key, N for the `-N` variant.
    seq: u32,
}

impl ArchiveKey {
    /// A standalone key. `site` and `host_id` must satisfy [`is_safe_name`]
    /// (the validated configuration guarantees it).
    pub fn standalone(host_id: &str, site: &str, at: DateTime<Utc>) -> Self {
        Self::new(
            Placement::Standalone {
                host_id: host_id.to_string(),
            },
            site,
            at,
        )
    }

    /// A node-mode key.
    pub fn node(node_uuid: &str, site_uuid: &str, site: &str, at: DateTime<Utc>) -> Self {
        Self::new(
            Placement::Node {
                node_uuid: node_uuid.to_string(),
                site_uuid: site_uuid.to_string(),
            },
            site,
            at,
        )
    }

    /// A key at `placement` (standalone or node layout).
    pub fn new(placement: Placement, site: &str, at: DateTime<Utc>) -> Self {
        let created_at = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
        Self {
            placement,
            site: site.to_string(),
            created_at,
            seq: 0,
        }
    }

    /// The same key with the `-N` variant (0 = none).
    pub fn with_seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }

    /// Parse a key in either layout. `None` for anything that is not an
    /// archive key of ours (sidecars, markers, foreign objects).
    pub fn parse(key: &str) -> Option<Self> {
        let (dir, file) = key.rsplit_once('/')?;
        let stem = file.strip_suffix(ARCHIVE_SUFFIX)?;
        let segments: Vec<&str> = dir.split('/').collect();
        match segments.as_slice() {
            [host, yyyy, mm, dd] => {
                let (site, created_at, seq) = split_stem(stem, STANDALONE_SEP, STANDALONE_STAMP)?;
                let dated = created_at.format("%Y/%m/%d").to_string();
                if !is_safe_name(host) || dated != format!("{yyyy}/{mm}/{dd}") {
                    return None;
                }
                Some(Self {
                    placement: Placement::Standalone {
                        host_id: (*host).to_string(),
                    },
                    site,
                    created_at,
                    seq,
                })
            }
            [node, site_uuid] => {
                let (site, created_at, seq) = split_stem(stem, "_", NODE_STAMP)?;
                if !is_safe_name(node) || !is_safe_name(site_uuid) {
                    return None;
                }
                Some(Self {
                    placement: Placement::Node {
                        node_uuid: (*node).to_string(),
                        site_uuid: (*site_uuid).to_string(),
                    },
                    site,
                    created_at,
                    seq,
                })
            }
            _ => None,
        }
    }

    /// Parse a key that must lie under `owner`'s prefix.
    pub fn parse_under(owner: &Owner, key: &str) -> Option<Self> {
        Self::parse(key).filter(|k| &k.owner() == owner)
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The installation this key belongs to.
    pub fn owner(&self) -> Owner {
        match &self.placement {
            Placement::Standalone { host_id } => Owner::Host(host_id.clone()),
            Placement::Node { node_uuid, .. } => Owner::Node(node_uuid.clone()),
        }
    }

    /// The key of this archive's checksum sidecar.
    pub fn sidecar(&self) -> String {
        sidecar_key(&self.to_string())
    }
}

/// `(site, created_at, seq)` from `{site}{sep}{stamp}[-N]`.
fn split_stem(stem: &str, sep: &str, stamp_format: &str) -> Option<(String, DateTime<Utc>, u32)> {
    // An optional `-N` after the stamp. The stamp itself contains no `-`
    // in node mode and exactly one at a fixed place in standalone mode, so
    // try "with suffix" first and check the stamp's shape.
    let candidates = match stem.rsplit_once('-') {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0') => {
            vec![(head, n.parse::<u32>().ok()?), (stem, 0)]
        }
        _ => vec![(stem, 0)],
    };
    for (body, seq) in candidates {
        let Some(split) = body.len().checked_sub(STAMP_LEN) else {
            continue;
        };
        let (Some(head), Some(stamp)) = (body.get(..split), body.get(split..)) else {
            continue;
        };
        let Some(site) = head.strip_suffix(sep) else {
            continue;
        };
        let Ok(at) = NaiveDateTime::parse_from_str(stamp, stamp_format) else {
            continue;
        };
        if !is_safe_name(site) || at.format(stamp_format).to_string() != stamp {
            continue;
        }
        return Some((site.to_string(), at.and_utc(), seq));
    }
    None
}

impl fmt::Display for ArchiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = if self.seq == 0 {
            String::new()
        } else {
            format!("-{}", self.seq)
        };
        let at = self.created_at;
        match &self.placement {
            Placement::Standalone { host_id } => write!(
                f,
                "{host_id}/{}/{}{STANDALONE_SEP}{}{seq}{ARCHIVE_SUFFIX}",
                at.format("%Y/%m/%d"),
                self.site,
                at.format(STANDALONE_STAMP)
            ),
            Placement::Node { node_uuid, site_uuid } => write!(
                f,
                "{node_uuid}/{site_uuid}/{}_{}{seq}{ARCHIVE_SUFFIX}",
                self.site,
                at.format(NODE_STAMP)
            ),
        }
    }
}

/// Key of the checksum sidecar stored next to an archive, in `sha256sum`
/// format. S3 cannot add metadata when a multipart upload completes, and
/// the checksum is only known then.
pub fn sidecar_key(key: &str) -> String {
    format!("{key}{SIDECAR_SUFFIX}")
}

/// The archive key a sidecar key belongs to.
pub fn sidecar_owner(key: &str) -> Option<&str> {
    key.strip_suffix(SIDECAR_SUFFIX)
}

/// The site an archive key belongs to, whatever the layout.
pub fn site_of_key(key: &str) -> Option<String> {
    ArchiveKey::parse(key).map(|k| k.site)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 12, 25, 8, 30, 0).unwrap()
    }

    #[test]
    fn standalone_keys_follow_the_contract() {
        let k = ArchiveKey::standalone("wp-server-1", "zimpricecheck", at());
        assert_eq!(
            k.to_string(),
            "wp-server-1/2024/12/25/zimpricecheck-backup-20241225-083000.tar.zst"
        );
        assert_eq!(
            k.clone().with_seq(2).to_string(),
            "wp-server-1/2024/12/25/zimpricecheck-backup-20241225-083000-2.tar.zst"
        );
        assert_eq!(
            k.sidecar(),
            "wp-server-1/2024/12/25/zimpricecheck-backup-20241225-083000.tar.zst.sha256"
        );
        assert_eq!(k.owner().prefix(), "wp-server-1/");
    }

    #[test]
    fn node_keys_follow_the_contract() {
        let k = ArchiveKey::node(
            "3d298266-633b-48b6-9662-07a1d9ee1c44",
            "a840cad8-9322-4ed1-a2ea-f65b1b14afa7",
            "site.com",
            Utc.with_ymd_and_hms(2025, 12, 27, 8, 21, 33).unwrap(),
        );
        assert_eq!(
            k.to_string(),
            "3d298266-633b-48b6-9662-07a1d9ee1c44/a840cad8-9322-4ed1-a2ea-f65b1b14afa7/site.com_20251227_082133.tar.zst"
        );
        assert_eq!(ArchiveKey::parse(&k.to_string()), Some(k));
    }

    #[test]
    fn a_site_named_like_the_separator_keeps_its_name() {
        // Splitting at the first `-backup-` took this for site `a`, and its
        // upload was aborted under the wrong lock.
        let k = ArchiveKey::standalone("h", "a-backup-b", at());
        assert_eq!(site_of_key(&k.to_string()).as_deref(), Some("a-backup-b"));
        let k = ArchiveKey::node("n", "s", "my_site_20241225_083000", at()).with_seq(3);
        assert_eq!(ArchiveKey::parse(&k.to_string()), Some(k));
    }

    #[test]
    fn foreign_objects_are_not_archives() {
        for key in [
            "h/other.bin",
            "h/2024/12/25/blog-backup-20241225-083000.tar.zst.sha256",
            "h/2024/12/26/blog-backup-20241225-083000.tar.zst", // date dirs disagree
            "h/blog-backup-20241225-083000.tar.zst",
            "h/2024/12/25/blog-backup-2024122-083000.tar.zst",
            "h/2024/12/25/blog-backup-20241225-083000-x.tar.zst",
            "h/2024/12/25/blog-backup-20241225-083000-0.tar.zst",
            "h/2024/12/25/-backup-20241225-083000.tar.zst",
            "h/2024/12/25/blog-backup-20241225-083000.tar.gz",
            "h/2024/13/25/blog-backup-20241325-083000.tar.zst",
            ".x/2024/12/25/blog-backup-20241225-083000.tar.zst",
            "n/s/blog-20241225_083000.tar.zst",
            "n/s/blog_20241225-083000.tar.zst",
            "a/b/c/blog_20241225_083000.tar.zst",
        ] {
            assert_eq!(ArchiveKey::parse(key), None, "{key}");
        }
    }

    #[test]
    fn parse_under_checks_the_owner() {
        let key = ArchiveKey::standalone("web1", "blog", at()).to_string();
        assert!(ArchiveKey::parse_under(&Owner::Host("web1".into()), &key).is_some());
        assert!(ArchiveKey::parse_under(&Owner::Host("web2".into()), &key).is_none());
        assert!(ArchiveKey::parse_under(&Owner::Node("web1".into()), &key).is_none());
    }

    #[test]
    fn names_and_uuids() {
        assert!(is_safe_name("a-b_c.d"));
        for bad in ["", ".", "..", ".x", "a/b", "a b", "é"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(is_uuid("3d298266-633b-48b6-9662-07a1d9ee1c44"));
        assert!(!is_uuid("3D298266-633b-48b6-9662-07a1d9ee1c44"));
        assert!(!is_uuid("3d298266633b48b6966207a1d9ee1c44"));
    }

    fn site_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,40}"
    }

    fn stamp() -> impl Strategy<Value = DateTime<Utc>> {
        // 1970 … 2999
        (0i64..32_503_680_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap())
    }

    proptest! {
        #[test]
        fn standalone_round_trip(site in site_name(), host in site_name(), at in stamp(), seq in 0u32..1000) {
            let k = ArchiveKey::standalone(&host, &site, at).with_seq(seq);
            let parsed = ArchiveKey::parse(&k.to_string());
            prop_assert_eq!(parsed.as_ref(), Some(&k));
            prop_assert_eq!(parsed.as_ref().map(ArchiveKey::site), Some(site.as_str()));
        }

        #[test]
        fn node_round_trip(site in site_name(), at in stamp(), seq in 0u32..1000) {
            let k = ArchiveKey::node(
                "3d298266-633b-48b6-9662-07a1d9ee1c44",
                "a840cad8-9322-4ed1-a2ea-f65b1b14afa7",
                &site,
                at,
            )
            .with_seq(seq);
            let parsed = ArchiveKey::parse(&k.to_string());
            prop_assert_eq!(parsed.as_ref(), Some(&k));
            prop_assert_eq!(parsed.as_ref().map(ArchiveKey::site), Some(site.as_str()));
        }
    }
}
