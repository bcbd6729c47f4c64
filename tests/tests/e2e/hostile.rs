//! Hostile HTTP against the hot path (issue 8), over HTTP/1.1 and HTTP/2 (h2c): trailers after
//! a forbidden call, bodies split over many frames, bodies on every method, `.well-known` in
//! every position, non-UTF-8 bytes in headers, spoofed identity headers, `Mcp-Method` /
//! `Mcp-Name` transport headers, CORS preflight.
//!
//! Each case is one table row run in both protocols. After every case the recording upstream
//! is checked (a refused request reached it not even as headers; a forwarded one arrived as
//! sent) and a valid request must still get 200: the gateway is alive. Every failing row is
//! collected, so one run names all of them.
//!
//! The snapshot is the standard one plus `listers` → `mcp:list` (`tools/list` only) and one
//! allowed browser origin. Envoy runs two workers and lets HTTP/1.1 chunked trailers through
//! to the filters (`enable_trailers`), so both protocols can send trailers. The body cases run
//! in both of the filter's hold modes: `"hold": "request"` (nothing reaches the upstream before
//! the decision) and `"hold": "body"` (headers go on; no byte of a refused body may).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::Duration;

use portcullis_e2e::snapshot::{
    grant, rpc, tool_call, GROUP_ADMINS, MCP_PATH, SCOPE_ECHO, SERVER, WELL_KNOWN_PATH,
};
use portcullis_e2e::{challenge_param, H2Request, RecordedRequest, Request, Response};
use serde_json::{json, Value};

use crate::common::{
    assert_insufficient_scope, assert_json_error, challenge, list, standard, token, Gate,
};

const GROUP_LISTERS: &str = "listers";
const SCOPE_LIST: &str = "mcp:list";
/// The user of [`lister`]'s token.
const LISTER: &str = "lena";
/// The one browser origin the snapshot allows.
const ORIGIN: &str = "https://inspector.example";
/// Bytes that are not UTF-8: a lone 0xff, a bad continuation, a lone continuation byte.
const BAD_BYTES: [&[u8]; 3] = [b"\xff", b"\xc3\x28", b"\x80"];
/// `settings.max_body_bytes` of the snapshot.
const MAX_BODY: usize = 4096;
/// Pause between the pieces of a split body, so Envoy hands them to the filter one by one.
const PACE: Duration = Duration::from_millis(2);

#[derive(Clone, Copy, Debug)]
enum Proto {
    H1,
    H2,
}

const BOTH: [Proto; 2] = [Proto::H1, Proto::H2];

fn snapshot() -> Value {
    standard()
        .scope(SCOPE_LIST, vec![grant(SERVER, &["tools/list"], &[])])
        .group_mapping(GROUP_LISTERS, &[SCOPE_LIST])
        .setting("allowed_origins", json!([ORIGIN]))
        .setting("max_body_bytes", json!(MAX_BODY))
        .build()
}

/// What the filter holds while it decides a body (the plugin's `"hold"` setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hold {
    /// The default: nothing of a request goes upstream before its decision, headers included
    /// (`allow_on_headers_stop_iteration: true`).
    Request,
    /// For meshes that cannot set `allow_on_headers_stop_iteration`: the headers go on, the
    /// body is held, a refused request is reset before any byte of its body is sent.
    Body,
}

/// Envoy (two workers, HTTP/1.1 trailers on) with the filter in front of the echo upstream;
/// every path goes to the upstream (`/srv/…` as `/…`).
fn gate(name: &str, hold: Hold) -> Gate {
    Gate::start_with(name, &snapshot(), |c| {
        let c = c.concurrency(2).with_http1_trailers();
        match hold {
            Hold::Request => c,
            Hold::Body => {
                let configuration = json!({"snapshot": snapshot(), "hold": "body"});
                let mut c = c.with_plugin_configuration(configuration.to_string());
                if let Some(filter) = c.filter.as_mut() {
                    filter.hold_headers_for_body = false;
                }
                c
            }
        }
    })
}

/// A valid token whose groups may only call `tools/list` (one per test binary: the filter's
/// cache stays warm).
fn lister() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| token(LISTER, &[GROUP_LISTERS]))
}

/// A valid token allowed everything.
fn admin() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| token("ada", &[GROUP_ADMINS]))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialize")
}

/// `tools/list`: allowed for the lister.
fn list_body() -> Vec<u8> {
    to_bytes(&rpc(1, "tools/list", json!({})))
}

