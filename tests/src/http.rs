//! A deliberately small HTTP/1.1 client over `std::net`: one request per connection, exact
//! control over the bytes sent (duplicate headers, any method, any body), and the response read
//! to the end (`Content-Length`, chunked, or until close).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A request to send to 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Headers whose values are sent as raw bytes (non-UTF-8 included), after `headers`.
    pub raw_headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Where the body is split into separate writes (offsets into `body`), with `pace` between
    /// them, so Envoy reads the pieces one by one instead of in one buffer.
    pub body_splits: Vec<usize>,
    pub pace: Duration,
    pub timeout: Duration,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            raw_headers: Vec::new(),
            body: Vec::new(),
            body_splits: Vec::new(),
            pace: Duration::ZERO,
            timeout: Duration::from_secs(10),
        }
    }

    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    pub fn post(path: &str) -> Request {
        Request::new("POST", path)
    }

    pub fn delete(path: &str) -> Request {
        Request::new("DELETE", path)
    }

    /// Adds a header (repeatable: the same name may be sent several times).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds a header whose value is raw bytes (e.g. `b"\xff"`), sent exactly as given.
    pub fn raw_header(mut self, name: &str, value: &[u8]) -> Request {
        self.raw_headers.push((name.to_string(), value.to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body with the headers a streamable-HTTP MCP client sends.
    pub fn json(self, body: &Value) -> Request {
        self.raw_json(serde_json::to_vec(body).expect("serialize JSON body"))
    }

    /// Raw bytes sent as `application/json` (for malformed bodies).
    pub fn raw_json(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self.header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
    }

    /// An `application/x-www-form-urlencoded` body of `fields` (an HTML form, an OAuth request).
    pub fn form(mut self, fields: &[(&str, &str)]) -> Request {
        self.body = form_urlencoded(fields).into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    /// Raw body bytes. Sent as-is: with a `transfer-encoding` header the caller frames them.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// A `transfer-encoding: chunked` body: one chunk per item of `chunks` (empty items are
    /// skipped: an empty chunk ends the body), then the trailer section. Each chunk goes out in
    /// its own write, `pace` apart (see [`Request::pace`]).
    pub fn chunked<C: AsRef<[u8]>>(mut self, chunks: &[C], trailers: &[(&str, &[u8])]) -> Request {
        let (body, splits) = chunked_body(chunks, trailers);
        self.body = body;
        self.body_splits = splits;
        self.header("transfer-encoding", "chunked")
    }

    /// The pause between the body's separate writes (default none).
    pub fn pace(mut self, pause: Duration) -> Request {
        self.pace = pause;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Request {
        self.timeout = t;
        self
    }

    /// Sends the request to 127.0.0.1:`port` and reads the whole response.
    pub fn send(&self, port: u16) -> Response {
        self.try_send(port).unwrap_or_else(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                panic!(
                    "{} {} on 127.0.0.1:{port}: no response within {:?} (a filter that paused \
                     the request and never resumed it looks like this)",
                    self.method, self.path, self.timeout
                )
            }
            panic!(
                "{} {} on 127.0.0.1:{port} failed: {e}",
                self.method, self.path
            )
        })
    }

    pub fn try_send(&self, port: u16) -> std::io::Result<Response> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        // Head and body go out in separate writes: without this, Nagle holds the body ~40 ms.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        let has = |n: &str| {
            self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n))
                || self
                    .raw_headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case(n))
        };
        if !has("host") {
            head.extend_from_slice(format!("host: 127.0.0.1:{port}\r\n").as_bytes());
        }
        let raw = self.raw_headers.iter().map(|(k, v)| (k, v.as_slice()));
        for (k, v) in self
            .headers
            .iter()
            .map(|(k, v)| (k, v.as_bytes()))
            .chain(raw)
        {
            head.extend_from_slice(k.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(v);
            head.extend_from_slice(b"\r\n");
        }
        let framed = has("content-length") || has("transfer-encoding");
        if !framed && (!self.body.is_empty() || self.method == "POST") {
            head.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        head.extend_from_slice(b"connection: close\r\n\r\n");
        stream.write_all(&head)?;
        // A server may answer (and close) before it has read the body: its answer still counts.
        let sent = self.write_body(&mut stream);
        match read_response(BufReader::new(stream), &self.method) {
            Err(e) => Err(sent.err().unwrap_or(e)),
            ok => ok,
        }
    }

    /// Writes the body, in separate writes at `body_splits` with `pace` between them.
    fn write_body(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        let mut start = 0;
        for end in self.body_splits.iter().copied().chain([self.body.len()]) {
            let end = end.clamp(start, self.body.len());
            if end == start {
                continue;
            }
            if start > 0 && !self.pace.is_zero() {
                std::thread::sleep(self.pace);
            }
            stream.write_all(&self.body[start..end])?;
            stream.flush()?;
            start = end;
        }
        Ok(())
    }
}

