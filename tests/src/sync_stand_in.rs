//! A STAND-IN for the control plane's sync API, not the control plane: a small HTTP/1.1 server
//! on 127.0.0.1 that speaks the contract the wasm singleton relies on, so the singleton can be
//! tested with real Envoy on its own (tests against the real `portcullis` server live beside
//! the control plane's own tests).
//!
//! - `GET /v1/policy?wait=<s>` with `Authorization: Bearer <token>` (else 401): 503 while no
//!   snapshot is published; 200 with the snapshot, `ETag: "<version>-<hash16>"`,
//!   `x-portcullis-policy-version` and `cache-control: no-store`; with a matching
//!   `If-None-Match` the request is held until a new snapshot is published (→ 200) or `wait`
//!   seconds pass (→ 304).
//! - `POST /v1/audit` `{"events": […], "dropped": n}`: 202 `{"accepted": n}` and the batch is
//!   recorded, or the status set with [`StandInControlPlane::set_audit_status`] (nothing
//!   recorded), or 400 for a body that is not such an object.
//!
//! [`StandInControlPlane::stop`] closes the port and every open connection (a held long-poll
//! included); [`StandInControlPlane::restart`] listens on the same port again, with the same
//! state.

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{read_chunked, read_headers, read_request_line};
use crate::util::sha256_hex;

/// A snapshot as served.
#[derive(Debug, Clone)]
struct Published {
    body: Vec<u8>,
    version: u64,
    etag: String,
}

/// One `GET /v1/policy` as received, with what it was answered.
#[derive(Debug, Clone)]
pub struct PolicyRequest {
    pub path: String,
    pub authorization: Option<String>,
    pub if_none_match: Option<String>,
    pub host: Option<String>,
    /// 200, 304, 401, 503; 0 when the connection was closed before an answer (stop).
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
    /// When it was answered (or given up).
    pub answered_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    published: Option<Published>,
    /// Bumped by every stop, so held long-polls give up.
    generation: u64,
    audit_status: Option<u16>,
    batches: Vec<Value>,
    refused_batches: usize,
    policy_requests: Vec<PolicyRequest>,
    connections: Vec<TcpStream>,
    /// Answer 400 to `deltas=…`, as a control plane from before deltas did.
    refuse_deltas: bool,
}