/// `tools/call` of `echo`: forbidden for the lister.
fn call_body() -> Vec<u8> {
    to_bytes(&tool_call(2, "echo", json!({"message": "m"})))
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A request in protocol-neutral form: rendered for HTTP/1.1 ([`Msg::h1`]) or HTTP/2
/// ([`Msg::h2`]).
#[derive(Clone, Debug)]
struct Msg {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    /// The body, one frame (HTTP/2 DATA, HTTP/1.1 chunk) per item. One item and no trailers:
    /// HTTP/1.1 sends it with `content-length`.
    chunks: Vec<Vec<u8>>,
    trailers: Vec<(String, Vec<u8>)>,
}

impl Msg {
    fn new(method: &str, path: &str) -> Msg {
        Msg {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            chunks: Vec::new(),
            trailers: Vec::new(),
        }
    }

    fn post(path: &str) -> Msg {
        Msg::new("POST", path)
    }

    fn get(path: &str) -> Msg {
        Msg::new("GET", path)
    }

    /// `POST /srv/mcp` with the lister's token and `body`.
    fn mcp(body: Vec<u8>) -> Msg {
        Msg::post(MCP_PATH).bearer(lister()).body(body)
    }

    fn header(self, name: &str, value: &str) -> Msg {
        self.raw(name, value.as_bytes())
    }

    fn raw(mut self, name: &str, value: &[u8]) -> Msg {
        self.headers.push((name.into(), value.to_vec()));
        self
    }

    fn bearer(self, token: &str) -> Msg {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn body(mut self, body: Vec<u8>) -> Msg {
        self.chunks = vec![body];
        self.header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
    }

    /// The body split into `n` pieces of (nearly) equal size.
    fn split(mut self, n: usize) -> Msg {
        let whole = self.whole_body();
        let size = whole.len().div_ceil(n.max(1)).max(1);
        self.chunks = whole.chunks(size).map(<[u8]>::to_vec).collect();
        self
    }

    fn trailer(mut self, name: &str, value: &str) -> Msg {
        self.trailers.push((name.into(), value.as_bytes().to_vec()));
        self
    }

    fn whole_body(&self) -> Vec<u8> {
        self.chunks.concat()
    }

    fn trailer_refs(&self) -> Vec<(&str, &[u8])> {
        self.trailers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect()
    }

    fn h1(&self) -> Request {
        let mut r = Request::new(&self.method, &self.path);
        for (k, v) in &self.headers {
            r = r.raw_header(k, v);
        }
        if self.chunks.len() > 1 || !self.trailers.is_empty() {
            r.chunked(&self.chunks, &self.trailer_refs()).pace(PACE)
        } else if let Some(body) = self.chunks.first() {
            r.body(body.clone())
        } else {
            r
        }
    }

    fn h2(&self) -> H2Request {
        let mut r = H2Request::new(&self.method, &self.path);
        for (k, v) in &self.headers {
            // HTTP/2 header names are lowercase on the wire.
            r = r.raw_header(&k.to_ascii_lowercase(), v);
        }
        r.chunks(&self.chunks)
            .trailers(&self.trailer_refs())
            .pace(PACE)
    }

    fn send(&self, gate: &Gate, proto: Proto) -> Result<Response, String> {
        self.send_to(gate.envoy.port(), proto)
    }

    fn send_to(&self, port: u16, proto: Proto) -> Result<Response, String> {
        match proto {
            Proto::H1 => self
                .h1()
                .try_send(port)
                .map_err(|e| format!("HTTP/1.1 request failed: {e}")),
            Proto::H2 => self
                .h2()
                .send(port)
                .map_err(|e| format!("HTTP/2 request failed: {e}")),
        }
    }
}

/// What a response must look like beyond its status.
type ReplyCheck = fn(&Response, &Msg);
/// What the upstream must have received, beyond the body as sent.
type UpstreamCheck = fn(&RecordedRequest, &Msg);

#[derive(Clone, Copy)]
enum Status {
    Is(u16),
    /// 400 from the filter or from Envoy's codec, or the stream reset by Envoy: a request no
    /// HTTP implementation has to accept (e.g. a `content-length` that is not a number).
    RejectedOrReset,
}

#[derive(Clone, Copy)]
struct Expect {
    status: Status,
    /// Forwarded: the upstream got exactly one request with the body as sent.
    forwarded: bool,
    reply: ReplyCheck,
    upstream: UpstreamCheck,
}

/// Answered by the gateway with `status`; the upstream saw nothing.
fn answered(status: u16, reply: ReplyCheck) -> Expect {
    Expect {
        status: Status::Is(status),
        forwarded: false,
        reply,
        upstream: |_, _| {},
    }
}

/// Refused by the filter or Envoy (400 or a reset); the upstream saw nothing.
fn rejected() -> Expect {
    Expect {
        status: Status::RejectedOrReset,
        ..answered(400, no_check)
    }
}

/// Forwarded and answered 200 by the upstream, which got the body as sent, the trusted identity
/// of the token, and every other header byte for byte.
fn passes() -> Expect {
    passes_with(trusted_identity)
}

fn passes_with(upstream: UpstreamCheck) -> Expect {
    Expect {
        status: Status::Is(200),
        forwarded: true,
        reply: no_check,
        upstream,
    }
}

fn no_check(_: &Response, _: &Msg) {}

impl Expect {
    fn reply(mut self, check: ReplyCheck) -> Expect {
        self.reply = check;
        self
    }
}

struct Case {
    what: String,
    msg: Msg,
    expect: Expect,
}

fn case(what: impl Into<String>, msg: Msg, expect: Expect) -> Case {
    Case {
        what: what.into(),
        msg,
        expect,
    }
}

/// Runs every case in both protocols on one gate (the default hold); panics naming every
/// failed row.
fn run_cases(name: &str, cases: &[Case]) {
    let gate = gate(name, Hold::Request);
    assert_no_failures(
        failures(&gate, Hold::Request, cases),
        cases.len() * BOTH.len(),
    );
}

/// [`run_cases`] with each hold mode (a gate per mode).
fn run_cases_in_both_holds(name: &str, cases: &[Case]) {
    let mut all = Vec::new();
    for hold in [Hold::Request, Hold::Body] {
        let gate = gate(&format!("{name}_{hold:?}").to_lowercase(), hold);
        all.extend(failures(&gate, hold, cases));
    }
    assert_no_failures(all, cases.len() * BOTH.len() * 2);
}

fn failures(gate: &Gate, hold: Hold, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for proto in BOTH {
        for c in cases {
            let outcome = catch_unwind(AssertUnwindSafe(|| run_case(gate, hold, proto, c)));
            if let Err(panic) = outcome {
                failures.push(format!(
                    "[{proto:?}, hold {hold:?}] {}: {}",
                    c.what,
                    panic_text(&*panic)
                ));
            }
        }
    }
    failures
}

fn assert_no_failures(failures: Vec<String>, total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(panic without a message)".into())
}

fn run_case(gate: &Gate, hold: Hold, proto: Proto, c: &Case) {
    gate.upstream.clear();
    let outcome = c.msg.send(gate, proto);
    match (c.expect.status, &outcome) {
        (Status::Is(status), Ok(resp)) => {
            assert_eq!(resp.status, status, "{}", resp.describe());
            (c.expect.reply)(resp, &c.msg);
        }
        (Status::Is(status), Err(e)) => panic!("expected {status}, got no response: {e}"),
        (Status::RejectedOrReset, Ok(resp)) => {
            assert_eq!(resp.status, 400, "{}", resp.describe())
        }
        (Status::RejectedOrReset, Err(_)) => {}
    }
    // Let the upstream record what it got (a forwarded request is recorded before it is
    // answered; a refused one reset upstream is recorded when its connection goes).
    std::thread::sleep(Duration::from_millis(match hold {
        Hold::Request => 20,
        Hold::Body => 150,
    }));
    let (complete, cut): (Vec<_>, Vec<_>) = gate
        .upstream
        .all_requests()
        .into_iter()
        .partition(|r| r.complete);
    let cut_bodies: Vec<_> = cut.iter().filter(|r| !r.body.is_empty()).collect();
    assert!(
        cut_bodies.is_empty(),
        "body bytes of a refused request reached the upstream: {}",
        describe_seen(&cut_bodies)
    );
    if hold == Hold::Request {
        assert!(
            cut.is_empty(),
            "the upstream got the headers of a request before its decision: {}",
            describe_seen(&cut.iter().collect::<Vec<_>>())
        );
    }
    if c.expect.forwarded {
        assert_eq!(
            complete.len(),
            1,
            "the upstream should have received the request once: {complete:?}"
        );
        let got = &complete[0];
        assert_eq!(
            String::from_utf8_lossy(&got.body),
            String::from_utf8_lossy(&c.msg.whole_body()),
            "the upstream got another body"
        );
        forwarded_as_sent(got, &c.msg);
        (c.expect.upstream)(got, &c.msg);
    } else {
        assert!(
            complete.is_empty(),
            "the upstream should not have received this request: {}",
            describe_seen(&complete.iter().collect::<Vec<_>>())
        );
    }
    assert_alive(gate, proto);
}

fn describe_seen(seen: &[&RecordedRequest]) -> String {
    let lines: Vec<String> = seen
        .iter()
        .map(|r| {
            format!(
                "{} {} (complete: {}) body {:?}",
                r.method,
                r.path,
                r.complete,
                String::from_utf8_lossy(&r.body)
            )
        })
        .collect();
    format!("{lines:?}")
}

/// A valid request still gets 200: the gateway survived.
fn assert_alive(gate: &Gate, proto: Proto) {
    gate.upstream.clear();
    let valid = Msg::mcp(list_body());
    match valid.send(gate, proto) {
        Ok(resp) => assert_eq!(
            resp.status,
            200,
            "the gateway is not alive: a valid tools/list after this case got {}",
            resp.describe()
        ),
        Err(e) => panic!("the gateway is not alive: a valid tools/list after this case: {e}"),
    }
    gate.upstream.clear();
}

/// Headers the gateway removes, sets or may rewrite.
fn managed(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("x-portcullis-")
        || [
            "authorization",
            "x-api-key",
            "host",
            "content-length",
            "transfer-encoding",
            "x-request-id",
        ]
        .contains(&name.as_str())
}

/// Every header the client sent that the gateway does not manage arrived byte for byte;
/// no credential did.
fn forwarded_as_sent(got: &RecordedRequest, msg: &Msg) {
    for (name, value) in msg.headers.iter().filter(|(n, _)| !managed(n)) {
        assert_eq!(
            got.header_bytes(name),
            Some(value.as_slice()),
            "header {name} was not forwarded as sent: {:?}",
            got.raw_headers
        );
    }
    for credential in ["authorization", "x-api-key"] {
        assert!(
            got.header(credential).is_none(),
            "{credential} reached the upstream: {:?}",
            got.headers
        );
    }
}

/// The upstream saw exactly the lister's trusted identity, whatever the client sent.
fn trusted_identity(got: &RecordedRequest, _: &Msg) {
    assert_eq!(
        got.header_all("x-portcullis-user"),
        vec![LISTER],
        "{:?}",
        got.headers
    );
    let groups = got.header_all("x-portcullis-groups");
    assert_eq!(groups.len(), 1, "{:?}", got.headers);
    assert_eq!(list(groups[0]), vec![GROUP_LISTERS.to_string()]);
    assert_eq!(
        got.header_all("x-portcullis-scopes"),
        vec![SCOPE_LIST],
        "{:?}",
        got.headers
    );
    let others: Vec<_> = got
        .headers
        .iter()
        .filter(|(k, _)| {
            k.starts_with("x-portcullis-")
                && ![
                    "x-portcullis-user",
                    "x-portcullis-groups",
                    "x-portcullis-scopes",
                ]
                .contains(&k.as_str())
        })
        .collect();
    assert!(
        others.is_empty(),
        "client-sent identity headers: {others:?}"
    );
}

/// A discovery document: no identity at all reached the upstream.
fn no_identity(got: &RecordedRequest, _: &Msg) {
    let identity: Vec<_> = got
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-portcullis-"))
        .collect();
    assert!(identity.is_empty(), "identity headers: {identity:?}");
}

/// A JSON body (none for `HEAD`).
fn json_body(resp: &Response, msg: &Msg) -> Option<Value> {
    (msg.method != "HEAD").then(|| resp.json())
}

/// A 401 with a Bearer challenge naming the server's resource metadata.
fn bearer_challenge(resp: &Response, _: &Msg) {
    let c = challenge(resp);
    assert!(
        challenge_param(&c, "resource_metadata").is_some(),
        "challenge without resource_metadata: {c:?}"
    );
}

/// A 401 `invalid_request` (credentials that are not one well-formed bearer token or key).
fn malformed_credentials(resp: &Response, msg: &Msg) {
    bearer_challenge(resp, msg);
    let c = challenge(resp);
    assert_eq!(
        challenge_param(&c, "error").as_deref(),
        Some("invalid_request"),
        "challenge {c:?}"
    );
}

fn insufficient_scope(resp: &Response, _: &Msg) {
    assert_insufficient_scope(resp, "forbidden call", SCOPE_ECHO);
}

fn body_not_allowed(resp: &Response, msg: &Msg) {
    if let Some(body) = json_body(resp, msg) {
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.contains("only POST carries a JSON-RPC body"),
            "{}",
            resp.describe()
        );
    }
}

fn jsonrpc_error(resp: &Response, msg: &Msg) {
    if let Some(body) = json_body(resp, msg) {
        assert!(body["error"]["code"].is_i64(), "{}", resp.describe());
    }
}

/// A JSON error body of either shape: OAuth-style or a JSON-RPC error object.
fn json_error(resp: &Response, msg: &Msg) {
    if msg.method != "HEAD" {
        assert_json_error(resp, resp.status, None);
    }
}

fn header_mismatch(resp: &Response, msg: &Msg) {
    if let Some(body) = json_body(resp, msg) {
        assert_eq!(body["error"]["code"], -32020, "{}", resp.describe());
    }
}

fn method_not_allowed(resp: &Response, _: &Msg) {
    let allow = list(resp.header("allow").unwrap_or_default());
    for m in ["GET", "HEAD", "OPTIONS"] {
        assert!(allow.iter().any(|a| a == m), "allow {allow:?}");
    }
}

fn origin_not_allowed(resp: &Response, msg: &Msg) {
    if let Some(body) = json_body(resp, msg) {
        assert_eq!(body["error"], "forbidden_origin", "{}", resp.describe());
    }
}

/// Carries the CORS headers for [`ORIGIN`].
fn cors_answer(resp: &Response, _: &Msg) {
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some(ORIGIN),
        "{}",
        resp.describe()
    );
    let vary = list(&resp.header_all("vary").join(",").to_ascii_lowercase());
    assert!(vary.iter().any(|v| v == "origin"), "{}", resp.describe());
}

