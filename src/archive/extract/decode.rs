//! The zstd side of extraction: a decoding thread feeding the tar reader
//! through a small bounded channel, with the decoder's window capped at
//! [`MAX_WINDOW_LOG`] so its memory fits the restore's bound.
//!
//! sitebackup's own archives use at most an 8 MiB window (zstd level 19).
//! A frame asking for more — `zstd --long=N`, `--ultra -22` — is refused up
//! front from its header, naming the `--long` setting that decodes it, so
//! the operator can unpack it with stock tools instead.

use std::io::{self, Read};

/// The decoder's largest window: 2^24 = 16 MiB.
pub const MAX_WINDOW_LOG: u32 = 24;

/// Decompressed data crosses from the decoding thread to the tar reader in
/// chunks of this size, at most [`DECODED_QUEUE`] of them in flight.
const DECODED_CHUNK: usize = 256 * 1024;
pub(super) const DECODED_QUEUE: usize = 8;

/// A frame whose window is over [`MAX_WINDOW_LOG`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the archive was compressed with a {} MiB zstd window (`zstd --long={log}` or `--ultra`); sitebackup decodes windows up to {} MiB (`--long={MAX_WINDOW_LOG}`) to bound its memory: unpack it with `zstd -d --long={log}` and tar",
    (1u64 << .log) >> 20,
    (1u64 << MAX_WINDOW_LOG) >> 20
)]
pub struct WindowTooLarge {
    /// log2 of the window the frame needs, rounded up.
    pub log: u32,
}

/// The [`WindowTooLarge`] inside an `io::Error` from the decoder, if any.
pub fn window_too_large(e: &io::Error) -> Option<&WindowTooLarge> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<WindowTooLarge>())
}

/// log2 (rounded up) of the window a zstd frame starting with `head`
/// declares, or `None` when `head` is not the start of a zstd frame.
pub fn frame_window_log(head: &[u8]) -> Option<u32> {
    if head.len() < 6 || head[..4] != [0x28, 0xB5, 0x2F, 0xFD] {
        return None;
    }
    let descriptor = head[4];
    let single_segment = descriptor & 0x20 != 0;
    let window: u64 = if !single_segment {
        let wd = head[5];
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64.checked_shl(log)?;
        base + (base / 8) * u64::from(wd & 7)
    } else {
        // Single segment: the window is the frame content size.
        let dict_len = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
        let fcs_len = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
        let start = 5 + dict_len;
        let field = head.get(start..start + fcs_len)?;
        let mut bytes = [0u8; 8];
        bytes[..fcs_len].copy_from_slice(field);
        let value = u64::from_le_bytes(bytes);
        if fcs_len == 2 { value + 256 } else { value }
    };
    Some(64 - window.max(1).saturating_sub(1).leading_zeros())
}

/// The tar reader's end of the decoding thread's channel.
pub(super) struct Decoded {
    pub(super) rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    pub(super) current: Vec<u8>,
    pub(super) pos: usize,
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The first bytes of `input` (up to a frame header's 18), and the reader
/// that gives them back followed by the rest.
type Peeked<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

fn peek<R: Read>(mut input: R) -> io::Result<(Vec<u8>, Peeked<R>)> {
    let mut head = vec![0u8; 18];
    let mut filled = 0;
    while filled < head.len() {
        match input.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    let peeked = head.clone();
    Ok((peeked, io::Cursor::new(head).chain(input)))
}

/// Decode the whole zstd stream into `tx`; stops when the reader hangs up.
pub(super) fn decode<R: Read>(input: R, tx: std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>) {
    let fail = |e: io::Error| {
        let _ = tx.send(Err(e));
    };
    let (head, input) = match peek(input) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    if let Some(log) = frame_window_log(&head).filter(|log| *log > MAX_WINDOW_LOG) {
        return fail(io::Error::new(io::ErrorKind::InvalidData, WindowTooLarge { log }));
    }
    let mut decoder = match zstd::stream::read::Decoder::new(input) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    // Later frames of a multi-frame stream are held to the same bound.
    if let Err(e) = decoder.window_log_max(MAX_WINDOW_LOG) {
        return fail(e);
    }
    loop {
        let mut chunk = vec![0u8; DECODED_CHUNK];
        let mut filled = 0;
        while filled < chunk.len() {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return fail(e),
            }
        }
        if filled == 0 {
            return;
        }
        chunk.truncate(filled);
        if tx.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(level: i32, long: Option<u32>, data: &[u8], pledged: bool) -> Vec<u8> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level).unwrap();
        if let Some(log) = long {
            enc.long_distance_matching(true).unwrap();
            enc.window_log(log).unwrap();
        }
        if pledged {
            enc.set_pledged_src_size(Some(data.len() as u64)).unwrap();
        } else {
            enc.include_contentsize(false).unwrap();
        }
        std::io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn window_logs_are_read_from_frame_headers() {
        let data = vec![5u8; 100_000];
        // Our level 19 stays within the cap.
        let l19 = frame_window_log(&frame(19, None, &data, false)).unwrap();
        assert!(l19 <= MAX_WINDOW_LOG, "{l19}");
        assert_eq!(frame_window_log(&frame(3, Some(27), &data, false)), Some(27));
        assert_eq!(frame_window_log(&frame(3, Some(31), &data, false)), Some(31));
        // Single segment: the content size.
        assert_eq!(frame_window_log(&frame(3, None, &data, true)), Some(17));
        assert_eq!(frame_window_log(b"not zstd at all"), None);
    }

    #[test]
    fn a_frame_over_the_cap_is_refused_naming_its_long_setting() {
        let data = vec![1u8; 10_000];
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        decode(frame(3, Some(27), &data, false).as_slice(), tx);
        let err = rx.recv().unwrap().unwrap_err();
        let w = window_too_large(&err).expect("WindowTooLarge");
        assert_eq!(w.log, 27);
        assert!(err.to_string().contains("--long=27"), "{err}");
    }
}
