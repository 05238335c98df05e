//! Secrets of the master: the Fernet key file that encrypts provider keys
//! at rest, and the bearer tokens.
//!
//! The key file holds one Fernet key (URL-safe base64 of 32 bytes) per
//! line. The first line encrypts; every line decrypts (a `MultiFernet`).
//! Two lines exist only while `master rotate-key` runs ([`super::rotate`]).
//! Python's `cryptography.fernet.MultiFernet` reads the same file.
//!
//! A key's id is the first 16 hex digits of the SHA-256 of its text: it
//! names the key in the database (which key encrypted a row) without
//! revealing it.
//!
//! [`Vault`] is what `serve` holds: the key ring, re-read when the file
//! changes, and a cache of decrypted values keyed by ciphertext (a Fernet
//! token is unique per encryption, so the cache is never stale; it is
//! cleared with every key change anyway).

use super::{MasterError, MasterResult};
use crate::protocol::SecretString;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fernet::{Fernet, MultiFernet};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Bytes of randomness in a bearer token (256 bits).
const TOKEN_BYTES: usize = 32;

/// A new bearer token: 256 random bits, URL-safe base64 (43 characters).
pub fn generate_token() -> MasterResult<SecretString> {
    let mut raw = [0u8; TOKEN_BYTES];
    getrandom::getrandom(&mut raw).map_err(|e| MasterError::Crypto(format!("no randomness: {e}")))?;
    Ok(SecretString::new(URL_SAFE_NO_PAD.encode(raw)))
}

/// What the database stores of a token: its SHA-256.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The id of a key (see the module doc).
pub fn key_id(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The keys of the key file, newest first.
pub struct KeyRing {
    /// `(id, key text)`
    keys: Vec<(String, String)>,
    fernets: Vec<Fernet>,
    multi: MultiFernet,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("ids", &self.ids()).finish()
    }
}

impl KeyRing {
    /// A ring of the given key texts (newest first).
    pub fn new(keys: Vec<String>) -> MasterResult<KeyRing> {
        if keys.is_empty() {
            return Err(MasterError::Crypto("no key in the key file".into()));
        }
        let mut fernets = Vec::new();
        let mut multi = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let parse =
                || Fernet::new(k).ok_or_else(|| MasterError::Crypto(format!("line {} is not a Fernet key", i + 1)));
            fernets.push(parse()?);
            multi.push(parse()?);
        }
        Ok(KeyRing {
            keys: keys.into_iter().map(|k| (key_id(&k), k)).collect(),
            fernets,
            multi: MultiFernet::new(multi),
        })
    }

    /// A ring of one new random key.
    pub fn generate() -> MasterResult<KeyRing> {
        KeyRing::new(vec![Fernet::generate_key()])
    }

    /// Parse the key file's text: one key per line, blank lines and `#`
    /// comments ignored.
    pub fn parse(text: &str) -> MasterResult<KeyRing> {
        KeyRing::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        )
    }

    /// Read the key file; refuse one that others may read.
    pub fn load(path: &Path) -> MasterResult<KeyRing> {
        let meta = std::fs::metadata(path)
            .map_err(|e| MasterError::Crypto(format!("{}: {e} (run `sitebackup master init`)", path.display())))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(MasterError::Crypto(format!(
                "{} may be read by others (mode {:o}): run `chmod 600 {}`",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            )));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| MasterError::Crypto(format!("{}: {e}", path.display())))?;
        KeyRing::parse(&text).map_err(|e| MasterError::Crypto(format!("{}: {e}", path.display())))
    }

    /// Write the ring to `path` atomically (0600, fsync, rename, fsync of
    /// the directory).
    pub fn store(&self, path: &Path) -> MasterResult<()> {
        let err = |e: std::io::Error| MasterError::Crypto(format!("{}: {e}", path.display()));
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut text = String::new();
        for (_, k) in &self.keys {
            text.push_str(k);
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(err)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
        Ok(())
    }

    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|(id, _)| id.clone()).collect()
    }

    /// The id of the key that encrypts.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].0
    }

    /// A ring with `newer` in front of these keys.
    pub fn with_new_primary(&self, newer: String) -> MasterResult<KeyRing> {
        let mut keys = vec![newer];
        keys.extend(self.keys.iter().map(|(_, k)| k.clone()));
        KeyRing::new(keys)
    }

    /// A ring of the primary key alone.
    pub fn primary_only(&self) -> MasterResult<KeyRing> {
        KeyRing::new(vec![self.keys[0].1.clone()])
    }

    /// Encrypt with the key of id `id`; `None` when the ring lacks it.
    pub fn encrypt_with(&self, id: &str, plain: &[u8]) -> Option<String> {
        let i = self.keys.iter().position(|(k, _)| k == id)?;
        Some(self.fernets[i].encrypt(plain))
    }

    /// Decrypt with whichever key fits.
    pub fn decrypt(&self, token: &str) -> Option<Vec<u8>> {
        self.multi.decrypt(token).ok()
    }
}