fn cors_preflight(resp: &Response, msg: &Msg) {
    cors_answer(resp, msg);
    let methods = list(
        resp.header("access-control-allow-methods")
            .unwrap_or_default(),
    );
    for m in ["GET", "POST", "DELETE", "OPTIONS"] {
        assert!(methods.iter().any(|x| x == m), "{}", resp.describe());
    }
    let allowed = list(
        &resp
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase(),
    );
    for h in [
        "authorization",
        "content-type",
        "mcp-method",
        "mcp-name",
        "x-api-key",
    ] {
        assert!(allowed.iter().any(|x| x == h), "{h}: {}", resp.describe());
    }
    assert!(
        resp.header("access-control-max-age").is_some(),
        "{}",
        resp.describe()
    );
}

/// The clients themselves, through Envoy without the filter: raw header bytes, a body in many
/// pieces and trailers arrive at the upstream as sent, in both protocols.
#[test]
fn harness_hostile_clients_send_exact_bytes() {
    use portcullis_e2e::{EchoUpstream, Envoy, EnvoyConfig, TestDir};
    let dir = TestDir::new("harness_hostile_clients");
    let upstream = EchoUpstream::start();
    let config = EnvoyConfig::plain(upstream.port()).with_http1_trailers();
    let envoy = Envoy::start(&config, &dir);
    for proto in BOTH {
        upstream.clear();
        let msg = Msg::post(MCP_PATH)
            .body(call_body())
            .split(7)
            .raw("x-a", b"\xff\xc3\x28\x80")
            .raw("authorization", b"Bearer \xff")
            .trailer("x-trailer", "1");
        let resp = msg
            .send_to(envoy.port(), proto)
            .unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(resp.status, 200, "{proto:?}: {}", resp.describe());
        let seen = upstream.requests();
        assert_eq!(seen.len(), 1, "{proto:?}: {seen:?}");
        assert_eq!(seen[0].body, call_body(), "{proto:?}");
        assert_eq!(
            seen[0].header_bytes("x-a"),
            Some(&b"\xff\xc3\x28\x80"[..]),
            "{proto:?}"
        );
        assert_eq!(
            seen[0].header_bytes("authorization"),
            Some(&b"Bearer \xff"[..]),
            "{proto:?}"
        );
        let head = Msg::new("HEAD", MCP_PATH).body(b"x".to_vec());
        let resp = head.send_to(envoy.port(), proto).expect("HEAD with a body");
        assert_eq!(resp.status, 200, "{proto:?}: {}", resp.describe());
    }
}

