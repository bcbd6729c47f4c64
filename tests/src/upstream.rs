//! The echo upstream: a tiny HTTP/1.1 server on 127.0.0.1 that records every request it gets
//! (method, path, headers, body) and answers `200` with JSON, so tests can assert exactly what
//! Envoy forwarded after the filter.
//!
//! Answers: a JSON-RPC request body gets a JSON-RPC result echoing its `method` (a batch gets an
//! array); anything else gets `{"echo":true}`. Every response carries `x-echo-upstream: 1`.

use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::http::{
    lossy_headers, read_at_most, read_chunked_into, read_raw_headers, read_request_line,
};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names lowercased, in arrival order, repeated names kept.
    pub headers: Vec<(String, String)>,
    /// The same headers with their values as the bytes that came (non-UTF-8 included).
    pub raw_headers: Vec<(String, Vec<u8>)>,
    /// The trailer section of a chunked body (empty otherwise).
    pub trailers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Whether the whole body arrived. Envoy starts the upstream request as soon as the filter
    /// lets the headers through, so a request the filter refuses after reading the body can
    /// reach the upstream as headers only, then be reset: such requests are recorded with
    /// `complete: false` (and `body` holding whatever body bytes did arrive) and left out of
    /// [`EchoUpstream::requests`].
    pub complete: bool,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header_values(&self.headers, name)
            .first()
            .copied()
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        crate::http::header_values(&self.headers, name)
    }

    /// The first value of a header as raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.raw_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A running echo upstream; stops on drop.
pub struct EchoUpstream {
    port: u16,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoUpstream {
    pub fn start() -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo upstream");
        let port = listener.local_addr().expect("local_addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stop2) = (requests.clone(), stop.clone());
        let accept_thread = std::thread::Builder::new()
            .name(format!("echo-upstream-{port}"))
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    // Answers go out as head + body writes; don't let Nagle delay the body.
                    let _ = conn.set_nodelay(true);
                    let reqs = reqs.clone();
                    let _ = std::thread::Builder::new()
                        .name("echo-upstream-conn".into())
                        .spawn(move || serve(conn, reqs));
                }
            })
            .expect("spawn echo upstream");
        EchoUpstream {
            port,
            requests,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every complete request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.all_requests()
            .into_iter()
            .filter(|r| r.complete)
            .collect()
    }

    /// Every request received so far, including those reset before their body was complete.
    pub fn all_requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().expect("lock").clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.requests.lock().expect("lock").clear();
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, reqs: Arc<Mutex<Vec<RecordedRequest>>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let Some((method, path)) = read_request_line(&mut reader) else {
            return;
        };
        let Ok(raw_headers) = read_raw_headers(&mut reader) else {
            return;
        };
        let headers = lossy_headers(&raw_headers);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        if get("expect").is_some_and(|v| v.contains("100-continue")) {
            let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut body = Vec::new();
        let read = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked_into(&mut reader, &mut body)
        } else {
            let len: usize = get("content-length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            read_at_most(&mut reader, len, &mut body).map(|()| Vec::new())
        };
        let Ok(trailers) = read else {
            // Cut before the end (e.g. reset by Envoy): recorded with the body bytes that came.
            reqs.lock().expect("lock").push(RecordedRequest {
                method,
                path,
                headers,
                raw_headers,
                trailers: Vec::new(),
                body,
                complete: false,
            });
            return;
        };
        let close = get("connection").is_some_and(|v| v.contains("close"));
        // A response to HEAD has the headers of the GET answer and no body.
        let head_only = method == "HEAD";
        let reply = reply_for(&body);
        reqs.lock().expect("lock").push(RecordedRequest {
            method,
            path,
            headers,
            raw_headers,
            trailers,
            body,
            complete: true,
        });
        let reply = serde_json::to_vec(&reply).expect("serialize");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-echo-upstream: 1\r\n\
             content-length: {}\r\n{}\r\n",
            reply.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        let body_bytes: &[u8] = if head_only { &[] } else { &reply };
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body_bytes).is_err() {
            return;
        }
        if close {
            return;
        }
    }
}

fn reply_for(body: &[u8]) -> Value {
    let one = |m: &Value| {
        json!({
            "jsonrpc": "2.0",
            "id": m.get("id").cloned().unwrap_or(Value::Null),
            "result": {"echo": true, "method": m.get("method").cloned().unwrap_or(Value::Null)},
        })
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => Value::Array(items.iter().map(one).collect()),
        Ok(m @ Value::Object(_)) if m.get("jsonrpc").is_some() => one(&m),
        _ => json!({"echo": true}),
    }
}
