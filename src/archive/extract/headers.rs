//! A guard between the zstd decoder and the `tar` reader that caps the
//! extension headers `tar` would buffer whole: GNU long names (`L`) and
//! long link names (`K`), pax extended (`x`) and global (`g`) headers. The
//! `tar` crate reads such an entry's data into one `Vec` with no limit, so
//! a 12 KB object decompressing to a 400 MB long name took gigabytes.
//!
//! The guard passes every byte through unchanged and follows the stream's
//! layout the way `tar` does (header blocks, data padded to 512 bytes, a
//! pax `size` overriding the next entry's header size, GNU sparse
//! extension blocks), using `tar`'s own header parsing. An extension
//! header larger than [`MAX_EXTENSION`] ends the read with [`TooLarge`] in
//! an `io::Error`, before any of its data reaches `tar`. After a zero
//! block (the end of the archive for `tar`) bytes pass unexamined.

use std::io::{self, Read};

/// Largest GNU long name, long link or pax header accepted.
pub const MAX_EXTENSION: u64 = 64 * 1024;

const BLOCK: usize = 512;

/// An extension header over [`MAX_EXTENSION`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {what} of {size} bytes (at most {MAX_EXTENSION} are accepted)")]
pub struct TooLarge {
    pub what: &'static str,
    pub size: u64,
}

/// The [`TooLarge`] inside an `io::Error` the guard returned, if it is one.
pub fn too_large(e: &io::Error) -> Option<&TooLarge> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<TooLarge>())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a header block.
    Header,
    /// Collecting a GNU sparse extension block.
    SparseExt { data: u64 },
    /// Passing `block[pos..]` on, then going to `then`.
    Emit { pos: usize, then: After },
    /// Passing entry data on (`data` bytes, then `pad` bytes of padding).
    Data { data: u64, pad: u64, capture: bool },
    /// After the end of the archive, or a header `tar` will reject.
    Through,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Data { data: u64, capture: bool },
    SparseExt { data: u64 },
    Through,
}

pub struct HeaderGuard<R> {
    inner: R,
    state: State,
    block: [u8; BLOCK],
    filled: usize,
    /// The data of the pax header being read.
    pax: Vec<u8>,
    /// `size` of the last pax header, for the next ordinary entry.
    pax_size: Option<u64>,
}