#[test]
fn trailers_do_not_skip_the_body_check() {
    run_cases_in_both_holds(
        "hostile_trailers",
        &[
            case(
                "forbidden tools/call, then trailers",
                Msg::mcp(call_body()).trailer("x-trailer", "1"),
                answered(403, insufficient_scope),
            ),
            case(
                "forbidden tools/call over 10 frames, then trailers",
                Msg::mcp(call_body()).split(10).trailer("x-trailer", "1"),
                answered(403, insufficient_scope),
            ),
            case(
                "malformed body, then trailers",
                Msg::mcp(b"{\"jsonrpc\": \"2.0\", \"method\":".to_vec()).trailer("x-t", "1"),
                answered(400, jsonrpc_error),
            ),
            case(
                "allowed tools/list, then trailers",
                Msg::mcp(list_body()).trailer("x-trailer", "1"),
                passes(),
            ),
            case(
                "allowed tools/list over 10 frames, then trailers",
                Msg::mcp(list_body()).split(10).trailer("x-trailer", "1"),
                passes(),
            ),
        ],
    );
}

#[test]
fn bodies_split_over_many_frames_are_decided_whole() {
    let batch = to_bytes(&json!([
        rpc(1, "tools/list", json!({})),
        tool_call(2, "echo", json!({"message": "m"})),
    ]));
    run_cases_in_both_holds(
        "hostile_split_bodies",
        &[
            case(
                "forbidden tools/call in 50 frames",
                Msg::mcp(call_body()).split(50),
                answered(403, insufficient_scope),
            ),
            case(
                "batch hiding a forbidden call, in 50 frames",
                Msg::mcp(batch).split(50),
                answered(403, insufficient_scope),
            ),
            case(
                "malformed body in 20 frames",
                Msg::mcp(b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\"".to_vec()).split(20),
                answered(400, jsonrpc_error),
            ),
            case(
                "allowed tools/list in 50 frames",
                Msg::mcp(list_body()).split(50),
                passes(),
            ),
            case(
                "a body over max_body_bytes in 40 frames, no content-length",
                Msg::mcp(big_list_body()).split(40),
                answered(413, json_error),
            ),
            case(
                "a body over max_body_bytes in 40 frames, then trailers",
                Msg::mcp(big_list_body()).split(40).trailer("x-t", "1"),
                answered(413, json_error),
            ),
            case(
                "POST with no body, only trailers",
                Msg::post(MCP_PATH)
                    .bearer(lister())
                    .header("content-type", "application/json")
                    .trailer("x-t", "1"),
                answered(400, json_error),
            ),
        ],
    );
}