/// What identifies a version of the key file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
    })
}

/// The key ring of a running master (see the module doc).
pub struct Vault {
    path: PathBuf,
    ring: RwLock<Arc<KeyRing>>,
    stamp: Mutex<Option<Stamp>>,
    cache: Mutex<HashMap<String, SecretString>>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub fn open(path: &Path) -> MasterResult<Vault> {
        let st = stamp(path);
        let ring = KeyRing::load(path)?;
        Ok(Vault {
            path: path.to_path_buf(),
            ring: RwLock::new(Arc::new(ring)),
            stamp: Mutex::new(st),
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-read the key file. Returns the new key ids when they changed.
    pub fn reload(&self) -> MasterResult<Option<Vec<String>>> {
        let st = stamp(&self.path);
        let ring = KeyRing::load(&self.path)?;
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = st;
        let ids = ring.ids();
        let mut current = self.ring.write().unwrap_or_else(|p| p.into_inner());
        if current.ids() == ids {
            return Ok(None);
        }
        *current = Arc::new(ring);
        drop(current);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(Some(ids))
    }

    /// Re-read the key file if it changed on disk since the last read.
    pub fn reload_if_changed(&self) -> MasterResult<Option<Vec<String>>> {
        let unchanged = *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) == stamp(&self.path);
        if unchanged { Ok(None) } else { self.reload() }
    }

    /// Encrypt `plain` with the key of id `key_id` (the one the database
    /// names as current), re-reading the key file once when the ring does
    /// not have it yet.
    pub fn seal(&self, key_id: &str, plain: &str) -> MasterResult<String> {
        if let Some(c) = self.ring().encrypt_with(key_id, plain.as_bytes()) {
            return Ok(c);
        }
        self.reload()?;
        self.ring().encrypt_with(key_id, plain.as_bytes()).ok_or_else(|| {
            MasterError::Unavailable(format!(
                "the database expects key {key_id}, which {} does not hold; is a key rotation running?",
                self.path.display()
            ))
        })
    }

    /// Decrypt a stored value (cached), re-reading the key file once when
    /// no key fits.
    pub fn open_secret(&self, token: &str) -> MasterResult<SecretString> {
        if let Some(s) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(token) {
            return Ok(s.clone());
        }
        let plain = match self.ring().decrypt(token) {
            Some(p) => p,
            None => {
                self.reload()?;
                self.ring().decrypt(token).ok_or_else(|| {
                    MasterError::Crypto(format!(
                        "a stored provider key does not decrypt with any key of {}",
                        self.path.display()
                    ))
                })?
            }
        };
        let secret = SecretString::new(
            String::from_utf8(plain).map_err(|_| MasterError::Crypto("a stored provider key is not UTF-8".into()))?,
        );
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(token.to_string(), secret.clone());
        Ok(secret)
    }
}

/// An access key as the admin endpoints show it: a prefix and an ellipsis.
pub fn mask(access_key: &str) -> String {
    let n = access_key.chars().count();
    if n > 8 {
        format!("{}…", access_key.chars().take(4).collect::<String>())
    } else {
        "****".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_long_and_distinct() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(hash_token(a.expose()), hash_token(b.expose()));
    }

    #[test]
    fn ring_round_trips_and_old_keys_still_decrypt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fernet.key");
        let old = KeyRing::generate().unwrap();
        old.store(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let c_old = old.encrypt_with(old.primary_id(), b"s3cret").unwrap();
        let both = old.with_new_primary(Fernet::generate_key()).unwrap();
        both.store(&path).unwrap();
        let loaded = KeyRing::load(&path).unwrap();
        assert_eq!(loaded.ids(), both.ids());
        assert_eq!(loaded.decrypt(&c_old).unwrap(), b"s3cret");
        let only_new = loaded.primary_only().unwrap();
        assert!(only_new.decrypt(&c_old).is_none());
        assert!(!format!("{loaded:?}").contains(&both.keys[0].1));
    }

    #[test]
    fn readable_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        KeyRing::generate().unwrap().store(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyRing::load(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn vault_seals_with_the_named_key_and_follows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let ring = KeyRing::generate().unwrap();
        ring.store(&path).unwrap();
        let vault = Vault::open(&path).unwrap();
        let c = vault.seal(ring.primary_id(), "abc").unwrap();
        assert_eq!(vault.open_secret(&c).unwrap().expose(), "abc");
        let next = ring.with_new_primary(Fernet::generate_key()).unwrap();
        next.store(&path).unwrap();
        // The vault does not know the new key yet: seal re-reads the file.
        let c2 = vault.seal(next.primary_id(), "def").unwrap();
        assert_eq!(vault.open_secret(&c2).unwrap().expose(), "def");
        assert!(matches!(vault.seal("0000", "x"), Err(MasterError::Unavailable(_))));
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA…");
        assert_eq!(mask("short"), "****");
    }
}