struct Inner {
    token: String,
    state: Mutex<State>,
    changed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The stand-in server; stops on drop.
pub struct StandInControlPlane {
    port: u16,
    inner: Arc<Inner>,
    accept_thread: Option<JoinHandle<()>>,
}

impl StandInControlPlane {
    /// Listens on a free loopback port; requests must carry `Bearer <token>`.
    pub fn start(token: &str) -> StandInControlPlane {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in control plane");
        let port = listener.local_addr().expect("local_addr").port();
        let mut server = StandInControlPlane {
            port,
            inner: Arc::new(Inner {
                token: token.to_string(),
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
            accept_thread: None,
        };
        server.listen(listener);
        server
    }

    fn listen(&mut self, listener: TcpListener) {
        let inner = self.inner.clone();
        let generation = inner.lock().generation;
        let port = self.port;
        self.accept_thread = Some(
            std::thread::Builder::new()
                .name(format!("stand-in-cp-{port}"))
                .spawn(move || {
                    for conn in listener.incoming() {
                        if inner.lock().generation != generation {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let _ = conn.set_nodelay(true);
                        if let Ok(clone) = conn.try_clone() {
                            inner.lock().connections.push(clone);
                        }
                        let inner = inner.clone();
                        let _ = std::thread::Builder::new()
                            .name("stand-in-cp-conn".into())
                            .spawn(move || serve(conn, &inner, generation));
                    }
                })
                .expect("spawn stand-in accept loop"),
        );
    }

    /// Makes `GET /v1/policy` refuse the `deltas` parameter with 400, as a control plane from
    /// before deltas did (it refuses unknown parameters); it ignores it otherwise and always
    /// answers whole snapshots.
    pub fn refuse_deltas(&self, refuse: bool) {
        self.inner.lock().refuse_deltas = refuse;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Publishes a snapshot (its `version` member is the version); held long-polls answer.
    pub fn publish(&self, snapshot: &Value) {
        let version = snapshot["version"]
            .as_u64()
            .expect("snapshot has a version");
        self.publish_raw(
            version,
            serde_json::to_vec(snapshot).expect("serialize snapshot"),
        );
    }

    /// Publishes any bytes as version `version` (for snapshots that must fail validation).
    pub fn publish_raw(&self, version: u64, body: Vec<u8>) {
        let hash = sha256_hex(&body);
        let etag = format!("\"{version}-{}\"", &hash[..16]);
        self.inner.lock().published = Some(Published {
            body,
            version,
            etag,
        });
        self.inner.changed.notify_all();
    }

    /// The ETag of the published snapshot.
    pub fn etag(&self) -> Option<String> {
        self.inner.lock().published.as_ref().map(|p| p.etag.clone())
    }

    /// Answer audit batches with `status` (e.g. 503) instead of accepting them; `None`
    /// accepts again.
    pub fn set_audit_status(&self, status: Option<u16>) {
        self.inner.lock().audit_status = status;
    }

    /// Accepted audit batches, in arrival order.
    pub fn audit_batches(&self) -> Vec<Value> {
        self.inner.lock().batches.clone()
    }

    /// Every event of every accepted batch, in arrival order.
    pub fn audit_events(&self) -> Vec<Value> {
        self.audit_batches()
            .iter()
            .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Batches answered with the status of [`Self::set_audit_status`].
    pub fn refused_audit_batches(&self) -> usize {
        self.inner.lock().refused_batches
    }

    pub fn policy_requests(&self) -> Vec<PolicyRequest> {
        self.inner.lock().policy_requests.clone()
    }

    /// Closes the port and every connection; the state is kept for [`Self::restart`].
    pub fn stop(&mut self) {
        let connections = {
            let mut state = self.inner.lock();
            state.generation += 1;
            std::mem::take(&mut state.connections)
        };
        self.inner.changed.notify_all();
        for conn in connections {
            let _ = conn.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees the new generation and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
    }

    /// Listens on the same port again.
    pub fn restart(&mut self) {
        assert!(self.accept_thread.is_none(), "restart without stop");
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!(
                    "stand-in control plane cannot listen on {} again: {e}",
                    self.port
                ),
            }
        };
        self.listen(listener);
    }
}

impl Drop for StandInControlPlane {
    fn drop(&mut self) {
        if self.accept_thread.is_some() {
            self.stop();
        }
    }
}

fn respond(writer: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) -> bool {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if status != 304 {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    // One write: a separate small body write would wait for the peer's delayed ACK (Nagle),
    // adding ~40 ms that the real control plane does not have.
    let mut message = head.into_bytes();
    if status != 304 {
        message.extend_from_slice(body);
    }
    writer.write_all(&message).is_ok()
}

fn json_error(writer: &mut TcpStream, status: u16, error: &str) -> bool {
    let body = json!({"error": error}).to_string();
    respond(
        writer,
        status,
        &[("content-type", "application/json".into())],
        body.as_bytes(),
    )
}

fn serve(conn: TcpStream, inner: &Inner, generation: u64) {
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let Some((method, target)) = read_request_line(&mut reader) else {
            return;
        };
        let Ok(headers) = read_headers(&mut reader) else {
            return;
        };
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            read_chunked(&mut reader).ok()
        } else {
            let len: usize = get("content-length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let mut b = vec![0; len];
            reader.read_exact(&mut b).ok().map(|()| b)
        };
        let Some(body) = body else { return };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let authorized =
            get("authorization").as_deref() == Some(&format!("Bearer {}", inner.token));
        let ok = match (method.as_str(), path) {
            ("GET", "/v1/policy") => {
                let mut request = PolicyRequest {
                    path: target.clone(),
                    authorization: get("authorization"),
                    if_none_match: get("if-none-match"),
                    host: get("host"),
                    status: 0,
                    at: Instant::now(),
                    answered_at: None,
                };
                let refused = inner.lock().refuse_deltas
                    && query.split('&').any(|kv| kv.starts_with("deltas="));
                let ok = if authorized && refused {
                    request.status = 400;
                    json_error(&mut writer, 400, "deltas: unknown parameter")
                } else if authorized {
                    policy(&mut writer, inner, generation, query, &mut request)
                } else {
                    request.status = 401;
                    json_error(&mut writer, 401, "invalid sync token")
                };
                request.answered_at = Some(Instant::now());
                inner.lock().policy_requests.push(request);
                ok
            }
            ("POST", "/v1/audit") if !authorized => {
                json_error(&mut writer, 401, "invalid sync token")
            }
            ("POST", "/v1/audit") => audit(&mut writer, inner, &body),
            _ => json_error(&mut writer, 404, "not found"),
        };
        if !ok || get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            return;
        }
    }
}

/// Answers one `GET /v1/policy`, holding it while the client already has the current snapshot.
fn policy(
    writer: &mut TcpStream,
    inner: &Inner,
    generation: u64,
    query: &str,
    request: &mut PolicyRequest,
) -> bool {
    let wait = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("wait="))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        .min(60);
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut state = inner.lock();
    loop {
        if state.generation != generation {
            return false; // stopped: the connection is cut without an answer
        }
        let Some(published) = state.published.clone() else {
            drop(state);
            request.status = 503;
            return json_error(writer, 503, "no policy snapshot yet");
        };
        if request.if_none_match.as_deref() != Some(published.etag.as_str()) {
            drop(state);
            request.status = 200;
            return respond(
                writer,
                200,
                &[
                    ("content-type", "application/json".into()),
                    ("etag", published.etag.clone()),
                    ("x-portcullis-policy-version", published.version.to_string()),
                    ("cache-control", "no-store".into()),
                ],
                &published.body,
            );
        }
        let now = Instant::now();
        if now >= deadline {
            drop(state);
            request.status = 304;
            return respond(writer, 304, &[("etag", published.etag)], b"");
        }
        state = inner
            .changed
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn audit(writer: &mut TcpStream, inner: &Inner, body: &[u8]) -> bool {
    let refuse_with = inner.lock().audit_status;
    if let Some(status) = refuse_with {
        inner.lock().refused_batches += 1;
        return json_error(writer, status, "audit refused by the test");
    }
    let batch: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) if v["events"].is_array() => v,
        _ => return json_error(writer, 400, "expected {\"events\": [...]}"),
    };
    let accepted = batch["events"].as_array().map_or(0, Vec::len);
    inner.lock().batches.push(batch);
    let reply = json!({"accepted": accepted}).to_string();
    respond(
        writer,
        202,
        &[("content-type", "application/json".into())],
        reply.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Request;

    #[test]
    fn stand_in_follows_the_sync_contract() {
        let mut cp = StandInControlPlane::start("tok");
        let port = cp.port();
        let get = |etag: Option<&str>, wait: u64| {
            let mut r = Request::get(&format!("/v1/policy?wait={wait}")).bearer("tok");
            if let Some(e) = etag {
                r = r.header("if-none-match", e);
            }
            r.send(port)
        };
        assert_eq!(Request::get("/v1/policy").send(cp.port()).status, 401);
        assert_eq!(get(None, 0).status, 503);
        cp.publish(&json!({"format": 1, "version": 3}));
        let r = get(None, 0);
        assert_eq!(r.status, 200);
        let etag = r.header("etag").unwrap().to_string();
        assert!(
            etag.starts_with("\"3-") && etag.len() == 2 + 2 + 16,
            "{etag}"
        );
        assert_eq!(r.header("x-portcullis-policy-version"), Some("3"));
        assert_eq!(get(Some(&etag), 0).status, 304);
        // A held poll answers as soon as a new version is published.
        let started = Instant::now();
        std::thread::scope(|s| {
            let held = s.spawn(|| get(Some(&etag), 10));
            std::thread::sleep(Duration::from_millis(200));
            cp.publish(&json!({"format": 1, "version": 4}));
            let r = held.join().unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["version"], 4);
        });
        assert!(started.elapsed() < Duration::from_secs(5));

        let batch = json!({"events": [{"a": 1}], "dropped": 0});
        let post = |b: &Value| {
            Request::post("/v1/audit")
                .bearer("tok")
                .json(b)
                .send(cp.port())
        };
        assert_eq!(post(&batch).status, 202);
        cp.set_audit_status(Some(503));
        assert_eq!(post(&batch).status, 503);
        cp.set_audit_status(None);
        assert_eq!(post(&json!({"nope": 1})).status, 400);
        assert_eq!(cp.audit_events().len(), 1);
        assert_eq!(cp.refused_audit_batches(), 1);

        cp.stop();
        assert!(Request::get("/v1/policy").try_send(cp.port()).is_err());
        cp.restart();
        assert_eq!(get(None, 0).status, 200);
    }
}