/// Frames `chunks` as an HTTP/1.1 chunked body ending with `trailers`; also returns where each
/// chunk's frame ends (offsets, for separate writes). Empty chunks are skipped.
/// Percent-encodes a query or form value (every byte but RFC 3986's unreserved ones).
pub fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `k=v&…` with the values percent-encoded: a query string or a form body.
pub fn form_urlencoded(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of `name` in a query string or form body (`+` and percent-escapes decoded).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_decode(&v.replace('+', " ")))
    })
}

/// Decodes `%XX` escapes (others are kept as they are).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn chunked_body<C: AsRef<[u8]>>(
    chunks: &[C],
    trailers: &[(&str, &[u8])],
) -> (Vec<u8>, Vec<usize>) {
    let mut body = Vec::new();
    let mut splits = Vec::new();
    for chunk in chunks.iter().map(AsRef::as_ref).filter(|c| !c.is_empty()) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
        splits.push(body.len());
    }
    body.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(b": ");
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"\r\n");
    (body, splits)
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in arrival order, repeated names kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_values(&self.headers, name).first().copied()
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_values(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body text when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {} headers {:?} body {:?}",
                self.status,
                self.headers,
                self.text()
            )
        })
    }

    /// One-line summary for assertion messages.
    pub fn describe(&self) -> String {
        let mut body = self.text();
        if body.len() > 600 {
            body.truncate(600);
            body.push('…');
        }
        format!(
            "status {} headers {:?} body {:?}",
            self.status, self.headers, body
        )
    }
}

fn read_response<R: BufRead>(mut r: R, method: &str) -> std::io::Result<Response> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    loop {
        let mut status_line = String::new();
        if r.read_line(&mut status_line)? == 0 {
            return Err(bad("connection closed before a response".into()));
        }
        let mut parts = status_line.trim_end().splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let headers = read_headers(&mut r)?;
        if (100..200).contains(&status) {
            continue; // 100 Continue and friends
        }
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if method == "HEAD" || status == 204 || status == 304 {
            // no body
        } else if find("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            body = read_chunked(&mut r)?;
        } else if let Some(len) = find("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| bad(format!("bad content-length {len:?}")))?;
            body.resize(len, 0);
            r.read_exact(&mut body)?;
        } else {
            r.read_to_end(&mut body)?;
        }
        return Ok(Response {
            status,
            headers,
            body,
        });
    }
}

/// Reads header lines up to the blank line; names lowercased, values as text (bytes that are
/// not UTF-8 replaced; [`read_raw_headers`] keeps them).
pub(crate) fn read_headers<R: BufRead>(r: &mut R) -> std::io::Result<Vec<(String, String)>> {
    Ok(lossy_headers(&read_raw_headers(r)?))
}

/// Header values as text, bytes that are not UTF-8 replaced.
pub(crate) fn lossy_headers(raw: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    raw.iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// Header names (lowercased) with their values as bytes, in arrival order.
pub type RawHeaders = Vec<(String, Vec<u8>)>;

/// Reads header lines up to the blank line; names lowercased, values as the bytes that came
/// (surrounding whitespace trimmed).
pub(crate) fn read_raw_headers<R: BufRead>(r: &mut R) -> std::io::Result<RawHeaders> {
    let mut headers = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed inside headers",
            ));
        }
        let line = line.trim_ascii_end();
        if line.is_empty() {
            return Ok(headers);
        }
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            let (k, v) = (&line[..colon], &line[colon + 1..]);
            headers.push((
                String::from_utf8_lossy(k.trim_ascii()).to_ascii_lowercase(),
                v.trim_ascii().to_vec(),
            ));
        }
    }
}