/// An allowed `tools/list` padded past [`MAX_BODY`].
fn big_list_body() -> Vec<u8> {
    let body = to_bytes(&rpc(1, "tools/list", json!({"pad": "x".repeat(MAX_BODY)})));
    assert!(body.len() > MAX_BODY);
    body
}

#[test]
fn bodies_on_other_methods_are_refused() {
    let mut cases: Vec<Case> = ["PUT", "PATCH", "GET", "DELETE", "OPTIONS", "HEAD"]
        .into_iter()
        .map(|m| {
            case(
                format!("{m} with a tools/call body"),
                Msg::new(m, MCP_PATH).bearer(lister()).body(call_body()),
                answered(400, body_not_allowed),
            )
        })
        .collect();
    cases.extend([
        case(
            "GET with a one-byte body",
            Msg::get(MCP_PATH).bearer(lister()).body(b"x".to_vec()),
            answered(400, body_not_allowed),
        ),
        case(
            "GET with a tools/call body in 5 frames (no content-length)",
            Msg::get(MCP_PATH)
                .bearer(lister())
                .body(call_body())
                .split(5),
            answered(400, body_not_allowed),
        ),
        case(
            "DELETE with a tools/call body and trailers",
            Msg::new("DELETE", MCP_PATH)
                .bearer(lister())
                .body(call_body())
                .trailer("x-t", "1"),
            answered(400, body_not_allowed),
        ),
        case(
            "GET without a body",
            Msg::get(MCP_PATH).bearer(lister()),
            passes(),
        ),
        case(
            "DELETE without a body",
            Msg::new("DELETE", MCP_PATH).bearer(lister()),
            passes(),
        ),
        case(
            "GET without a body, only trailers",
            Msg::get(MCP_PATH).bearer(lister()).trailer("x-t", "1"),
            passes(),
        ),
    ]);
    run_cases_in_both_holds("hostile_other_methods", &cases);
}