impl<R: Read> HeaderGuard<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            state: State::Header,
            block: [0; BLOCK],
            filled: 0,
            pax: Vec::new(),
            pax_size: None,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Fill `self.block`; `false` at EOF before it is full.
    fn fill_block(&mut self) -> io::Result<bool> {
        while self.filled < BLOCK {
            match self.inner.read(&mut self.block[self.filled..]) {
                Ok(0) => return Ok(false),
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// What follows the header in `self.block`.
    fn after_header(&mut self) -> io::Result<After> {
        if self.block.iter().all(|b| *b == 0) {
            return Ok(After::Through);
        }
        let header = tar::Header::from_byte_slice(&self.block);
        let kind = header.entry_type();
        let Ok(mut size) = header.entry_size() else {
            return Ok(After::Through);
        };
        let what = if kind.is_gnu_longname() {
            Some("GNU long name")
        } else if kind.is_gnu_longlink() {
            Some("GNU long link name")
        } else if kind.is_pax_local_extensions() {
            Some("pax extended header")
        } else if kind.is_pax_global_extensions() {
            Some("pax global header")
        } else {
            None
        };
        if let Some(what) = what {
            if size > MAX_EXTENSION {
                return Err(io::Error::new(io::ErrorKind::InvalidData, TooLarge { what, size }));
            }
        } else if let Some(pax) = self.pax_size.take() {
            size = pax;
        }
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        let capture = recognized && kind.is_pax_local_extensions();
        if kind.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended()) {
            return Ok(After::SparseExt { data: size });
        }
        Ok(After::Data { data: size, capture })
    }

    fn start_data(&mut self, data: u64, capture: bool) {
        let pad = (BLOCK as u64 - data % BLOCK as u64) % BLOCK as u64;
        self.pax.clear();
        self.state = State::Data { data, pad, capture };
    }

    /// The pax header just read is complete: remember its `size`, as
    /// `tar` does (the first `size` record; none if a record before it is
    /// malformed).
    fn end_pax(&mut self) {
        let mut size = None;
        for ext in tar::PaxExtensions::new(&self.pax) {
            let Ok(ext) = ext else { break };
            if ext.key() != Ok("size") {
                continue;
            }
            size = ext.value().ok().and_then(|v| v.parse::<u64>().ok());
            break;
        }
        self.pax_size = size;
        self.pax.clear();
    }
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Through => return self.inner.read(buf),
                State::Header | State::SparseExt { .. } => {
                    let full = self.fill_block()?;
                    if !full {
                        if self.filled == 0 {
                            return Ok(0);
                        }
                        // A truncated block: `tar` reports it.
                        self.state = State::Emit {
                            pos: 0,
                            then: After::Through,
                        };
                        continue;
                    }
                    let then = match self.state {
                        State::SparseExt { data } => {
                            // `isextended` of a GnuExtSparseHeader.
                            if self.block[504] == 1 {
                                After::SparseExt { data }
                            } else {
                                After::Data { data, capture: false }
                            }
                        }
                        _ => self.after_header()?,
                    };
                    self.state = State::Emit { pos: 0, then };
                }
                State::Emit { pos, then } => {
                    let n = (self.filled - pos).min(buf.len());
                    buf[..n].copy_from_slice(&self.block[pos..pos + n]);
                    if pos + n < self.filled {
                        self.state = State::Emit { pos: pos + n, then };
                    } else {
                        self.filled = 0;
                        match then {
                            After::Through => self.state = State::Through,
                            After::SparseExt { data } => self.state = State::SparseExt { data },
                            After::Data { data, capture } => self.start_data(data, capture),
                        }
                    }
                    return Ok(n);
                }
                State::Data { data, pad, capture } => {
                    if data == 0 && pad == 0 {
                        if capture {
                            self.end_pax();
                        }
                        self.state = State::Header;
                        continue;
                    }
                    let want = if data > 0 { data } else { pad };
                    let len = buf.len().min(usize::try_from(want).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..len])?;
                    if n == 0 {
                        return Ok(0);
                    }
                    if data > 0 {
                        if capture {
                            self.pax.extend_from_slice(&buf[..n]);
                        }
                        self.state = State::Data {
                            data: data - n as u64,
                            pad,
                            capture,
                        };
                    } else {
                        self.state = State::Data {
                            data,
                            pad: pad - n as u64,
                            capture,
                        };
                    }
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar stream with a GNU long name of `len` bytes before a file.
    fn long_name_tar(len: usize) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(len as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        out.extend(std::iter::repeat_n(b'a', len));
        out.resize(out.len().div_ceil(512) * 512, 0);
        let mut b = tar::Builder::new(Vec::new());
        let mut f = tar::Header::new_gnu();
        f.set_path("x").unwrap();
        f.set_size(3);
        f.set_cksum();
        b.append(&f, &b"abc"[..]).unwrap();
        out.extend(b.into_inner().unwrap());
        out
    }

    fn entries(data: &[u8]) -> io::Result<Vec<(Vec<u8>, u64)>> {
        let mut a = tar::Archive::new(HeaderGuard::new(data));
        let mut out = Vec::new();
        for e in a.entries()? {
            let e = e?;
            out.push((e.path_bytes().into_owned(), e.size()));
        }
        Ok(out)
    }

    #[test]
    fn long_names_up_to_the_cap_pass_and_bigger_ones_stop_before_tar_reads_them() {
        let ok = entries(&long_name_tar(MAX_EXTENSION as usize)).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].0.len(), MAX_EXTENSION as usize);
        let err = entries(&long_name_tar(MAX_EXTENSION as usize + 1)).unwrap_err();
        let big = too_large(&err).expect("a TooLarge error");
        assert_eq!(big.what, "GNU long name");
        assert_eq!(big.size, MAX_EXTENSION + 1);
    }

    #[test]
    fn a_pax_size_moves_the_next_header_like_tar_does() {
        // A pax header says the next file has 1024 bytes although its ustar
        // header says 0; the guard must follow, or a long name hidden in
        // that data would pass unexamined.
        let mut b = tar::Builder::new(Vec::new());
        let mut pax = Vec::new();
        pax.extend_from_slice(b"13 size=1024\n");
        let mut h = tar::Header::new_ustar();
        h.set_path("././@PaxHeader").unwrap();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(pax.len() as u64);
        h.set_cksum();
        b.append(&h, pax.as_slice()).unwrap();
        let mut f = tar::Header::new_ustar();
        f.set_path("hidden").unwrap();
        f.set_size(0);
        f.set_cksum();
        let mut data = b.into_inner().unwrap();
        // Drop the builder's end-of-archive blocks; then the file header,
        // 1024 bytes of content that look like the end of an archive to
        // whoever ignores the pax size, and a long-name bomb after them.
        data.truncate(data.len() - 1024);
        data.extend_from_slice(f.as_bytes());
        data.extend_from_slice(&[0u8; 1024]);
        data.extend_from_slice(&long_name_tar(MAX_EXTENSION as usize + 1));
        let err = entries(&data).unwrap_err();
        assert!(too_large(&err).is_some(), "{err}");
    }

    #[test]
    fn ordinary_archives_pass_through_unchanged() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, len) in [("a", 0usize), ("b/c", 511), ("d", 512), ("e", 70_000)] {
            let mut h = tar::Header::new_gnu();
            h.set_path(name).unwrap();
            h.set_size(len as u64);
            h.set_cksum();
            b.append(&h, vec![7u8; len].as_slice()).unwrap();
        }
        let long = "x/".repeat(200);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, &long, &b"z"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let mut through = Vec::new();
        HeaderGuard::new(data.as_slice()).read_to_end(&mut through).unwrap();
        assert_eq!(through, data);
        let names: Vec<_> = entries(&data).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 5);
        assert_eq!(names[4], long.as_bytes());
    }
}
