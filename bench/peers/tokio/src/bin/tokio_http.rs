//! tokio_http: the HTTP/1.1 "hello world" server of magpie's network
//! benchmark, on Tokio, parsing by hand on raw TCP (no hyper) like magpie's
//! examples/http_server and go_http.
//!
//!     tokio_http [--port P] [--workers N] [--host H]
//!
//! Keep-alive and pipelining: every complete request in the buffer is
//! answered, and the answers to one read go out in one write.  `GET /` gets
//! 200 "Hello, World!"; another path 404; another method 405; a malformed
//! request 400 and a head over 8 KiB 431, both closing the connection;
//! Transfer-Encoding (chunked bodies) is not supported: 501 and close.
//! A Content-Length body is read and discarded.  Port 0 (the default) picks
//! a free port, printed as `listening on <port>`.  Exits 0 on SIGINT/SIGTERM.

#[path = "../common.rs"]
mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest request head (request line and headers) accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Read buffer: twice MAX_HEAD, so a partial head always leaves room to read.
const BUF_SIZE: usize = 2 * MAX_HEAD;

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
const NOT_FOUND: &[u8] =
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nContent-Type: text/plain\r\n\r\nNot Found";
const NOT_ALLOWED: &[u8] =
    b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

enum Parse {
    /// Not a whole head yet.
    Partial,
    /// A whole request: head length, body length, whether the connection
    /// stays open, and the response to send.
    Request { head: usize, body: u64, keep_alive: bool, resp: &'static [u8] },
    /// Answer with this and close.
    Fail(&'static [u8]),
}

/// RFC 9110 token characters (method and header names).
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Checks "METHOD SP TARGET SP HTTP/1.x"; returns (method, target, is 1.1).
fn request_line(line: &[u8]) -> Option<(&[u8], &[u8], bool)> {
    let mut parts = line.split(|&c| c == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || !method.iter().all(|&c| is_tchar(c)) {
        return None;
    }
    if target.is_empty() || !target.iter().all(|&c| c > b' ' && c != 0x7f) {
        return None;
    }
    match version {
        b"HTTP/1.1" => Some((method, target, true)),
        b"HTTP/1.0" => Some((method, target, false)),
        _ => None,
    }
}

/// Strips spaces and tabs at both ends (written out: <[u8]>::trim_ascii is
/// newer than Debian 12's rustc 1.63).
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Does a comma-separated header value contain `token` (case-insensitive)?
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&c| c == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

fn parse(buf: &[u8]) -> Parse {
    // Reject a bad request line as soon as it is complete.
    let first = match find_crlf(&buf[..buf.len().min(MAX_HEAD)]) {
        Some(n) => n,
        None if buf.len() >= MAX_HEAD => return Parse::Fail(TOO_LARGE),
        None => return Parse::Partial,
    };
    let (method, target, http11) = match request_line(&buf[..first]) {
        Some(r) => r,
        None => return Parse::Fail(BAD_REQUEST),
    };
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let head = match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(n) => n + 4,
        None if buf.len() >= MAX_HEAD => return Parse::Fail(TOO_LARGE),
        None => return Parse::Partial,
    };
    let mut keep_alive = http11;
    let mut body: Option<u64> = None;
    let mut pos = first + 2;
    while pos < head - 2 {
        let end = pos + find_crlf(&buf[pos..head]).unwrap();
        let line = &buf[pos..end];
        pos = end + 2;
        let colon = match line.iter().position(|&c| c == b':') {
            Some(c) if c > 0 && line[..c].iter().all(|&ch| is_tchar(ch)) => c,
            _ => return Parse::Fail(BAD_REQUEST), // also folded lines
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = match std::str::from_utf8(value).ok().and_then(|s| s.parse::<u64>().ok()) {
                Some(n) if value.iter().all(u8::is_ascii_digit) => n,
                _ => return Parse::Fail(BAD_REQUEST),
            };
            if body.map_or(false, |b| b != n) {
                return Parse::Fail(BAD_REQUEST);
            }
            body = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parse::Fail(NOT_IMPLEMENTED);
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(value, b"close") {
                keep_alive = false;
            } else if has_token(value, b"keep-alive") {
                keep_alive = true;
            }
        }
    }
    let resp = if method != b"GET" {
        NOT_ALLOWED
    } else if target != b"/" {
        NOT_FOUND
    } else {
        HELLO
    };
    Parse::Request { head, body: body.unwrap_or(0), keep_alive, resp }
}

async fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; BUF_SIZE];
    let (mut start, mut end) = (0usize, 0usize); // unparsed bytes: buf[start..end]
    let mut discard: u64 = 0; // body bytes of the last request still to skip
    let mut out = Vec::with_capacity(4096);
    loop {
        let mut close = false;
        loop {
            if discard > 0 {
                let k = discard.min((end - start) as u64);
                start += k as usize;
                discard -= k;
                if discard > 0 {
                    break;
                }
            }
            if start == end {
                break;
            }
            match parse(&buf[start..end]) {
                Parse::Partial => break,
                Parse::Request { head, body, keep_alive, resp } => {
                    out.extend_from_slice(resp);
                    start += head;
                    discard = body;
                    if !keep_alive {
                        close = true;
                        break;
                    }
                }
                Parse::Fail(resp) => {
                    out.extend_from_slice(resp);
                    close = true;
                    break;
                }
            }
        }
        if !out.is_empty() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
        // Move a partial head to the front; it is under MAX_HEAD bytes (parse
        // fails with 431 otherwise), so at least MAX_HEAD bytes are free.
        if start == end {
            start = 0;
            end = 0;
        } else if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        match conn.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
    }
}

fn main() {
    let args = common::parse_args();
    if !args.names.is_empty() {
        eprintln!("tokio_http: unexpected argument {}", args.names[0]);
        std::process::exit(2);
    }
    let rt = common::runtime(args.workers);
    rt.block_on(async {
        common::exit_on_signal();
        let listener = common::listen(&args.host, args.port).unwrap_or_else(|e| {
            eprintln!("tokio_http: listen on {}:{}: {}", args.host, args.port, e);
            std::process::exit(1);
        });
        common::announce(&listener);
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    tokio::spawn(serve(conn));
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
}
