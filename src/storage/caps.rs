//! Optional S3 calls: which ones a server implements, as far as this
//! process has seen.
//!
//! Providers implement different subsets of S3 (see the README's provider
//! matrix). The calls a backup cannot do without — create, put part,
//! complete and abort a multipart upload, get, head, list objects, put and
//! delete — are **essential**: a server that does not implement one fails
//! loudly ([`super::StorageError::Unsupported`], which fails over). The
//! others are **optional**; a `501 NotImplemented` (or the provider's
//! equivalent) on one of them marks it unsupported on that server for the
//! rest of the run, and the caller carries on without it:
//!
//! - `ListMultipartUploads`: reconcile still imports, marks and fixes from
//!   the object listing and reports the open uploads as not listable;
//!   uploads whose ids the catalog recorded are aborted by id (start-up
//!   clean-up never lists).
//! - Part checksums (`x-amz-checksum-crc32c`): parts go unchecked by the
//!   server; the archive's SHA-256 is still checked end to end.
//!
//! A store learns these as it goes (the first answer decides), and
//! [`probe`] asks on purpose, for `servers`.

use super::{ObjectStore, StorageError};
use serde::Serialize;
use std::sync::atomic::{AtomicU8, Ordering};

/// Whether a server implements an optional call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Not asked yet in this process.
    #[default]
    Unknown,
    Supported,
    /// It answered `501 NotImplemented` (or the like).
    Unsupported,
}

impl Support {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Support::Supported,
            2 => Support::Unsupported,
            _ => Support::Unknown,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Support::Unknown => 0,
            Support::Supported => 1,
            Support::Unsupported => 2,
        }
    }

    /// `yes`, `no` or `unknown`, for people.
    pub fn word(self) -> &'static str {
        match self {
            Support::Unknown => "unknown",
            Support::Supported => "yes",
            Support::Unsupported => "no",
        }
    }
}

/// The optional calls of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Capabilities {
    /// `ListMultipartUploads`: finding open uploads nobody recorded.
    pub list_uploads: Support,
    /// `x-amz-checksum-crc32c` on parts, checked and echoed by the server.
    pub part_checksums: Support,
}

impl Capabilities {
    /// Every optional call (a store that implements them all itself).
    pub const ALL: Capabilities = Capabilities {
        list_uploads: Support::Supported,
        part_checksums: Support::Supported,
    };
}

/// What a store has learnt about its server's optional calls; shared by
/// every request of the process. The first answer decides: once
/// unsupported, the call is not tried again in this run.
#[derive(Debug, Default)]
pub struct CapabilityState {
    list_uploads: AtomicU8,
    part_checksums: AtomicU8,
}

impl CapabilityState {
    pub fn get(&self) -> Capabilities {
        Capabilities {
            list_uploads: Support::from_u8(self.list_uploads.load(Ordering::Relaxed)),
            part_checksums: Support::from_u8(self.part_checksums.load(Ordering::Relaxed)),
        }
    }

    /// Record what ListMultipartUploads answered; unsupported sticks.
    pub fn set_list_uploads(&self, s: Support) {
        set(&self.list_uploads, s);
    }

    /// Record what part checksums did; unsupported sticks.
    pub fn set_part_checksums(&self, s: Support) {
        set(&self.part_checksums, s);
    }
}

fn set(cell: &AtomicU8, s: Support) {
    let new = s.to_u8();
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        (Support::from_u8(old) != Support::Unsupported).then_some(new)
    });
}

/// Ask the server about its optional calls with read-only requests (for
/// `servers`): lists the open uploads under `prefix`. Part checksums are
/// only learnt by uploading, so they stay as the store knows them.
pub async fn probe(store: &dyn ObjectStore, prefix: &str) -> Capabilities {
    match store.list_multipart(prefix).await {
        Ok(_) | Err(StorageError::Unsupported { .. }) => {}
        Err(e) => tracing::debug!(server = store.name(), "Open uploads could not be listed: {e}"),
    }
    store.capabilities()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_sticks_for_the_run() {
        let s = CapabilityState::default();
        assert_eq!(s.get(), Capabilities::default());
        s.set_list_uploads(Support::Supported);
        assert_eq!(s.get().list_uploads, Support::Supported);
        s.set_list_uploads(Support::Unsupported);
        s.set_list_uploads(Support::Supported);
        assert_eq!(s.get().list_uploads, Support::Unsupported);
        assert_eq!(s.get().part_checksums, Support::Unknown);
        s.set_part_checksums(Support::Unsupported);
        assert_eq!(s.get().part_checksums, Support::Unsupported);
    }
}
