//! An HTTP/1.1-aware fault proxy for S3 on loopback: it reads each request
//! whole (head + `Content-Length` body), forwards it to the upstream on a
//! fresh connection (`Connection: close`), and sends the response back,
//! except where a [`Fault`] says otherwise. Requests are counted, so a test
//! can assert what the client did. Lives until the test process exits.
//!
//! It also serves as an HTTP forward proxy (`http_proxy=`): a request in
//! absolute form (`GET http://bucket.s3.localhost:P/key`) goes to the same
//! upstream in origin form with its `Host` header as it is, which is how a
//! test reaches virtual-hosted-style names that do not resolve here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// What to do to matching requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything untouched.
    None,
    /// Forward the first CompleteMultipartUpload (a POST with `uploadId=`)
    /// to the server, then drop its reply: the client sees the connection
    /// close with no response, although the upload was completed.
    DropFirstCompleteReply,
    /// Never answer CreateMultipartUpload (a POST with `?uploads`): the
    /// request is read and the connection held open, silent, for up to ten
    /// minutes. Plays a server that hangs.
    HangCreateUpload,
    /// Hold every UploadPart (a PUT with `partNumber=`) this long before
    /// forwarding it: a slow link, so a test can act mid-upload.
    DelayParts(std::time::Duration),
    /// Flip one byte in the body of the first part upload (a PUT with
    /// `partNumber=`) on its way to the server: damage in transit.
    FlipByteInFirstPart,
    /// Remove `x-amz-checksum-*` headers from every answer: a server that
    /// ignores part checksums.
    HideChecksums,
    /// Append [`MANGLED_SUFFIX`] (`+`, `/`, `=`: characters SigV4 wants
    /// percent-encoded in a query) to the upload id in every
    /// CreateMultipartUpload answer: a provider that issues such ids. Later
    /// requests naming the id go to the server as sent, which checks their
    /// signature before it finds no such upload.
    MangleUploadIds,
    /// Answer every UploadPart with `501 NotImplemented` (not forwarded): a
    /// server without an essential call.
    PartsNotImplemented,
}

/// What [`Fault::MangleUploadIds`] appends to upload ids.
pub const MANGLED_SUFFIX: &str = "+a/b=c==";

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Bytes of the request's body (`Content-Length`).
    pub body_len: usize,
    /// The reply was withheld from the client.
    pub dropped: bool,
    /// Request headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body was altered on the way.
    pub damaged: bool,
    /// The status code of the server's answer, once it came.
    pub status: Option<u16>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

pub struct HttpProxy {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpProxy {
    pub fn start(upstream: &str, fault: Fault) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (upstream, log) = (upstream.clone(), log.clone());
                std::thread::spawn(move || serve(client, &upstream, fault, &log));
            }
        });
        Self { url, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(client: TcpStream, upstream: &str, fault: Fault, log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut writer = client;
    loop {
        let Some((head, mut body)) = read_request(&mut reader) else {
            return;
        };
        let head = origin_form(&head);
        let request_line = head.lines().next().unwrap_or_default().to_string();
        let mut parts = request_line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        );
        let is_complete = method == "POST" && target.contains("uploadId=");
        let is_create = method == "POST"
            && target
                .split_once('?')
                .is_some_and(|(_, q)| q.split('&').any(|p| p == "uploads" || p == "uploads="));
        let is_part = method == "PUT" && target.contains("partNumber=");
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let (drop_reply, index) = {
            let mut log = log.lock().unwrap();
            let drop = fault == Fault::DropFirstCompleteReply && is_complete && !log.iter().any(|s| s.dropped);
            let damage =
                fault == Fault::FlipByteInFirstPart && is_part && !body.is_empty() && !log.iter().any(|s| s.damaged);
            if damage {
                let mid = body.len() / 2;
                body[mid] ^= 0x01;
            }
            log.push(Seen {
                method,
                target,
                body_len: body.len(),
                dropped: drop,
                headers,
                damaged: damage,
                status: None,
            });
            (drop, log.len() - 1)
        };
        if let Fault::DelayParts(delay) = fault
            && is_part
        {
            std::thread::sleep(delay);
        }
        if fault == Fault::PartsNotImplemented && is_part {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code><Message>UploadPart is not implemented</Message></Error>";
            let response = format!(
                "HTTP/1.1 501 Not Implemented\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            log.lock().unwrap()[index].status = Some(501);
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        if fault == Fault::HangCreateUpload && is_create {
            std::thread::sleep(std::time::Duration::from_secs(600));
            return;
        }
        let Some(response) = forward(upstream, &head, &body) else {
            return;
        };
        let status = std::str::from_utf8(&response[..response.len().min(16)])
            .ok()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok());
        log.lock().unwrap()[index].status = status;
        if drop_reply {
            return; // the server did the work; the client never hears of it
        }
        let response = match fault {
            Fault::HideChecksums => without_checksum_headers(response),
            Fault::MangleUploadIds if is_create => with_mangled_upload_id(response),
            _ => response,
        };
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}

/// The head with an absolute-form request target (`http://host/path`, as
/// sent to a forward proxy) put in origin form (`/path`).
fn origin_form(head: &str) -> String {
    let Some((line, rest)) = head.split_once("\r\n") else {
        return head.to_string();
    };
    let mut parts = line.splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let Some(after_scheme) = target.strip_prefix("http://") else {
        return head.to_string();
    };
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    format!("{method} {path} {version}\r\n{rest}")
}

/// Head and body of a response, the body de-chunked.
fn split_response(response: &[u8]) -> Option<(String, Vec<u8>)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..end]).into_owned();
    let mut body = response[end + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = out;
    }
    Some((head, body))
}

/// The response with [`MANGLED_SUFFIX`] after its `<UploadId>`.
fn with_mangled_upload_id(response: Vec<u8>) -> Vec<u8> {
    let Some((head, body)) = split_response(&response) else {
        return response;
    };
    let text = String::from_utf8_lossy(&body).replace("</UploadId>", &format!("{MANGLED_SUFFIX}</UploadId>"));
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("content-length:") && !l.starts_with("transfer-encoding:")
        })
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect();
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", text.len()).as_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// The request head (with its final blank line) and body, or `None` at EOF.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Send one request upstream on its own connection and read the whole
/// response (the upstream closes the connection after it).
fn forward(upstream: &str, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect(upstream).ok()?;
    let head: String = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\r\n"))
        .collect();
    server.write_all(head.as_bytes()).ok()?;
    server.write_all(b"Connection: close\r\n\r\n").ok()?;
    server.write_all(body).ok()?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).ok()?;
    Some(strip_connection_close(response))
}

/// The response without `x-amz-checksum-*` headers.
fn without_checksum_headers(response: Vec<u8>) -> Vec<u8> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return response;
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("x-amz-checksum"))
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&response[end + 4..]);
    out
}

/// The client keeps its connection: drop the `Connection: close` the
/// upstream answered with, keeping the framing headers as they are.
fn strip_connection_close(response: Vec<u8>) -> Vec<u8> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return response;
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&response[end + 4..]);
    out
}
