//! An HTTP/2 cleartext client (h2c with prior knowledge): `node/h2-client.mjs` (`node:http2`,
//! no npm packages) driven by a JSON plan. Exact control over what an HTTP/2 client can send:
//! header values as raw bytes, a body split over many DATA frames, trailers after a DATA frame
//! that did not end the stream. Every request gets its own connection.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::http::Response;
use crate::paths;

/// One HTTP/2 request.
#[derive(Debug, Clone)]
pub struct H2Request {
    pub method: String,
    pub path: String,
    /// Names as given (node lowercases them); values as raw bytes, sent as they are.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, one DATA frame per chunk. No chunks and no trailers: the HEADERS frame ends
    /// the stream.
    pub chunks: Vec<Vec<u8>>,
    /// Sent in a HEADERS frame after the body; the last DATA frame then does not end the stream.
    pub trailers: Vec<(String, Vec<u8>)>,
    /// Pause between DATA frames (so Envoy hands them to the filter one by one).
    pub pace: Duration,
}

impl H2Request {
    pub fn new(method: &str, path: &str) -> H2Request {
        H2Request {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            chunks: Vec::new(),
            trailers: Vec::new(),
            pace: Duration::ZERO,
        }
    }

    pub fn get(path: &str) -> H2Request {
        H2Request::new("GET", path)
    }

    pub fn post(path: &str) -> H2Request {
        H2Request::new("POST", path)
    }

    /// Adds a header (repeatable).
    pub fn header(self, name: &str, value: &str) -> H2Request {
        self.raw_header(name, value.as_bytes())
    }

    /// Adds a header whose value is raw bytes (e.g. `b"\xff"`).
    pub fn raw_header(mut self, name: &str, value: &[u8]) -> H2Request {
        self.headers.push((name.to_string(), value.to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> H2Request {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body in one DATA frame, with the headers a streamable-HTTP MCP client sends.
    pub fn json(self, body: &Value) -> H2Request {
        self.body(serde_json::to_vec(body).expect("serialize JSON body"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
    }

    /// The body in one DATA frame.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> H2Request {
        self.chunks = vec![body.into()];
        self
    }

    /// The body, one DATA frame per chunk.
    pub fn chunks<C: AsRef<[u8]>>(mut self, chunks: &[C]) -> H2Request {
        self.chunks = chunks.iter().map(|c| c.as_ref().to_vec()).collect();
        self
    }

    /// Trailers after the body.
    pub fn trailers(mut self, trailers: &[(&str, &[u8])]) -> H2Request {
        self.trailers = trailers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        self
    }

    pub fn pace(mut self, pause: Duration) -> H2Request {
        self.pace = pause;
        self
    }

    fn plan(&self) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        let pairs = |h: &[(String, Vec<u8>)]| -> Vec<Value> {
            h.iter().map(|(k, v)| json!([k, latin1(v)])).collect()
        };
        json!({
            "method": self.method,
            "path": self.path,
            "headers": pairs(&self.headers),
            "chunks": self.chunks.iter().map(|c| b64.encode(c)).collect::<Vec<_>>(),
            "trailers": pairs(&self.trailers),
            "pauseMs": u64::try_from(self.pace.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Sends the request to 127.0.0.1:`port`.
    pub fn send(&self, port: u16) -> Result<Response, H2Error> {
        send_all(port, std::slice::from_ref(self))
            .pop()
            .expect("one result per request")
    }
}

/// A request that got no complete response: the stream or the connection was reset, or the
/// client gave up.
#[derive(Debug, Clone)]
pub struct H2Error {
    pub message: String,
    /// The response status, when headers arrived before the failure.
    pub status: Option<u16>,
    /// The RST_STREAM code, when the stream was reset.
    pub rst_code: Option<u64>,
}

impl std::fmt::Display for H2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (status {:?}, RST_STREAM code {:?})",
            self.message, self.status, self.rst_code
        )
    }
}

/// Bytes as a string of the code points U+0000..U+00FF: node writes header strings one byte
/// per code unit, so `0xff` goes out as the byte `0xff`.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn latin1_bytes(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// `node/h2-client.mjs` of this crate (node built-ins only, so no npm install needed).
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node/h2-client.mjs")
}

/// Sends `requests` in order, each on its own connection, and returns one result per request.
pub fn send_all(port: u16, requests: &[H2Request]) -> Vec<Result<Response, H2Error>> {
    let per_request = Duration::from_secs(10);
    let plan = json!({
        "port": port,
        "timeoutMs": u64::try_from(per_request.as_millis()).unwrap_or(10_000),
        "requests": requests.iter().map(H2Request::plan).collect::<Vec<_>>(),
    });
    let mut child = Command::new(paths::node_bin())
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node h2-client.mjs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(plan.to_string().as_bytes())
        .expect("write the plan to h2-client.mjs");
    // The script bounds each request itself; this only guards against a hung node.
    let limit = per_request * (u32::try_from(requests.len()).unwrap_or(u32::MAX) + 2);
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = read_all(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read_all(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for h2-client.mjs") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("h2-client.mjs did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: Vec<Result<Response, H2Error>> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| parse_result(&v))
        .collect();
    assert!(
        output.status.success() && results.len() == requests.len(),
        "h2-client.mjs failed ({}), {} of {} results; stdout:\n{stdout}\nstderr:\n{}",
        output.status,
        results.len(),
        requests.len(),
        String::from_utf8_lossy(&output.stderr)
    );
    results
}

fn parse_result(v: &Value) -> Result<Response, H2Error> {
    let status = v["status"].as_u64().and_then(|s| u16::try_from(s).ok());
    if let Some(message) = v["error"].as_str() {
        return Err(H2Error {
            message: message.to_string(),
            status,
            rst_code: v["rstCode"].as_u64(),
        });
    }
    let headers = v["headers"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .map(|p| {
                    let name = p[0].as_str().unwrap_or_default().to_ascii_lowercase();
                    let value = latin1_bytes(p[1].as_str().unwrap_or_default());
                    (name, String::from_utf8_lossy(&value).into_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let body = base64::engine::general_purpose::STANDARD
        .decode(v["bodyB64"].as_str().unwrap_or_default())
        .unwrap_or_default();
    Ok(Response {
        status: status.unwrap_or(0),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_round_trip_through_latin1() {
        let bytes = [0x00, 0x41, 0x7f, 0x80, 0xc3, 0x28, 0xff];
        assert_eq!(latin1(&bytes).chars().count(), bytes.len());
        assert_eq!(latin1_bytes(&latin1(&bytes)), bytes);
    }

    #[test]
    fn plans_carry_chunks_and_trailers() {
        let p = H2Request::post("/x")
            .raw_header("x-a", b"\xff")
            .chunks(&[b"ab".as_slice(), b"c"])
            .trailers(&[("x-t", b"1")])
            .pace(Duration::from_millis(3))
            .plan();
        assert_eq!(p["headers"][0], json!(["x-a", "\u{ff}"]));
        assert_eq!(p["chunks"], json!(["YWI=", "Yw=="]));
        assert_eq!(p["trailers"], json!([["x-t", "1"]]));
        assert_eq!(p["pauseMs"], 3);
    }
}
