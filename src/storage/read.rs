//! Reading a whole object across cut connections.
//!
//! A connection that breaks mid-body (reset, early end, a transient
//! error: [`ErrorClass::Retry`]) is resumed with a ranged read from the
//! last byte delivered, pinned to the version the first response named
//! (`If-Match` on S3). The caller sees every byte once, in order, so a
//! hash over the chunks covers the whole object. An idle timeout
//! ([`StorageError::Idle`], the operator's bound on silence) or a changed
//! object ends the read with that error.
//!
//! Resumes are bounded: [`RESUME_BUDGET`] cuts in a row, a connection that
//! delivered [`PROGRESS`] bytes or more wiping the slate. The bookkeeping
//! is [`ResumeState`], pure and unit-tested; [`ResumingRead`] does the I/O.

use super::retry::backoff;
use super::{ByteStream, ErrorClass, ObjectStore, StorageError, StorageResult, with_retries};
use bytes::Bytes;
use futures::StreamExt;
use tracing::warn;

/// Cuts in a row (without [`PROGRESS`] in between) that are resumed.
pub const RESUME_BUDGET: u32 = 5;
/// A connection that delivered this much made progress: earlier cuts are
/// forgiven.
pub const PROGRESS: u64 = 1024 * 1024;
/// Retries of the request that opens (or reopens) the object.
const OPEN_RETRIES: u32 = 2;

/// Where a resumable read stands. No I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeState {
    /// Bytes delivered to the caller: where a resume starts.
    offset: u64,
    /// Size of the whole object, when the first response said.
    size: Option<u64>,
    /// Version named by the first response.
    version: Option<String>,
    /// Bytes delivered by the current connection.
    this_connection: u64,
    /// Cuts since the last connection that made progress.
    cuts: u32,
}

/// The answer to a reopened read does not belong with the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl ResumeState {
    pub fn new(size: Option<u64>, version: Option<String>) -> Self {
        Self {
            offset: 0,
            size,
            version,
            this_connection: 0,
            cuts: 0,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn size(&self) -> Option<u64> {
        self.size
    }

    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Every byte of a known size was delivered.
    pub fn is_complete(&self) -> bool {
        self.size == Some(self.offset)
    }

    /// `n` more bytes arrived. More than the object holds is a mismatch.
    pub fn received(&mut self, n: u64) -> Result<(), Mismatch> {
        self.offset += n;
        self.this_connection += n;
        if self.this_connection >= PROGRESS {
            self.cuts = 0;
        }
        match self.size {
            Some(size) if self.offset > size => Err(Mismatch(format!(
                "{} bytes received from an object of {size}",
                self.offset
            ))),
            _ => Ok(()),
        }
    }

    /// The connection broke: `Some(attempt)` to resume after
    /// [`backoff`]`(attempt)`, `None` when the budget is spent.
    pub fn cut(&mut self) -> Option<u32> {
        if self.cuts >= RESUME_BUDGET {
            return None;
        }
        self.cuts += 1;
        self.this_connection = 0;
        Some(self.cuts - 1)
    }

    /// Check the answer to a resumed read against the first one.
    pub fn reopened(&self, size: Option<u64>, version: Option<&str>) -> Result<(), Mismatch> {
        if let (Some(was), Some(now)) = (self.version.as_deref(), version)
            && was != now
        {
            return Err(Mismatch(format!("version {was} became {now}")));
        }
        if let (Some(was), Some(now)) = (self.size, size)
            && was != now
        {
            return Err(Mismatch(format!("size {was} became {now}")));
        }
        Ok(())
    }
}

/// A whole object, chunk by chunk, resumed after a cut (see the module
/// docs).
pub struct ResumingRead<'a> {
    store: &'a dyn ObjectStore,
    key: &'a str,
    state: ResumeState,
    stream: Option<ByteStream>,
}

impl<'a> ResumingRead<'a> {
    /// Open `key` (retrying transient errors).
    pub async fn open(store: &'a dyn ObjectStore, key: &'a str) -> StorageResult<Self> {
        let read = with_retries(OPEN_RETRIES, || store.get_from(key, 0, None)).await?;
        Ok(Self {
            store,
            key,
            state: ResumeState::new(read.size, read.version),
            stream: Some(read.stream),
        })
    }

    /// Size of the whole object, when the server said.
    pub fn size(&self) -> Option<u64> {
        self.state.size()
    }

