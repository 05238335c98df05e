//! A throttling HTTP/1.1 proxy for transfer tests: forwards to an upstream
//! S3 server on loopback and shapes the bodies of the responses to `GET`s
//! of one kind of object (trickle at a rate, stall once, cut once), and,
//! when asked, the bodies of `PUT` requests (part uploads) to a rate, so
//! that an upload takes as long as a test needs on any machine. Everything
//! else (HEAD, listings, sidecars) passes untouched.
//!
//! Each connection carries one request: the proxy adds `Connection: close`
//! to the request and the response (neither is signed), so it never has to
//! find where one message ends and the next begins. Requests are recorded
//! with their headers for the test to inspect.
//!
//! Bounded: loopback only, at most [`MAX_CONNECTIONS`] connections, stops
//! accepting after [`LIFETIME`] or when the handle is dropped, and every
//! socket read times out after [`IO_TIMEOUT`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_CONNECTIONS: u32 = 256;
pub const LIFETIME: Duration = Duration::from_secs(300);
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How shaped responses are treated.
#[derive(Debug, Clone, Default)]
pub struct Throttle {
    /// Shape the responses to `GET`s whose path ends with this.
    pub path_suffix: String,
    /// Body bytes per second of every shaped response (`None`: full speed).
    pub rate: Option<u64>,
    /// The first shaped response pauses this long after this many body
    /// bytes.
    pub stall: Option<(u64, Duration)>,
    /// The first shaped response is cut (both sockets closed) after this
    /// many body bytes.
    pub cut_after: Option<u64>,
    /// Body bytes per second of every `PUT` request (a part upload or a
    /// small object), per connection; `None`: full speed.
    pub upload_rate: Option<u64>,
}

/// A request the proxy forwarded.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// The request target without its query.
    pub path: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Its response was shaped.
    pub shaped: bool,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

pub struct ThrottleProxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl ThrottleProxy {
    /// A proxy that passes everything through until [`Self::shape`].
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            upstream,
            throttle: Mutex::new(Throttle::default()),
            seen: Mutex::new(Vec::new()),
            shaped: AtomicU32::new(0),
        });
        let proxy = Self {
            url,
            shared: shared.clone(),
            stop: stop.clone(),
        };
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut connections = 0;
            while !stop2.load(Ordering::Relaxed) && started.elapsed() < LIFETIME && connections < MAX_CONNECTIONS {
                match listener.accept() {
                    Ok((client, _)) => {
                        connections += 1;
                        let shared = shared.clone();
                        std::thread::spawn(move || {
                            let _ = shared.serve(client);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        proxy
    }

    /// Shape the responses of requests from now on; the next shaped
    /// response counts as the first.
    pub fn shape(&self, throttle: Throttle) {
        *self.shared.throttle.lock().unwrap() = throttle;
        self.shared.shaped.store(0, Ordering::SeqCst);
    }

    /// Every request forwarded so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests whose responses were shaped.
    pub fn shaped(&self) -> Vec<SeenRequest> {
        self.requests().into_iter().filter(|r| r.shaped).collect()
    }
}

impl Drop for ThrottleProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Shared {
    upstream: String,
    throttle: Mutex<Throttle>,
    seen: Mutex<Vec<SeenRequest>>,
    /// Shaped responses so far: the first one stalls or is cut.
    shaped: AtomicU32,
}

/// Read up to the end of a message head; returns the head (with its
/// blank line) and whatever came after it.
fn read_head(from: &mut TcpStream) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::other("head too long"));
        }
        let n = from.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed in the head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head's first line and its headers (names lower-cased).
fn parse_head(head: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (first, headers)
}

/// The head with any `Connection` header replaced by `Connection: close`.
fn closing(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

impl Shared {
    fn serve(&self, mut client: TcpStream) -> io::Result<()> {
        client.set_nonblocking(false)?;
        client.set_read_timeout(Some(IO_TIMEOUT))?;
        let mut server = TcpStream::connect(&self.upstream)?;
        server.set_read_timeout(Some(IO_TIMEOUT))?;

        let (head, rest) = read_head(&mut client)?;
        let (line, headers) = parse_head(&head);
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default().to_string();
        let throttle = self.throttle.lock().unwrap().clone();
        let is_put = method == "PUT";
        let shaped = method == "GET" && !throttle.path_suffix.is_empty() && path.ends_with(&throttle.path_suffix);
        let first = shaped && self.shaped.fetch_add(1, Ordering::SeqCst) == 0;
        self.seen.lock().unwrap().push(SeenRequest {
            method,
            path,
            headers,
            shaped,
        });
        server.write_all(&closing(&head))?;
        server.write_all(&rest)?;
        // The rest of the request (a part's body) goes up as it comes, or
        // at the upload rate.
        let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
        // (A shaped part must take less than IO_TIMEOUT: the response is
        // awaited with that timeout while the body trickles.)
        let (upload_rate, already) = (throttle.upload_rate.filter(|_| is_put), rest.len() as u64);
        std::thread::spawn(move || {
            let _ = match upload_rate {
                Some(rate) => trickle(&mut c_read, &mut s_write, already, rate),
                None => io::copy(&mut c_read, &mut s_write).map(drop),
            };
        });

        let (head, rest) = read_head(&mut server)?;
        client.write_all(&closing(&head))?;
        let result = if shaped {
            shape(&throttle, &rest, &mut server, &mut client, first)
        } else {
            client
                .write_all(&rest)
                .and_then(|()| io::copy(&mut server, &mut client).map(drop))
        };
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
        result
    }
}

/// Forward a response body under the throttle `t`.
fn shape(t: &Throttle, rest: &[u8], server: &mut TcpStream, client: &mut TcpStream, first: bool) -> io::Result<()> {
    let cut_at = if first { t.cut_after } else { None };
    let mut stall = if first { t.stall } else { None };
    // Pieces of a twentieth of a second at the given rate.
    let piece = t.rate.map_or(64 * 1024, |r| (r / 20).max(1) as usize);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut pending = rest.to_vec();
    let mut buf = vec![0u8; piece];
    loop {
        if pending.is_empty() {
            let n = server.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..n]);
        }
        // The next piece stops at the stall or cut mark, if one is near.
        let mut take = pending.len().min(piece);
        for mark in [stall.map(|(at, _)| at), cut_at].into_iter().flatten() {
            if mark > sent {
                take = take.min((mark - sent) as usize);
            }
        }
        if cut_at.is_some_and(|at| sent >= at) {
            return Ok(());
        }
        if let Some((at, pause)) = stall
            && sent >= at
        {
            std::thread::sleep(pause);
            stall = None;
            continue;
        }
        client.write_all(&pending[..take])?;
        pending.drain(..take);
        sent += take as u64;
        if let Some(rate) = t.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
}

/// Copy `from` to `to` at `rate` bytes per second, counting `already`
/// bytes as sent at the start, in pieces of a twentieth of a second.
fn trickle(from: &mut TcpStream, to: &mut TcpStream, already: u64, rate: u64) -> io::Result<()> {
    let mut buf = vec![0u8; (rate / 20).max(1) as usize];
    let started = Instant::now();
    let mut sent = already;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        sent += n as u64;
        let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}
