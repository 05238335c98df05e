//! A string that must never be printed: credentials and passwords.
//!
//! `Secret` has no `Display`, and its `Debug` prints a fixed placeholder, so a
//! stray `{:?}` in a log line or an error cannot leak it. It deserializes
//! from a plain string, so the TOML mirror (`Raw*`) holds secrets (keys,
//! passwords, hook commands) as `Secret` from the start.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret's value. Call this only where the value is handed to the
    /// thing that needs it (a signer, a child process's defaults file).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, non-reversible hint for operators: the first four characters
    /// of an access key id, which is not itself a secret but is still not
    /// printed whole.
    pub fn hint(&self) -> String {
        let prefix: String = self.0.chars().take(4).collect();
        if self.0.chars().count() > 8 {
            format!("{prefix}…")
        } else {
            "<set>".to_string()
        }
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("wJalrXUtnFEMI/K7MDENG");
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains("wJalr"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn hint_shows_only_a_prefix_of_long_values() {
        assert_eq!(Secret::new("AKIAIOSFODNN7EXAMPLE").hint(), "AKIA…");
        assert_eq!(Secret::new("short").hint(), "<set>");
    }
}