#[test]
fn well_known_segments_need_credentials_except_the_discovery_documents() {
    let unauthenticated = |method: &str, path: &str| {
        let msg = Msg::new(method, path);
        let msg = if method == "POST" {
            msg.body(call_body())
        } else {
            msg
        };
        case(
            format!("{method} {path} without a token"),
            msg,
            answered(401, bearer_challenge),
        )
    };
    let discovery = |path: &str| {
        case(
            format!("GET {path} with a forged token and identity"),
            Msg::get(path)
                .header("authorization", "Bearer forged")
                .header("x-portcullis-user", "mallory"),
            passes_with(no_identity),
        )
    };
    // A path not in normal form is refused before any routing (a dot segment or an encoded
    // separator must not turn a server request into a discovery document, or back).
    let not_normal = |path: &str| {
        case(
            format!("POST {path} (not in normal form)"),
            Msg::post(path).bearer(lister()).body(call_body()),
            rejected(),
        )
    };
    run_cases(
        "hostile_well_known",
        &[
            unauthenticated("POST", "/srv/mcp/.well-known"),
            unauthenticated("POST", "/srv/x/.well-known/y"),
            unauthenticated("GET", "/srv/x/.well-known/y"),
            unauthenticated("GET", "/srv/mcp/.well-known/foo"),
            unauthenticated("POST", "/srv/mcp/.well-known/foo"),
            unauthenticated("GET", "/srv/.well-known/foo"),
            unauthenticated("POST", "/srv/mcp/.well-known/oauth-protected-resource"),
            unauthenticated("POST", "/srv/.well-known/oauth-protected-resource"),
            unauthenticated("GET", "/srv/mcp/.well-known/oauth-protected-resource/x"),
            unauthenticated("GET", "/srv/mcp?/.well-known/oauth-protected-resource"),
            unauthenticated("POST", "/srv/mcp?x=/.well-known/oauth-protected-resource"),
            unauthenticated("GET", "/srv/mcp/.well-known/oauth-protected-resource;x"),
            discovery(WELL_KNOWN_PATH),
            discovery("/srv/.well-known/oauth-protected-resource"),
            discovery("/srv/mcp/.well-known/oauth-protected-resource"),
            discovery("/.well-known/oauth-authorization-server"),
            discovery("/.well-known/oauth-authorization-server?x=1"),
            discovery("/.well-known/openid-configuration"),
            not_normal("/.well-known/oauth-protected-resource/../../srv/mcp"),
            not_normal("/.well-known/oauth-protected-resource/%2e%2e/%2E%2E/srv/mcp"),
            not_normal("/.well-known/oauth-authorization-server/..%2f..%2Fsrv%2fmcp"),
            not_normal("/srv/mcp/..%2f.well-known/oauth-protected-resource"),
            not_normal("/srv/mcp/.well-known/oauth-protected-resource/%5c..%5cx"),
            not_normal("/srv//mcp/.well-known/oauth-protected-resource"),
            not_normal("/srv/./mcp/.well-known/oauth-protected-resource"),
            case(
                "POST /.well-known/oauth-authorization-server",
                Msg::post("/.well-known/oauth-authorization-server").body(call_body()),
                answered(405, method_not_allowed),
            ),
            case(
                "PUT on the resource metadata",
                Msg::new("PUT", WELL_KNOWN_PATH).body(call_body()),
                answered(405, method_not_allowed),
            ),
            // Nothing rides along on a request that needs no credentials.
            case(
                "GET of the resource metadata with a body",
                Msg::get(WELL_KNOWN_PATH).body(call_body()),
                answered(400, body_not_allowed),
            ),
        ],
    );
}

