//! Writers at the end of the archive stream: SHA-256 + byte count, and the
//! cutter that turns the stream into multipart parts on a bounded channel.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use tokio::sync::mpsc;

/// Counts and hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The writer, the hex SHA-256 and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// S3 allows at most this many parts per upload.
pub const MAX_PARTS: u32 = 10_000;
/// The part size doubles every this many parts, so an archive far larger
/// than estimated still fits in [`MAX_PARTS`].
const GROW_EVERY: u32 = 2_000;

/// Cuts the stream into parts and hands each to the uploader through a
/// bounded channel; `blocking_send` is the back-pressure that bounds memory.
/// Runs on a blocking thread only.
pub struct PartSink {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    part_size: usize,
    parts_sent: u32,
}

impl PartSink {
    pub fn new(tx: mpsc::Sender<Bytes>, part_size: usize) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(part_size),
            part_size,
            parts_sent: 0,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.parts_sent >= MAX_PARTS {
            return Err(io::Error::other(format!(
                "archive needs more than {MAX_PARTS} parts; raise upload.part_size_mb"
            )));
        }
        let next_size = if (self.parts_sent + 1).is_multiple_of(GROW_EVERY) {
            self.part_size.saturating_mul(2)
        } else {
            self.part_size
        };
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(next_size));
        self.part_size = next_size;
        self.parts_sent += 1;
        self.tx
            .blocking_send(Bytes::from(full))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }

    /// Send the last (possibly short) part and close the channel.
    pub fn finish(mut self) -> io::Result<u32> {
        if !self.buf.is_empty() || self.parts_sent == 0 {
            self.send()?;
        }
        Ok(self.parts_sent)
    }
}

impl Write for PartSink {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        while !data.is_empty() {
            let room = self.part_size - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == self.part_size {
                self.send()?;
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
