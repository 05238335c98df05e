//! The reading end of a download: a blocking [`Read`] over a bounded tokio
//! channel of [`Bytes`], fed by async code. The mirror of
//! [`PartSink`](super::PartSink); runs on a blocking thread only.

use bytes::{Buf, Bytes};
use std::io::{self, Read};
use tokio::sync::mpsc;

/// Reads the chunks sent on a channel, in order; end of file when every
/// sender is gone.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_chunk_in_order_then_eof() {
        let (tx, rx) = mpsc::channel(2);
        let feeder = std::thread::spawn(move || {
            for chunk in [&b"hello "[..], b"", b"wor", b"ld"] {
                tx.blocking_send(Bytes::copy_from_slice(chunk)).unwrap();
            }
        });
        let mut reader = ChannelReader::new(rx);
        let mut small = [0u8; 4];
        assert_eq!(reader.read(&mut small).unwrap(), 4);
        assert_eq!(&small, b"hell");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"o world");
        assert_eq!(reader.read(&mut small).unwrap(), 0);
        feeder.join().unwrap();
    }
}