/// Non-UTF-8 bytes in every header the filter reads get a clear answer; in the others they
/// are forwarded unchanged.
#[test]
fn non_utf8_header_bytes_get_clear_answers() {
    let mut cases = Vec::new();
    for bad in BAD_BYTES {
        let hex: String = bad.iter().map(|b| format!("\\x{b:02x}")).collect();
        let with = |name: &str, value: Vec<u8>| Msg::mcp(list_body()).raw(name, &value);
        cases.extend([
            case(
                format!("authorization: Bearer {hex}"),
                Msg::post(MCP_PATH)
                    .body(list_body())
                    .raw("authorization", &concat(&[b"Bearer ", bad])),
                answered(401, malformed_credentials),
            ),
            case(
                format!("authorization: Bearer <valid token>{hex}"),
                Msg::post(MCP_PATH).body(list_body()).raw(
                    "authorization",
                    &concat(&[b"Bearer ", lister().as_bytes(), bad]),
                ),
                answered(401, malformed_credentials),
            ),
            case(
                format!("authorization: {hex}"),
                Msg::post(MCP_PATH)
                    .body(list_body())
                    .raw("authorization", bad),
                answered(401, malformed_credentials),
            ),
            case(
                format!("x-api-key: {hex}"),
                Msg::post(MCP_PATH).body(list_body()).raw("x-api-key", bad),
                answered(401, malformed_credentials),
            ),
            case(
                format!("origin: {ORIGIN}{hex}"),
                with("origin", concat(&[ORIGIN.as_bytes(), bad])),
                answered(403, origin_not_allowed),
            ),
            case(
                format!("content-length: {hex}"),
                with("content-length", bad.to_vec()),
                rejected(),
            ),
            case(
                format!("mcp-method: {hex}"),
                with("mcp-method", bad.to_vec()),
                answered(400, json_error),
            ),
            case(
                format!("mcp-name: {hex}"),
                with("mcp-name", bad.to_vec()),
                answered(400, json_error),
            ),
            case(
                format!("x-request-id: {hex}"),
                with("x-request-id", bad.to_vec()),
                passes(),
            ),
            case(
                format!("x-a: {hex} (a header the filter does not read)"),
                with("x-a", bad.to_vec()),
                passes(),
            ),
            case(
                format!("x-a: {hex} on a GET"),
                Msg::get(MCP_PATH).bearer(lister()).raw("x-a", bad),
                passes(),
            ),
        ]);
    }
    run_cases("hostile_non_utf8", &cases);
}

