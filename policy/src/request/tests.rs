//! Every request rule, from header bytes to the body: status, reason, headers.

use serde_json::{json, Value};

use super::*;
use crate::tests::{claims, compile, rs256, rsa_key, snapshot, NOW};

const EVERYTHING: ServerId = 0;
const MCP: &str = "/everything/mcp";

fn policy() -> Policy {
    let mut snap = snapshot();
    snap["settings"] = json!({"allowed_origins": ["https://inspector.test"]});
    compile(&snap)
}

fn jwt() -> String {
    rs256(&rsa_key("a"), Some("k1"), &claims())
}

/// Headers as a client would send them; `:method` and `:path` first, like Envoy.
struct Req {
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

fn req(method: &str, path: &str) -> Req {
    Req {
        headers: vec![
            (b":method".to_vec(), method.as_bytes().to_vec()),
            (b":path".to_vec(), path.as_bytes().to_vec()),
        ],
    }
}

impl Req {
    fn header(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Req {
        self.headers
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    fn bearer(self, token: &str) -> Req {
        self.header("authorization", format!("Bearer {token}"))
    }

    fn pairs(&self) -> Vec<HeaderPair<'_>> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect()
    }
}

/// The head verdict, turned into something comparable.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Reply(u32, &'static str),
    Discovery,
    AuthorizationServer,
    Authenticate(Credential<'static>),
}

fn head_of(p: &Policy, r: &Req, end_of_stream: bool) -> Seen {
    let pairs = r.pairs();
    match p.check_head(&pairs, end_of_stream).verdict {
        HeadVerdict::Reply(reply) => Seen::Reply(reply.status, reply.reason),
        HeadVerdict::Discovery => Seen::Discovery,
        HeadVerdict::AuthorizationServer => Seen::AuthorizationServer,
        HeadVerdict::Authenticate(pending) => Seen::Authenticate(match pending.credential {
            Credential::Jwt(t) => Credential::Jwt(Box::leak(t.to_owned().into_boxed_str())),
            Credential::ApiKey(t) => Credential::ApiKey(Box::leak(t.to_owned().into_boxed_str())),
        }),
    }
}

fn reply_of(p: &Policy, r: &Req, end_of_stream: bool) -> Reply {
    let pairs = r.pairs();
    match p.check_head(&pairs, end_of_stream).verdict {
        HeadVerdict::Reply(reply) => reply,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// Runs the whole request: head, verification (no cache), admission, body.
fn decide(p: &Policy, r: &Req, body: Option<&[u8]>) -> Result<BodyDecision, Reply> {
    let pairs = r.pairs();
    let head = p.check_head(&pairs, body.is_none());
    let pending = match head.verdict {
        HeadVerdict::Reply(reply) => return Err(reply),
        HeadVerdict::Discovery | HeadVerdict::AuthorizationServer => panic!("no credentials"),
        HeadVerdict::Authenticate(pending) => pending,
    };
    let verified = match pending.credential {
        Credential::Jwt(t) => p.verify_jwt(t, NOW),
        Credential::ApiKey(k) => p.verify_api_key(k, NOW),
    };
    let rule = match p.admit(&pending, verified.as_ref()) {
        Admission::Reply(reply) => return Err(reply),
        Admission::Forward(rule) => rule,
    };
    let identity = verified.expect("admitted");
    match body {
        None => {
            assert_eq!(rule, BodyRule::NoBody);
            Ok(BodyDecision::allowed(None, None))
        }
        Some(body) => {
            if let Some(reply) = p.check_body_size(&rule, body.len()) {
                return Err(reply);
            }
            let decision = p.check_body(&identity, pending.server, &rule, body);
            match decision.reply {
                Some(reply) => Err(reply),
                None => Ok(decision),
            }
        }
    }
}

fn rpc(method: &str, params: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        .to_string()
        .into_bytes()
}

fn status(result: Result<BodyDecision, Reply>) -> (u32, &'static str) {
    match result {
        Ok(_) => (200, "allowed"),
        Err(reply) => (reply.status, reply.reason),
    }
}

#[test]
fn an_allowed_call_is_recorded_with_its_method_and_tool() {
    let p = policy();
    let r = req("POST", MCP).bearer(&jwt());
    let decision = decide(&p, &r, Some(&rpc("tools/call", json!({"name": "echo"})))).unwrap();
    assert_eq!(decision.method.as_deref(), Some("tools/call"));
    assert_eq!(decision.tool.as_deref(), Some("echo"));
    let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
    let decision = decide(&p, &r, Some(batch)).unwrap();
    assert_eq!(decision.method.as_deref(), Some("batch"));
    assert_eq!(decision.tool, None);
}

#[test]
fn a_forbidden_tool_is_403_with_the_scope_and_the_refused_call() {
    let p = policy();
    let r = req("POST", MCP).bearer(&jwt());
    let pairs = r.pairs();
    let head = p.check_head(&pairs, false);
    let HeadVerdict::Authenticate(pending) = head.verdict else {
        panic!()
    };
    let identity = p.verify_jwt(pending.credential.text(), NOW).unwrap();
    let Admission::Forward(rule) = p.admit(&pending, Ok(&identity)) else {
        panic!()
    };
    let body = rpc("tools/call", json!({"name": "get-sum"}));
    let decision = p.check_body(&identity, EVERYTHING, &rule, &body);
    let reply = decision.reply.unwrap();
    assert_eq!((reply.status, reply.reason), (403, "tool_not_allowed"));
    assert!(reply
        .www_authenticate
        .unwrap()
        .contains("error=\"insufficient_scope\""));
    assert_eq!(decision.method.as_deref(), Some("tools/call"));
    assert_eq!(decision.tool.as_deref(), Some("get-sum"));
}

#[test]
fn credentials_bearer_api_key_and_their_errors() {
    let p = policy();
    let token = jwt();
    let at = |r: Req| head_of(&p, &r, true);
    assert_eq!(at(req("GET", MCP)), Seen::Reply(401, "missing_credentials"));
    assert!(matches!(
        at(req("GET", MCP).bearer(&token)),
        Seen::Authenticate(Credential::Jwt(_))
    ));
    assert_eq!(
        at(req("GET", MCP).header("authorization", "Bearer pk_test_ci_key")),
        Seen::Authenticate(Credential::ApiKey("pk_test_ci_key"))
    );
    assert_eq!(
        at(req("GET", MCP).header("x-api-key", " pk_test_ci_key ")),
        Seen::Authenticate(Credential::ApiKey("pk_test_ci_key"))
    );
    // Bearer wins over the API-key header; both are removed before forwarding.
    let r = req("GET", MCP).header("x-api-key", "other").bearer(&token);
    let pairs = r.pairs();
    let head = p.check_head(&pairs, true);
    assert!(head.strip.contains(b"x-api-key") && head.strip.contains(b"authorization"));
    assert!(matches!(
        head.verdict,
        HeadVerdict::Authenticate(Pending {
            credential: Credential::Jwt(_),
            ..
        })
    ));

    for bad in [
        b"Basic dXNlcjpwYXNz".to_vec(),
        b"Bearer".to_vec(),
        b"Bearer ".to_vec(),
        b"Bearer a b".to_vec(),
        b"Bearertoken".to_vec(),
        b"Bearer \xff\xfe".to_vec(),
        b"Bearer tok\xc3\x28en".to_vec(),
        b"Bearer tok\x00en".to_vec(),
    ] {
        assert_eq!(
            at(req("GET", MCP).header("authorization", &bad)),
            Seen::Reply(401, "not_bearer"),
            "{bad:?}"
        );
    }
    assert_eq!(
        at(req("GET", MCP).bearer(&token).bearer(&token)),
        Seen::Reply(401, "not_bearer")
    );
    assert_eq!(
        at(req("GET", MCP).header("x-api-key", b"\xff")),
        Seen::Reply(401, "not_bearer")
    );
    assert_eq!(
        at(req("GET", MCP)
            .header("x-api-key", "a")
            .header("x-api-key", "b")),
        Seen::Reply(401, "not_bearer")
    );
    // Too large: refused before any parsing (and so never cached).
    let huge = "a".repeat(p.settings.max_token_bytes + 1);
    assert_eq!(
        at(req("GET", MCP).bearer(&huge)),
        Seen::Reply(401, "token_too_large")
    );
    let reply = reply_of(
        &p,
        &req("GET", MCP).header("authorization", "Basic x"),
        true,
    );
    assert!(reply
        .www_authenticate
        .unwrap()
        .contains("error=\"invalid_request\""));
}

#[test]
fn the_bearer_parser() {
    assert_eq!(bearer_token(b"Bearer abc.def-_~+/="), Ok("abc.def-_~+/="));
    assert_eq!(bearer_token(b"bearer   abc  "), Ok("abc"));
    assert_eq!(bearer_token(b"BEARER abc"), Ok("abc"));
    assert_eq!(bearer_token(b"Bearer\tabc"), Err(BearerError::NotBearer));
    assert_eq!(bearer_token(b""), Err(BearerError::NotBearer));
    assert_eq!(bearer_token(b"Token abc"), Err(BearerError::NotBearer));
}

#[test]
fn identity_headers_are_stripped_and_capped() {
    let p = policy();
    let r = req("GET", MCP)
        .bearer(&jwt())
        .header("x-portcullis-user", "mallory")
        .header(b"x-portcullis-\xff", "x")
        .header("x-other", "kept");
    let pairs = r.pairs();
    let head = p.check_head(&pairs, true);
    assert!(head.strip.contains(b"x-portcullis-user"));
    assert!(head.strip.contains(b"x-portcullis-\xff"));
    assert!(!head.strip.contains(b"x-other"));

    let mut r = req("GET", MCP).bearer(&jwt());
    for i in 0..MAX_STRIPPED {
        r = r.header(format!("x-portcullis-{i}"), "x");
    }
    assert_eq!(head_of(&p, &r, true), Seen::Reply(400, "too_many_headers"));
}

#[test]
fn discovery_passes_only_for_safe_methods_and_exact_documents() {
    let p = policy();
    for method in ["GET", "HEAD", "OPTIONS"] {
        for path in [
            "/.well-known/oauth-protected-resource/everything/mcp",
            "/.well-known/oauth-authorization-server",
            "/everything/.well-known/oauth-protected-resource",
            "/everything/mcp/.well-known/oauth-protected-resource",
        ] {
            assert_eq!(
                head_of(&p, &req(method, path), true),
                Seen::Discovery,
                "{method} {path}"
            );
        }
    }
    // Nothing rides along on a request that needs no credentials.
    assert_eq!(
        head_of(
            &p,
            &req("GET", "/.well-known/oauth-authorization-server"),
            false
        ),
        Seen::Reply(400, "body_not_allowed")
    );
    // Credentials sent along are removed, not checked.
    let r = req("GET", "/.well-known/oauth-authorization-server").bearer("junk");
    let pairs = r.pairs();
    let head = p.check_head(&pairs, true);
    assert!(matches!(head.verdict, HeadVerdict::Discovery));
    assert!(head.strip.contains(b"authorization"));

    // Under a server: other methods and other paths need credentials.
    for (method, path) in [
        (
            "POST",
            "/everything/mcp/.well-known/oauth-protected-resource",
        ),
        ("PUT", "/everything/.well-known/oauth-protected-resource"),
        ("POST", "/everything/mcp/.well-known"),
        ("POST", "/everything/x/.well-known/y"),
        ("POST", "/everything/mcp/.well-known/foo"),
        ("GET", "/everything/mcp/.well-known/foo"),
    ] {
        assert_eq!(
            head_of(&p, &req(method, path), false),
            Seen::Reply(401, "missing_credentials"),
            "{method} {path}"
        );
    }
    // At the root: another method is 405 with Allow.
    let reply = reply_of(
        &p,
        &req("POST", "/.well-known/oauth-authorization-server"),
        false,
    );
    assert_eq!((reply.status, reply.reason), (405, "discovery_method"));
    assert_eq!(
        reply.headers,
        vec![("allow", "GET, HEAD, OPTIONS".to_string())]
    );
    assert_eq!(
        head_of(&p, &req("GET", "/.well-known/security.txt"), true),
        Seen::Reply(404, "unknown_server")
    );
}

#[test]
fn paths_and_methods_that_cannot_be_read_are_400() {
    let p = policy();
    for path in [
        b"/everything/../files/mcp".to_vec(),
        b"/everything/%2e%2e/mcp".to_vec(),
        b"/everything/mcp\xff".to_vec(),
        b"/everything/m cp".to_vec(),
        b"".to_vec(),
        b"everything".to_vec(),
    ] {
        let r = Req {
            headers: vec![
                (b":method".to_vec(), b"GET".to_vec()),
                (b":path".to_vec(), path.clone()),
            ],
        };
        assert_eq!(
            head_of(&p, &r, true),
            Seen::Reply(400, "bad_path"),
            "{path:?}"
        );
    }
    let no_path = Req {
        headers: vec![(b":method".to_vec(), b"GET".to_vec())],
    };
    assert_eq!(head_of(&p, &no_path, true), Seen::Reply(400, "bad_path"));
    for method in [b"".to_vec(), b"G\xffT".to_vec(), b"GE T".to_vec()] {
        let r = Req {
            headers: vec![
                (b":method".to_vec(), method.clone()),
                (b":path".to_vec(), MCP.into()),
            ],
        };
        assert_eq!(
            head_of(&p, &r, true),
            Seen::Reply(400, "bad_method"),
            "{method:?}"
        );
    }
    assert_eq!(
        head_of(&p, &req("GET", "/nowhere/mcp"), true),
        Seen::Reply(404, "unknown_server")
    );
}

#[test]
fn non_utf8_in_headers_nobody_reads_is_ignored() {
    let p = policy();
    let r = req("GET", MCP)
        .bearer(&jwt())
        .header("x-a", b"\xff")
        .header("x-request-id", b"\xc3\x28");
    assert!(matches!(head_of(&p, &r, true), Seen::Authenticate(_)));
    assert_eq!(status(decide(&p, &r, None)), (200, "allowed"));
}

#[test]
fn origin_and_cors() {
    let p = policy();
    let token = jwt();
    assert_eq!(
        head_of(
            &p,
            &req("GET", MCP)
                .bearer(&token)
                .header("origin", "https://evil.test"),
            true
        ),
        Seen::Reply(403, "origin_not_allowed")
    );
    assert_eq!(
        head_of(
            &p,
            &req("GET", MCP)
                .bearer(&token)
                .header("origin", b"https://inspector.test\xff"),
            true
        ),
        Seen::Reply(403, "origin_not_allowed")
    );
    let r = req("GET", MCP)
        .bearer(&token)
        .header("origin", "https://inspector.test");
    let pairs = r.pairs();
    let head = p.check_head(&pairs, true);
    assert_eq!(head.cors_origin, Some("https://inspector.test"));
    assert!(matches!(head.verdict, HeadVerdict::Authenticate(_)));

    // A preflight needs no credentials.
    let preflight = req("OPTIONS", MCP)
        .header("origin", "https://inspector.test")
        .header("access-control-request-method", "POST");
    let reply = reply_of(&p, &preflight, true);
    assert_eq!((reply.status, reply.reason), (204, "cors_preflight"));
    assert!(reply.body.is_empty());
    let header = |name: &str| {
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        header("access-control-allow-origin"),
        Some("https://inspector.test")
    );
    assert!(header("access-control-allow-headers")
        .unwrap()
        .contains("mcp-protocol-version"));
    assert!(header("access-control-allow-headers")
        .unwrap()
        .ends_with("x-api-key"));
    assert!(header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert_eq!(header("vary"), Some("origin"));
    // From another origin it is refused like any request.
    let other = req("OPTIONS", MCP)
        .header("origin", "https://evil.test")
        .header("access-control-request-method", "POST");
    assert_eq!(
        head_of(&p, &other, true),
        Seen::Reply(403, "origin_not_allowed")
    );
    // OPTIONS without the preflight header is an ordinary request.
    assert_eq!(
        head_of(
            &p,
            &req("OPTIONS", MCP).header("origin", "https://inspector.test"),
            true
        ),
        Seen::Reply(401, "missing_credentials")
    );
}

#[test]
fn bodies_on_post_and_on_every_other_method() {
    let p = policy();
    let token = jwt();
    let list = rpc("tools/list", json!({}));
    // POST: the body is required and decided.
    assert_eq!(
        status(decide(&p, &req("POST", MCP).bearer(&token), Some(&list))),
        (200, "allowed")
    );
    assert_eq!(
        status(decide(&p, &req("POST", MCP).bearer(&token), None)),
        (400, "malformed_jsonrpc")
    );
    assert_eq!(
        status(decide(&p, &req("POST", MCP).bearer(&token), Some(b"{"))),
        (400, "malformed_jsonrpc")
    );
    // Every other method: no body, or a refusal.
    for method in [
        "GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "PROPFIND",
    ] {
        assert_eq!(
            status(decide(&p, &req(method, MCP).bearer(&token), None)),
            (200, "allowed"),
            "{method} without a body"
        );
        assert_eq!(
            status(decide(&p, &req(method, MCP).bearer(&token), Some(&list))),
            (400, "body_not_allowed"),
            "{method} with a body"
        );
        assert_eq!(
            status(decide(&p, &req(method, MCP).bearer(&token), Some(b""))),
            (200, "allowed"),
            "{method} whose open stream ends empty"
        );
        assert_eq!(
            status(decide(
                &p,
                &req(method, MCP)
                    .bearer(&token)
                    .header("content-length", "5"),
                Some(b"")
            )),
            (400, "body_not_allowed"),
            "{method} declaring a body"
        );
    }
}

#[test]
fn body_sizes_and_content_length() {
    let p = policy();
    let token = jwt();
    let max = p.settings.max_body_bytes;
    let post = || req("POST", MCP).bearer(&token);
    assert_eq!(
        status(decide(
            &p,
            &post().header("content-length", (max + 1).to_string()),
            Some(b"{}")
        )),
        (413, "body_too_large")
    );
    assert_eq!(
        status(decide(
            &p,
            &post().header("content-length", "12x"),
            Some(b"{}")
        )),
        (400, "bad_content_length")
    );
    assert_eq!(
        status(decide(
            &p,
            &post().header("content-length", b"\xff"),
            Some(b"{}")
        )),
        (400, "bad_content_length")
    );
    assert_eq!(
        status(decide(
            &p,
            &post()
                .header("content-length", "1")
                .header("content-length", "1"),
            Some(b"{}")
        )),
        (400, "duplicate_header")
    );
    let rule = BodyRule::JsonRpc {
        mcp_method: None,
        mcp_name: None,
    };
    assert_eq!(p.check_body_size(&rule, max), None);
    assert_eq!(p.check_body_size(&rule, max + 1).unwrap().status, 413);
    let empty = BodyRule::Empty {
        method: "GET".into(),
    };
    assert_eq!(
        p.check_body_size(&empty, 1).unwrap().reason,
        "body_not_allowed"
    );
}

#[test]
fn mcp_transport_headers_must_match_the_body() {
    let p = policy();
    let token = jwt();
    let post = |method: &str, name: Option<&[u8]>| {
        let mut r = req("POST", MCP).bearer(&token).header("mcp-method", method);
        if let Some(name) = name {
            r = r.header("mcp-name", name);
        }
        r
    };
    let echo = rpc("tools/call", json!({"name": "echo"}));
    assert_eq!(
        status(decide(&p, &post("tools/call", Some(b"echo")), Some(&echo))),
        (200, "allowed")
    );
    assert_eq!(
        status(decide(&p, &post("tools/call", None), Some(&echo))),
        (200, "allowed")
    );
    for (r, body) in [
        (post("tools/list", None), echo.clone()),
        (post("tools/call", Some(b"get-sum")), echo.clone()),
        (post("tools/list", Some(b"echo")), rpc("tools/list", json!({}))),
        (
            post("tools/list", None),
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#.to_vec(),
        ),
    ] {
        let reply = decide(&p, &r, Some(&body)).unwrap_err();
        assert_eq!((reply.status, reply.reason), (400, "header_mismatch"));
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], reply::HEADER_MISMATCH_CODE);
    }
    // The header cannot talk a forbidden call into an allowed one: the body decides.
    let forbidden = rpc("tools/call", json!({"name": "get-sum"}));
    assert_eq!(
        status(decide(
            &p,
            &post("tools/call", Some(b"get-sum")),
            Some(&forbidden)
        )),
        (403, "tool_not_allowed")
    );
    assert_eq!(
        status(decide(&p, &post("tools/call", Some(b"\xff")), Some(&echo))),
        (400, "bad_header")
    );
    // Values that cannot travel as ASCII come Base64-encoded (MCP 2026-07-28) and are compared
    // decoded; a marker that does not decode is a 400.
    let unicode = rpc("tools/call", json!({"name": "écho"}));
    let encoded = format!("=?base64?{}?=", "w6ljaG8="); // "écho"
    assert_eq!(
        status(decide(
            &p,
            &post("tools/call", Some(encoded.as_bytes())),
            Some(&unicode)
        )),
        (403, "tool_not_allowed"),
        "the header matched, so the body decided"
    );
    assert_eq!(
        status(decide(
            &p,
            &post("tools/call", Some(b"=?base64?ZWNobw==?=")),
            Some(&echo)
        )),
        (200, "allowed")
    );
    assert_eq!(
        status(decide(
            &p,
            &post("tools/call", Some(b"=?base64?!!!?=")),
            Some(&echo)
        )),
        (400, "bad_header")
    );
    assert_eq!(
        status(decide(
            &p,
            &post("tools/call", Some(b"=?base64?/w==?=")),
            Some(&echo)
        )),
        (400, "bad_header"),
        "0xff is not UTF-8"
    );
    // resources/read and prompts/get compare params.uri and params.name.
    let mut admin_claims = claims();
    admin_claims["groups"] = json!(["admins"]);
    let admin = rs256(&rsa_key("a"), Some("k1"), &admin_claims);
    let read = rpc("resources/read", json!({"uri": "file:///a"}));
    let r = req("POST", MCP)
        .bearer(&admin)
        .header("mcp-method", "resources/read")
        .header("mcp-name", "file:///a");
    assert_eq!(status(decide(&p, &r, Some(&read))), (200, "allowed"));
    let prompt = rpc("prompts/get", json!({"name": "greet"}));
    let r = req("POST", MCP)
        .bearer(&admin)
        .header("mcp-method", "prompts/get")
        .header("mcp-name", "other");
    assert_eq!(
        status(decide(&p, &r, Some(&prompt))),
        (400, "header_mismatch")
    );
}

#[test]
fn verification_audience_and_server_access() {
    let p = policy();
    let r = req("POST", "/files/mcp").bearer(&jwt());
    let pairs = r.pairs();
    let HeadVerdict::Authenticate(pending) = p.check_head(&pairs, false).verdict else {
        panic!()
    };
    assert_eq!(pending.server, 1);
    // A valid token whose groups grant nothing on this server.
    let identity = p.verify_jwt(pending.credential.text(), NOW).unwrap();
    match p.admit(&pending, Ok(&identity)) {
        Admission::Reply(reply) => {
            assert_eq!((reply.status, reply.reason), (403, "no_server_access"));
        }
        other => panic!("{other:?}"),
    }
    match p.admit(&pending, Err(&TokenError::WrongAudience)) {
        Admission::Reply(reply) => {
            assert_eq!((reply.status, reply.reason), (401, "wrong_audience"));
        }
        other => panic!("{other:?}"),
    }
    match p.admit(&pending, Err(&TokenError::Expired)) {
        Admission::Reply(reply) => assert_eq!((reply.status, reply.reason), (401, "expired")),
        other => panic!("{other:?}"),
    }
    // No group grants anything on the server: 403.
    let mut c = claims();
    c["groups"] = json!(["nobody"]);
    let r = req("GET", MCP).bearer(&rs256(&rsa_key("a"), Some("k1"), &c));
    assert_eq!(status(decide(&p, &r, None)), (403, "no_mapped_scopes"));
}

#[test]
fn arbitrary_header_bytes_never_panic() {
    let p = policy();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let names: [&[u8]; 10] = [
        b":method",
        b":path",
        b"authorization",
        b"x-api-key",
        b"origin",
        b"content-length",
        b"mcp-method",
        b"mcp-name",
        b"x-portcullis-user",
        b"access-control-request-method",
    ];
    let values: [&[u8]; 8] = [
        b"POST",
        b"/everything/mcp",
        b"Bearer a.b.c",
        b"\xff",
        b"",
        b"OPTIONS",
        b"https://inspector.test",
        b"/.well-known/oauth-protected-resource",
    ];
    for _ in 0..20_000 {
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for _ in 0..(next() % 8) {
            let name = names[(next() % names.len() as u64) as usize].to_vec();
            let mut value = values[(next() % values.len() as u64) as usize].to_vec();
            if next() % 4 == 0 {
                value.push(next() as u8);
            }
            headers.push((name, value));
        }
        let r = Req { headers };
        let pairs = r.pairs();
        let head = p.check_head(&pairs, next() % 2 == 0);
        if let HeadVerdict::Authenticate(pending) = head.verdict {
            let _ = p.admit(&pending, Err(&TokenError::Malformed));
        }
    }
}

#[test]
fn the_authorization_servers_paths_pass_as_they_are_in_broker_mode_only() {
    let mut snap = snapshot();
    snap["settings"] = json!({"authorization_server": true});
    let broker = compile(&snap);
    let direct = policy();
    for path in [
        "/oauth",
        "/oauth/token",
        "/oauth/authorize?client_id=x&redirect_uri=http%3A%2F%2F127.0.0.1",
        "/oauth/register",
    ] {
        for method in ["GET", "POST", "PUT"] {
            // Bodies flow (a token request is a form, a registration JSON).
            assert_eq!(
                head_of(&broker, &req(method, path), false),
                Seen::AuthorizationServer,
                "{method} {path}"
            );
        }
        assert_eq!(
            head_of(&direct, &req("GET", path), true),
            Seen::Reply(404, "unknown_server"),
            "{path} without an authorization server"
        );
    }
    // A client's own credentials reach the authorization server; spoofed identity does not.
    let r = req("POST", "/oauth/token")
        .header("authorization", "Basic Y2xpZW50OnNlY3JldA==")
        .header("x-portcullis-user", "root")
        .header("x-api-key", "k");
    let pairs = r.pairs();
    let head = broker.check_head(&pairs, false);
    assert!(matches!(head.verdict, HeadVerdict::AuthorizationServer));
    assert!(!head.strip.contains(b"authorization"));
    assert!(head.strip.contains(b"x-portcullis-user"));
    assert!(head.strip.contains(b"x-api-key"));
    // Not a prefix match on text: /oauthx is nobody's; dot segments are still refused.
    assert_eq!(
        head_of(&broker, &req("GET", "/oauthx/token"), true),
        Seen::Reply(404, "unknown_server")
    );
    assert_eq!(
        head_of(&broker, &req("GET", "/oauth/../everything/mcp"), true),
        Seen::Reply(400, "bad_path")
    );
}

#[test]
fn no_server_may_lie_under_the_authorization_servers_path() {
    let mut snap = snapshot();
    snap["settings"] = json!({"authorization_server": true});
    snap["servers"][0]["path_prefix"] = json!("/oauth/tools");
    let err = Policy::from_json(snap.to_string().as_bytes()).unwrap_err();
    assert!(err.to_string().contains("authorization server"), "{err}");
}
