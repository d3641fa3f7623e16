//! The sandbox's HTTP/1.1 server: one thread per connection, keep-alive,
//! requests parsed with `httparse`. (A fixed worker pool let a burst of
//! new keep-alive connections queue behind idle ones for 5-second steps;
//! a thread per connection cannot starve that way.) Any [`Handler`] can
//! sit behind it: the local Exact Online is one, the local Cloudflare API
//! (`cloudflare-sandbox`) another.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use crate::http::Reply;

/// Largest request head and body the sandbox reads.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
/// An idle keep-alive connection is closed after this.
const IDLE: Duration = Duration::from_secs(30);

/// A request as it came off the wire: the body as bytes (uploads carry
/// Wasm), header names lower-cased.
#[derive(Debug, Clone)]
pub struct WireRequest {
    pub method: String,
    /// The request target: path and query string, not decoded.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the peer is on loopback (admin APIs answer only there).
    pub loopback: bool,
}

impl WireRequest {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What answers the requests one server receives; called from one thread
/// per connection, so it shares its state behind locks.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: WireRequest) -> Reply;
}

/// The accept loop; dropping it stops accepting (open connections finish).
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start<H: Handler>(listener: TcpListener, shared: Arc<H>) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, shared.as_ref()));
            }
        });
        Ok(Server {
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the accept loop ends.
    pub fn wait(mut self) {
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection until the client closes it, asks to, or idles.
fn serve<H: Handler>(stream: TcpStream, shared: &H) {
    let loopback = stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let (req, keep_alive) = match read_request(&mut reader, loopback) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(status) => {
                let _ = write_reply(&mut writer, Reply::empty(status), false);
                return;
            }
        };
        let reply = shared.handle(req);
        if write_reply(&mut writer, reply, keep_alive).is_err() || !keep_alive {
            return;
        }
    }
}

/// The next request; `Ok(None)` when the client closed or idled out,
/// `Err(status)` for a malformed one.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    loopback: bool,
) -> Result<Option<(WireRequest, bool)>, u16> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => return if head.is_empty() { Ok(None) } else { Err(400) },
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
        // Blank lines before a request line are tolerated.
        if head.is_empty() && (line == b"\r\n" || line == b"\n") {
            continue;
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(431);
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 96];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(400),
    }
    let method = parsed.method.unwrap_or("GET").to_owned();
    let target = parsed.path.unwrap_or("/").to_owned();
    let http10 = parsed.version == Some(0);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let len: usize = match header("content-length") {
            Some(v) => v.trim().parse().map_err(|_| 400u16)?,
            None => 0,
        };
        if len > MAX_BODY {
            return Err(413);
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).map_err(|_| 400u16)?;
        body
    };
    let connection = header("connection").map(str::to_ascii_lowercase);
    let keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => !http10,
    };
    Ok(Some((
        WireRequest {
            method,
            target,
            headers,
            body,
            loopback,
        },
        keep_alive,
    )))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, u16> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line).map_err(|_| 400u16)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| 400u16)?;
        if body.len() + size > MAX_BODY {
            return Err(413);
        }
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                let mut t = String::new();
                reader.read_line(&mut t).map_err(|_| 400u16)?;
                if t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(|_| 400u16)?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).map_err(|_| 400u16)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn write_reply(w: &mut TcpStream, reply: Reply, keep_alive: bool) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("connection") {
            continue;
        }
        // Header values never carry line breaks into the response.
        if v.contains(['\r', '\n']) || k.contains(['\r', '\n', ':']) {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&reply.body);
    w.write_all(&bytes)?;
    w.flush()
}