/// Six requests with non-UTF-8 header bytes in a row, without a valid one in between, on a
/// two-worker Envoy: each gets a clear answer and the gateway answers the next valid request.
/// (Before issue 8 the first of them panicked the VM and every worker answered 503 from then on.)
#[test]
fn non_utf8_header_bytes_in_a_row_leave_the_gateway_up() {
    let gate = gate("hostile_non_utf8_burst", Hold::Request);
    let burst = [
        Msg::get(MCP_PATH).raw("x-a", b"\xff"),
        Msg::post(MCP_PATH).body(list_body()).raw("x-a", b"\xff"),
        Msg::mcp(list_body()).raw("origin", b"\xc3\x28"),
        Msg::post(MCP_PATH)
            .body(list_body())
            .raw("authorization", b"Bearer \x80"),
        Msg::mcp(list_body()).raw("mcp-method", b"tools/\xff"),
        Msg::post(MCP_PATH)
            .body(list_body())
            .raw("x-api-key", b"\xff\xfe"),
    ];
    let mut failures = Vec::new();
    for proto in BOTH {
        gate.upstream.clear();
        for (i, msg) in burst.iter().enumerate() {
            match msg.send(&gate, proto) {
                Ok(resp) if (400..500).contains(&resp.status) => {}
                Ok(resp) => failures.push(format!(
                    "[{proto:?}] request {i}: expected a 4xx, got {}",
                    resp.describe()
                )),
                Err(e) => failures.push(format!("[{proto:?}] request {i}: {e}")),
            }
        }
        let seen = gate.upstream.all_requests();
        if !seen.is_empty() {
            failures.push(format!("[{proto:?}] the upstream got {seen:?}"));
        }
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| assert_alive(&gate, proto))) {
            failures.push(format!("[{proto:?}] {}", panic_text(&*panic)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let spoof = |msg: Msg| {
        msg.header("x-portcullis-user", "mallory")
            .header("X-Portcullis-Groups", "admins")
            .header("X-PORTCULLIS-SCOPES", "mcp:all")
            .header("x-Portcullis-User", "mallory2")
            .header("x-portcullis-extra", "1")
    };
    let mut too_many = Msg::mcp(list_body());
    for i in 0..9 {
        too_many = too_many.header(&format!("x-portcullis-spoof-{i}"), "1");
    }
    run_cases(
        "hostile_spoofed_identity",
        &[
            case(
                "POST tools/list with spoofed identity headers",
                spoof(Msg::mcp(list_body())),
                passes(),
            ),
            case(
                "GET with spoofed identity headers",
                spoof(Msg::get(MCP_PATH).bearer(lister())),
                passes(),
            ),
            case(
                "spoofed identity headers without a token",
                spoof(Msg::post(MCP_PATH).body(list_body())),
                answered(401, bearer_challenge),
            ),
            case(
                "spoofed admin identity calling a tool",
                spoof(Msg::mcp(call_body())),
                answered(403, insufficient_scope),
            ),
            case(
                "nine client-sent identity headers",
                too_many,
                answered(400, json_error),
            ),
        ],
    );
}

#[test]
fn mcp_method_and_name_headers_must_agree_with_the_body() {
    let call = |headers: &[(&str, &str)], token: &str| {
        headers.iter().fold(
            Msg::post(MCP_PATH).bearer(token).body(call_body()),
            |m, (k, v)| m.header(k, v),
        )
    };
    let batch = to_bytes(&json!([
        rpc(1, "tools/list", json!({})),
        rpc(2, "tools/list", json!({}))
    ]));
    run_cases_in_both_holds(
        "hostile_mcp_headers",
        &[
            case(
                "Mcp-Method: tools/call on a tools/list body",
                Msg::mcp(list_body()).header("Mcp-Method", "tools/call"),
                answered(400, header_mismatch),
            ),
            case(
                "Mcp-Method: tools/list on a tools/call body",
                call(&[("Mcp-Method", "tools/list")], lister()),
                answered(400, header_mismatch),
            ),
            case(
                "Mcp-Name: get-sum on a call of echo",
                call(
                    &[("Mcp-Method", "tools/call"), ("Mcp-Name", "get-sum")],
                    admin(),
                ),
                answered(400, header_mismatch),
            ),
            case(
                "Mcp-Name on a tools/list body",
                Msg::mcp(list_body()).header("Mcp-Name", "echo"),
                answered(400, header_mismatch),
            ),
            case(
                "Mcp-Method on a batch",
                Msg::mcp(batch).header("Mcp-Method", "tools/list"),
                answered(400, header_mismatch),
            ),
            case(
                "agreeing Mcp-Method: tools/list",
                Msg::mcp(list_body()).header("Mcp-Method", "tools/list"),
                passes(),
            ),
            case(
                "agreeing headers on a forbidden call: the body decides",
                call(
                    &[("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
                    lister(),
                ),
                answered(403, insufficient_scope),
            ),
            case(
                "agreeing headers on an allowed call",
                call(
                    &[("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
                    admin(),
                ),
                passes_with(|_, _| {}),
            ),
        ],
    );
}

#[test]
fn cors_preflight_is_answered_for_allowed_origins_only() {
    let preflight = |origin: &[u8]| {
        Msg::new("OPTIONS", MCP_PATH)
            .raw("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
    };
    run_cases(
        "hostile_cors",
        &[
            case(
                "preflight from the allowed origin",
                preflight(ORIGIN.as_bytes()),
                answered(204, cors_preflight),
            ),
            case(
                "preflight from another origin",
                preflight(b"https://evil.example"),
                answered(403, origin_not_allowed),
            ),
            case(
                "preflight from a non-UTF-8 origin",
                preflight(b"https://\xffevil.example"),
                answered(403, origin_not_allowed),
            ),
            case(
                "POST from the allowed origin",
                Msg::mcp(list_body()).header("origin", ORIGIN),
                passes().reply(cors_answer),
            ),
            case(
                "POST without a token from the allowed origin",
                Msg::post(MCP_PATH)
                    .body(list_body())
                    .header("origin", ORIGIN),
                answered(401, |r, m| {
                    bearer_challenge(r, m);
                    cors_answer(r, m);
                }),
            ),
            case(
                "POST from another origin",
                Msg::mcp(list_body()).header("origin", "https://evil.example"),
                answered(403, origin_not_allowed),
            ),
        ],
    );
}