/// Reads a chunked body (and its trailers).
pub(crate) fn read_chunked<R: BufRead>(r: &mut R) -> std::io::Result<Vec<u8>> {
    read_chunked_with_trailers(r).map(|(body, _)| body)
}

/// Reads a chunked body and its trailer section.
pub(crate) fn read_chunked_with_trailers<R: BufRead>(
    r: &mut R,
) -> std::io::Result<(Vec<u8>, RawHeaders)> {
    let mut body = Vec::new();
    let trailers = read_chunked_into(r, &mut body)?;
    Ok((body, trailers))
}

/// Reads a chunked body into `body` and returns its trailer section. On an error `body` holds
/// the bytes that did arrive.
pub(crate) fn read_chunked_into<R: BufRead>(
    r: &mut R,
    body: &mut Vec<u8>,
) -> std::io::Result<RawHeaders> {
    loop {
        let mut size_line = String::new();
        r.read_line(&mut size_line)?;
        let size_str = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_str, 16).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad chunk size {size_line:?}"),
            )
        })?;
        if size == 0 {
            // trailers until blank line
            return read_raw_headers(r);
        }
        read_at_most(r, size, body)?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

/// Appends exactly `len` bytes to `into`; on a short read the bytes that came stay there.
pub(crate) fn read_at_most<R: Read>(
    r: &mut R,
    len: usize,
    into: &mut Vec<u8>,
) -> std::io::Result<()> {
    let got = r.take(len as u64).read_to_end(into)?;
    if got < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("body cut after {got} of {len} bytes"),
        ));
    }
    Ok(())
}

/// Parses the parameters of a `WWW-Authenticate: Bearer k="v", k2="v2"` challenge.
/// Returns `None` when the scheme is not `Bearer`.
pub fn parse_bearer_challenge(value: &str) -> Option<Vec<(String, String)>> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            return Some(params);
        }
        if chars.next() != Some('=') {
            return Some(params);
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), val.trim().to_string()));
    }
}

/// One parameter of a Bearer challenge.
pub fn challenge_param(value: &str, name: &str) -> Option<String> {
    parse_bearer_challenge(value)?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The values of header `name` (case-insensitive), in order.
pub fn header_values<'h>(headers: &'h [(String, String)], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The next request line on a keep-alive connection (blank lines between requests skipped):
/// `(method, target)`, or `None` when the peer is gone.
pub fn read_request_line(reader: &mut impl BufRead) -> Option<(String, String)> {
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        return Some((method, target));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let v = r#"Bearer resource_metadata="https://x/.well-known/oauth-protected-resource/a", scope="a b", error="invalid_token", error_description="token \"expired\"""#;
        let p = parse_bearer_challenge(v).unwrap();
        assert_eq!(
            p,
            vec![
                (
                    "resource_metadata".to_string(),
                    "https://x/.well-known/oauth-protected-resource/a".to_string()
                ),
                ("scope".to_string(), "a b".to_string()),
                ("error".to_string(), "invalid_token".to_string()),
                (
                    "error_description".to_string(),
                    "token \"expired\"".to_string()
                ),
            ]
        );
        assert_eq!(challenge_param(v, "scope").as_deref(), Some("a b"));
        assert!(parse_bearer_challenge("Basic realm=\"x\"").is_none());
        assert_eq!(parse_bearer_challenge("Bearer").unwrap(), vec![]);
    }

    #[test]
    fn reads_chunked_and_content_length_responses() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let r = read_response(&raw[..], "GET").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.header("x-a"), Some("1"));
        let raw = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}";
        let r = read_response(&raw[..], "POST").unwrap();
        assert_eq!((r.status, r.text().as_str()), (401, "{}"));
    }
}