    fn changed(&self, Mismatch(detail): Mismatch) -> StorageError {
        StorageError::Changed {
            server: self.store.name().to_string(),
            key: self.key.to_string(),
            detail,
        }
    }

    /// The next chunk, `None` at the end of the object.
    pub async fn next(&mut self) -> StorageResult<Option<Bytes>> {
        loop {
            let mut stream = match self.stream.take() {
                Some(s) => s,
                None if self.state.is_complete() => return Ok(None),
                None => {
                    let offset = self.state.offset();
                    let version = self.state.version().map(str::to_string);
                    let read = with_retries(OPEN_RETRIES, || {
                        self.store.get_from(self.key, offset, version.as_deref())
                    })
                    .await?;
                    self.state
                        .reopened(read.size, read.version.as_deref())
                        .map_err(|m| self.changed(m))?;
                    read.stream
                }
            };
            let error = match stream.next().await {
                Some(Ok(chunk)) => {
                    self.state.received(chunk.len() as u64).map_err(|m| self.changed(m))?;
                    self.stream = Some(stream);
                    return Ok(Some(chunk));
                }
                // All bytes are in: whatever the connection does now is moot.
                _ if self.state.is_complete() => return Ok(None),
                None => match self.state.size() {
                    None => return Ok(None),
                    Some(size) => StorageError::Connection {
                        server: self.store.name().to_string(),
                        detail: format!(
                            "the connection ended after byte {} of {size} of {}",
                            self.state.offset(),
                            self.key
                        ),
                    },
                },
                Some(Err(e)) => e,
            };
            if error.class() != ErrorClass::Retry {
                return Err(error);
            }
            let Some(attempt) = self.state.cut() else {
                return Err(error);
            };
            let delay = backoff(attempt);
            warn!(
                key = self.key,
                offset = self.state.offset(),
                "Download cut; resuming from byte {} in {delay:?}: {error}",
                self.state.offset()
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_start_at_the_last_byte_delivered() {
        let mut s = ResumeState::new(Some(100), Some("\"e1\"".into()));
        s.received(40).unwrap();
        assert_eq!(s.cut(), Some(0));
        assert_eq!(s.offset(), 40, "a resume asks for byte 40 onwards");
        s.reopened(Some(100), Some("\"e1\"")).unwrap();
        s.received(60).unwrap();
        assert!(s.is_complete());
        assert_eq!(s.offset(), 100);
    }

    #[test]
    fn cuts_without_progress_are_bounded() {
        let mut s = ResumeState::new(Some(10 * PROGRESS), None);
        let attempts: Vec<Option<u32>> = (0..=RESUME_BUDGET).map(|_| s.cut()).collect();
        let mut expected: Vec<Option<u32>> = (0..RESUME_BUDGET).map(Some).collect();
        expected.push(None);
        assert_eq!(attempts, expected);
        assert_eq!(s.cut(), None, "a spent budget stays spent");
    }

    #[test]
    fn a_connection_that_makes_progress_forgives_earlier_cuts() {
        let mut s = ResumeState::new(Some(10 * PROGRESS), None);
        for _ in 0..RESUME_BUDGET - 1 {
            s.cut().unwrap();
        }
        // Small gains on each connection do not reset the count ...
        s.received(PROGRESS - 1).unwrap();
        assert_eq!(s.cut(), Some(RESUME_BUDGET - 1));
        assert_eq!(s.cut(), None);
        // ... a connection that delivers PROGRESS bytes does.
        let mut s = ResumeState::new(Some(10 * PROGRESS), None);
        for _ in 0..RESUME_BUDGET {
            s.cut().unwrap();
        }
        s.received(PROGRESS).unwrap();
        assert_eq!(s.cut(), Some(0));
    }

    #[test]
    fn another_version_or_size_is_a_mismatch() {
        let mut s = ResumeState::new(Some(100), Some("\"e1\"".into()));
        assert!(s.reopened(Some(100), Some("\"e2\"")).is_err());
        assert!(s.reopened(Some(99), Some("\"e1\"")).is_err());
        s.reopened(Some(100), None).unwrap();
        s.reopened(None, Some("\"e1\"")).unwrap();
        assert!(s.received(101).is_err(), "more bytes than the object holds");
        // Without a known size, the end of the stream is the end.
        let mut s = ResumeState::new(None, None);
        s.received(5).unwrap();
        assert!(!s.is_complete());
    }
}
