//! A small HTTP server on 127.0.0.1 serving one object by range requests, with faults on demand:
//! connections dropped, 500s, bodies cut short, the object replaced, and answers meant to make a
//! client allocate (bodies longer than asked, chunked bodies without end, a size of 1 TiB). It
//! counts what it serves.

// shared by the `it` and `secrets` test binaries, each of which uses a part of it
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the server does to the requests after the first `after` (the open's request is
/// request 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers every request.
    None,
    /// Closes the connection without an answer, `times` times.
    Drop { after: usize, times: usize },
    /// Answers 500, `times` times.
    Status500 { after: usize, times: usize },
    /// Sends the headers of the whole range but half its body, `times` times.
    Truncate { after: usize, times: usize },
    /// Serves the object's second version (another ETag) from request `after` on; `if_match`:
    /// whether the server honours `If-Match` (412) or, like a careless server, ignores it.
    Replace { after: usize, if_match: bool },
    /// Sends the range's headers and then a body 1 MiB longer than the range, from request
    /// `after` on.
    LongBody { after: usize },
    /// Sends a chunked body that never ends (until the client closes), from request `after` on.
    Endless { after: usize },
    /// Claims the object is 1 TiB long in every answer (the bytes it has are served as they are).
    ClaimsTiB,
}

/// The length [`Fault::ClaimsTiB`] claims.
pub const TIB: u64 = 1 << 40;

/// The server's state, shared with its thread.
struct State {
    versions: [Vec<u8>; 2],
    fault: Fault,
    requests: AtomicUsize,
    faults_left: AtomicUsize,
    bytes: AtomicU64,
    stop: AtomicBool,
    /// The `Authorization` header of the last request that had one.
    authorization: Mutex<Option<String>>,
}

/// A running server; stops when dropped.
pub struct RangeServer {
    pub url: String,
    state: Arc<State>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl RangeServer {
    /// Serves `object` at `{url}/object.fits` (`second`: the version [`Fault::Replace`] swaps in).
    pub fn start(object: Vec<u8>, second: Vec<u8>, fault: Fault) -> RangeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let times = match fault {
            Fault::Drop { times, .. } | Fault::Status500 { times, .. } | Fault::Truncate { times, .. } => times,
            _ => 0,
        };
        let state = Arc::new(State {
            versions: [object, second],
            fault,
            requests: AtomicUsize::new(0),
            faults_left: AtomicUsize::new(times),
            bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            authorization: Mutex::new(None),
        });
        let shared = Arc::clone(&state);
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let thread = std::thread::spawn(move || {
            while !shared.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let state = Arc::clone(&shared);
                        std::thread::spawn(move || serve(stream, &state));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            }
        });
        RangeServer { url, state, thread: Mutex::new(Some(thread)) }
    }

    /// The object's URL.
    pub fn object_url(&self) -> String {
        format!("{}/object.fits", self.url)
    }

    /// Requests answered (or dropped) so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// The `Authorization` header of the last request that had one.
    pub fn authorization(&self) -> Option<String> {
        self.state.authorization.lock().expect("the server's lock").clone()
    }

    /// Body bytes sent so far.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for RangeServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().expect("the server's lock").take() {
            let _ = t.join();
        }
    }
}

/// Serves the requests of one connection (keep-alive) until it closes.
fn serve(stream: TcpStream, state: &State) {
    stream.set_nonblocking(false).expect("a blocking stream");
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut range = None;
        let mut if_match = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "range" => range = Some(value.trim().to_string()),
                "if-match" => if_match = Some(value.trim().to_string()),
                "authorization" => {
                    *state.authorization.lock().expect("the server's lock") = Some(value.trim().to_string())
                }
                _ => {}
            }
        }
        let n = state.requests.fetch_add(1, Ordering::Relaxed);
        if !answer(&mut out, state, n, range.as_deref(), if_match.as_deref()) {
            return;
        }
    }
}

/// Answers request `n`; `false` when the connection must close.
fn answer(out: &mut TcpStream, state: &State, n: usize, range: Option<&str>, if_match: Option<&str>) -> bool {
    let take_fault = |after: usize| {
        n > after && state.faults_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| k.checked_sub(1)).is_ok()
    };
    let version = match state.fault {
        Fault::Replace { after, .. } if n > after => 1,
        _ => 0,
    };
    let object = &state.versions[version];
    let etag = format!("\"v{version}-{}\"", object.len());
    match state.fault {
        Fault::Drop { after, .. } if take_fault(after) => return false,
        Fault::Status500 { after, .. } if take_fault(after) => {
            let _ = out.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
            return true;
        }
        Fault::Replace { if_match: true, .. } if if_match.is_some_and(|m| m != etag) => {
            let _ = out.write_all(b"HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n");
            return true;
        }
        _ => {}
    }
    let len = object.len() as u64;
    let claimed = if state.fault == Fault::ClaimsTiB { TIB } else { len };
    let (start, end) = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?.min(len - 1) + 1)))
        .unwrap_or((0, len));
    if start >= len {
        let _ = write!(
            out,
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{claimed}\r\nContent-Length: 0\r\n\r\n"
        );
        return true;
    }
    let etag_line = format!("ETag: {etag}\r\nLast-Modified: Sat, 05 Dec 2026 12:00:0{version} GMT\r\n");
    match state.fault {
        Fault::LongBody { after } if n > after => {
            let body = object[start as usize..end as usize].to_vec();
            let extra = vec![0u8; 1 << 20];
            let _ = write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\n{etag_line}\r\n",
                body.len() + extra.len(),
                end - 1
            );
            let _ = out.write_all(&body).and_then(|()| out.write_all(&extra));
            state.bytes.fetch_add((body.len() + extra.len()) as u64, Ordering::Relaxed);
            return true;
        }
        Fault::Endless { after } if n > after => {
            let _ = write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\nContent-Range: bytes {start}-{}/{len}\r\n{etag_line}\r\n",
                end - 1
            );
            let chunk = vec![7u8; 64 << 10];
            // until the client hangs up (bounded, so that a client that never does fails the test
            // rather than filling the machine: 64 GiB)
            for _ in 0..(1 << 20) {
                let sent = write!(out, "{:x}\r\n", chunk.len())
                    .and_then(|()| out.write_all(&chunk))
                    .and_then(|()| out.write_all(b"\r\n"));
                if sent.is_err() {
                    return false;
                }
                state.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            return false;
        }
        _ => {}
    }
    let body = &object[start as usize..end as usize];
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{claimed}\r\n{etag_line}\r\n",
        body.len(),
        end - 1
    );
    let _ = out.write_all(head.as_bytes());
    let cut = matches!(state.fault, Fault::Truncate { after, .. } if take_fault(after));
    let sent = if cut { &body[..body.len() / 2] } else { body };
    let _ = out.write_all(sent);
    state.bytes.fetch_add(sent.len() as u64, Ordering::Relaxed);
    !cut
}
