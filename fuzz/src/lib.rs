//! The bodies of the cargo-fuzz targets in `fuzz/fuzz_targets/`, one function per target. The
//! same functions replay the committed corpora in the normal test command:
//! `policy/tests/fuzz_corpus.rs` includes this file with `#[path]`, so it may use only `policy`
//! and the policy crate's own dependencies (`base64`, `hmac`, `serde_json`, `sha2`), and nothing here may panic
//! except the code under test and the properties asserted below.
//!
//! Every target decides against one fixed snapshot, `fuzz/policy.json` (written by
//! `fuzz/make_seeds.py`): an issuer with RS256/PS256, ES256 and EdDSA keys, an HS256 issuer whose
//! secret is known here (so the structured JWT target signs what it assembles and reaches the
//! claim checks), an issuer whose keys have no `kid`, two servers and two API keys.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use policy::{Identity, Policy};

/// "Now" for every target unless a control byte picks another clock: 2027-01-15.
pub const NOW: u64 = 1_800_000_000;
/// The `kty: oct` key of `https://idp.fuzz/hs` in `fuzz/policy.json`.
const HS_SECRET: &[u8] = b"portcullis-fuzz-hs256-secret-32b";
/// API keys of `fuzz/policy.json`: group `eng` plus scope `files-read`, and group `admins`.
const API_KEYS: [&str; 2] = ["pk_fuzz_ci_key", "pk_fuzz_admin_key"];

/// The fixed snapshot, compiled once.
pub fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::from_json(include_bytes!("../policy.json"))
            .expect("fuzz/policy.json is a valid snapshot")
    })
}

/// The identities the JSON-RPC target authorizes for, from the snapshot's API keys.
fn identities() -> &'static [Identity] {
    static IDENTITIES: OnceLock<Vec<Identity>> = OnceLock::new();
    IDENTITIES.get_or_init(|| {
        API_KEYS
            .iter()
            .map(|key| {
                policy()
                    .verify_api_key(key, NOW)
                    .expect("fuzz/policy.json has this API key")
            })
            .collect()
    })
}

/// `jwt`: arbitrary bytes (lossily made UTF-8) as a bearer credential, JWT and API key.
pub fn jwt(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let policy = policy();
    let _ = policy::looks_like_jwt(&token);
    check_credential(policy, &token, policy.verify_jwt(&token, NOW));
    check_credential(policy, &token, policy.verify_api_key(&token, NOW));
}

/// `jwt_structured`: a token assembled from fuzzed pieces so the fuzzer gets past base64 and,
/// for the HS256 issuer, past the signature. Input: one control byte, then the header JSON,
/// a NUL, the claims JSON, a NUL, and the signature bytes (missing pieces are empty).
///
/// Control byte: bit 0 puts the header in the token verbatim (not base64url-encoded), bit 1 the
/// claims; bits 2-3 pick the signature: 0 HMAC-SHA256 of the signing input with the snapshot's
/// HS256 secret, 1 base64url of the signature bytes, 2 the signature bytes verbatim, 3 the HMAC
/// followed by the signature bytes verbatim; bits 4-5 pick the clock: `NOW`, 0, `u64::MAX`,
/// `NOW + 2^32`. Only the HMAC is computed here: RSA, ECDSA and Ed25519 signatures come from the
/// fuzzer and fail, so most executions exercise parsing and claim checks, not bignum arithmetic.
pub fn jwt_structured(data: &[u8]) {
    if let Some((token, now)) = assemble_jwt(data) {
        let policy = policy();
        check_credential(policy, &token, policy.verify_jwt(&token, now));
    }
}

/// The token and clock [`jwt_structured`] verifies; `None` for an empty input.
pub fn assemble_jwt(data: &[u8]) -> Option<(String, u64)> {
    let (&control, rest) = data.split_first()?;
    let mut pieces = rest.splitn(3, |&b| b == 0);
    let header = pieces.next().unwrap_or_default();
    let claims = pieces.next().unwrap_or_default();
    let signature = pieces.next().unwrap_or_default();

    let segment = |bytes: &[u8], verbatim: bool| {
        if verbatim {
            String::from_utf8_lossy(bytes).into_owned()
        } else {
            URL_SAFE_NO_PAD.encode(bytes)
        }
    };
    let mut token = segment(header, control & 1 != 0);
    token.push('.');
    token.push_str(&segment(claims, control & 2 != 0));
    let hmac = |input: &str| {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(HS_SECRET)
            .expect("HMAC takes any key length");
        mac.update(input.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    };
    let signature = match (control >> 2) & 3 {
        0 => hmac(&token),
        1 => URL_SAFE_NO_PAD.encode(signature),
        2 => String::from_utf8_lossy(signature).into_owned(),
        _ => hmac(&token) + &*String::from_utf8_lossy(signature),
    };
    token.push('.');
    token.push_str(&signature);
    let now = match (control >> 4) & 3 {
        0 => NOW,
        1 => 0,
        2 => u64::MAX,
        _ => NOW + (1 << 32),
    };
    Some((token, now))
}

/// `jsonrpc`: arbitrary bytes as a request body; what parses is authorized on every server for
/// each of the snapshot's API-key identities.
pub fn jsonrpc(data: &[u8]) {
    let Ok(messages) = policy::parse_body(data) else {
        return;
    };
    let policy = policy();
    for identity in identities() {
        for server in 0..policy.servers.len() {
            if let Err(deny) = policy.authorize_messages(identity, server, &messages) {
                check_deny(policy, &deny);
            }
        }
    }
}

/// What the snapshot target asks a compiled fuzzed policy to authorize.
const SNAPSHOT_PROBE: &[u8] = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
    {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_code"}}]"#;

/// `delta`: arbitrary bytes as delta lines (`application/x-ndjson`), applied one after another to
/// the fixed policy; whatever applies answers the questions a snapshot does, and what is
/// refused leaves the policy it was applied to as it was.
pub fn delta(data: &[u8]) {
    let Ok(deltas) = policy::snapshot::SnapshotDelta::parse_lines(data) else {
        return;
    };
    let base = policy();
    let mut current: Option<Policy> = None;
    for delta in &deltas {
        let on = current.as_ref().unwrap_or(base);
        let servers_before = on.server_count();
        match on.apply(delta) {
            Ok(next) => current = Some(next),
            Err(_) => assert_eq!(
                on.server_count(),
                servers_before,
                "a refused delta changed nothing"
            ),
        }
    }
    let Some(policy) = current else { return };
    for path in ["/", "/everything/mcp", "/files", "/github/mcp?x=1"] {
        let _ = policy.route(path);
    }
    let _ = policy.scopes_for_groups(&["eng", "admins", "readers"]);
    let messages = policy::parse_body(SNAPSHOT_PROBE).expect("the probe body parses");
    for key in &API_KEYS {
        if let Ok(identity) = policy.verify_api_key(key, NOW) {
            check_identity(&policy, &identity);
            for server in 0..policy.servers.len() {
                if let Err(deny) = policy.authorize_messages(&identity, server, &messages) {
                    check_deny(&policy, &deny);
                }
            }
        }
    }
}

/// `snapshot`: arbitrary bytes as a policy snapshot; what compiles answers a few questions.
pub fn snapshot(data: &[u8]) {
    let Ok(policy) = Policy::from_json(data) else {
        return;
    };
    for path in [
        "/",
        "/everything/mcp",
        "/files",
        "/.well-known/x",
        "/github/mcp?x=1",
    ] {
        let _ = policy.route(path);
    }
    let _ = policy.scopes_for_groups(&["eng", "admins", "engineering"]);
    let messages = policy::parse_body(SNAPSHOT_PROBE).expect("the probe body parses");
    for key in API_KEYS.iter().chain(&["test"]) {
        if let Ok(identity) = policy.verify_api_key(key, NOW) {
            check_identity(&policy, &identity);
            for server in 0..policy.servers.len() {
                if let Err(deny) = policy.authorize_messages(&identity, server, &messages) {
                    check_deny(&policy, &deny);
                }
            }
        }
    }
}

/// What a verification returned: an identity is checked and used, an error formatted. An
/// error's text never contains the credential.
fn check_credential(policy: &Policy, token: &str, result: Result<Identity, policy::TokenError>) {
    match result {
        Ok(identity) => check_identity(policy, &identity),
        Err(error) => {
            let _ = error.reason();
            let text = error.to_string();
            assert!(
                token.len() < 40 || !text.contains(token),
                "error text contains the credential: {text:?}"
            );
        }
    }
}

/// An identity's upstream headers are printable ASCII without `"` or `%`-escapable bytes (the
/// user header has no `,` either), and asking about every server does not panic.
fn check_identity(policy: &Policy, identity: &Identity) {
    let headers = &identity.headers;
    let printable = |value: &str| {
        value
            .bytes()
            .all(|b| (0x20..0x7f).contains(&b) && b != b'"')
    };
    assert!(
        printable(&headers.user) && !headers.user.contains(','),
        "unsafe user header {:?}",
        headers.user
    );
    assert!(
        printable(&headers.groups),
        "unsafe groups header {:?}",
        headers.groups
    );
    assert!(
        printable(&headers.scopes),
        "unsafe scopes header {:?}",
        headers.scopes
    );
    for server in 0..policy.servers.len() {
        let _ = policy.check_audience(identity, server);
        if let Err(deny) = policy.authorize_server(identity, server) {
            check_deny(policy, &deny);
        }
    }
}

fn check_deny(policy: &Policy, deny: &policy::Deny) {
    let _ = deny.reason.reason();
    let _ = deny.description(policy);
}

/// `request`: the request rules over arbitrary header bytes and bodies, carried out the way the
/// filter does: [`Policy::check_head`], the credential verified at `NOW`, [`Policy::admit`], the
/// body's size checked chunk by chunk with [`Policy::check_body_size`], then [`Policy::check_body`].
///
/// Input: one control byte, then header lines `name NUL value LF` (a line without NUL is a name
/// with an empty value; names may hold any byte but NUL and LF, values any byte but LF), an empty
/// line, and the body (any bytes). Control byte: bit 0 says the headers end the stream (no body
/// follows; the body bytes are then ignored); bits 1-2 pick the body chunk size: 1, 7, 512 bytes
/// or the whole body at once.
///
/// Asserted besides "no panic": a request that is not answered locally has every credential and
/// identity header on its strip list; every reply is a well-formed local answer (status, header
/// values fit for HTTP, a JSON body); only a verified identity is forwarded; a body the rules
/// let through parses and every one of its messages is authorized.
pub fn request(data: &[u8]) {
    request_outcome(data);
}

/// Where [`request`] ended: `"empty"`, `"discovery"`, `"forwarded"` or the refusing reply's
/// reason (the replay test checks that the hand-made seeds get where they are meant to).
pub fn request_outcome(data: &[u8]) -> &'static str {
    let Some((&control, rest)) = data.split_first() else {
        return "empty";
    };
    let end_of_stream = control & 1 != 0;
    let chunk = match (control >> 1) & 3 {
        0 => 1,
        1 => 7,
        2 => 512,
        _ => usize::MAX,
    };
    let mut headers: Vec<policy::HeaderPair<'_>> = Vec::new();
    let mut body: &[u8] = &[];
    let mut lines = rest;
    while !lines.is_empty() {
        let (line, after) = match lines.iter().position(|&b| b == b'\n') {
            Some(end) => (&lines[..end], &lines[end + 1..]),
            None => (lines, &[][..]),
        };
        if line.is_empty() {
            body = after;
            break;
        }
        headers.push(match line.iter().position(|&b| b == 0) {
            Some(nul) => (&line[..nul], &line[nul + 1..]),
            None => (line, &[][..]),
        });
        lines = after;
    }

    let policy = policy();
    let head = policy.check_head(&headers, end_of_stream);
    let _ = (head.facts, head.cors_origin);
    let pending = match head.verdict {
        policy::HeadVerdict::Reply(reply) => return check_reply(&reply),
        policy::HeadVerdict::Discovery => {
            check_strip(policy, &headers, &head.strip, false);
            return "discovery";
        }
        policy::HeadVerdict::AuthorizationServer => {
            let path = headers
                .iter()
                .find(|(n, _)| *n == b":path")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            assert!(
                policy::is_authorization_server_path(path.split('?').next().unwrap_or_default()),
                "{path} went to the authorization server"
            );
            check_strip(policy, &headers, &head.strip, true);
            return "authorization_server";
        }
        policy::HeadVerdict::Authenticate(pending) => pending,
    };
    let verified = match pending.credential {
        policy::Credential::Jwt(token) => policy.verify_jwt(token, NOW),
        policy::Credential::ApiKey(key) => policy.verify_api_key(key, NOW),
    };
    let rule = match policy.admit(&pending, verified.as_ref()) {
        policy::Admission::Reply(reply) => return check_reply(&reply),
        policy::Admission::Forward(rule) => rule,
    };
    check_strip(policy, &headers, &head.strip, false);
    let Ok(identity) = verified else {
        panic!("forwarded without a verified identity: {verified:?}");
    };
    check_identity(policy, &identity);
    if end_of_stream {
        return "forwarded";
    }
    let mut received = 0;
    while received < body.len() {
        received += chunk.min(body.len() - received);
        if let Some(reply) = policy.check_body_size(&rule, received) {
            return check_reply(&reply);
        }
    }
    let decision = policy.check_body(&identity, pending.server, &rule, body);
    match &decision.reply {
        Some(reply) => return check_reply(reply),
        None if matches!(rule, policy::BodyRule::JsonRpc { .. }) => {
            let messages = policy::parse_body(body).expect("a forwarded JSON-RPC body parses");
            assert!(
                policy
                    .authorize_messages(&identity, pending.server, &messages)
                    .is_ok(),
                "a forwarded body has a message its identity may not send"
            );
        }
        None => assert!(body.is_empty(), "a {rule:?} request forwarded a body"),
    }
    "forwarded"
}

/// Every credential and identity header is removed from a request that goes on.
fn check_strip(
    policy: &Policy,
    headers: &[policy::HeaderPair<'_>],
    strip: &policy::request::Strip<'_>,
    keeps_authorization: bool,
) {
    let settings = &policy.settings;
    for &(name, _) in headers {
        let sensitive = (name == b"authorization" && !keeps_authorization)
            || name == settings.api_key_header.as_bytes()
            || name.starts_with(b"x-portcullis-")
            || name == settings.user_header.as_bytes()
            || name == settings.groups_header.as_bytes()
            || name == settings.scopes_header.as_bytes();
        assert!(
            !sensitive || strip.contains(name),
            "header {:?} goes upstream",
            String::from_utf8_lossy(name)
        );
    }
}

/// A local answer the filter can send as it is; returns its reason.
fn check_reply(reply: &policy::Reply) -> &'static str {
    assert!(
        (200..600).contains(&reply.status),
        "status {}",
        reply.status
    );
    let fits = |value: &str| {
        value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    };
    let values = reply
        .www_authenticate
        .iter()
        .chain(reply.headers.iter().map(|(_, v)| v));
    for value in values {
        assert!(fits(value), "reply header value {value:?}");
    }
    assert!(
        reply.body.is_empty() || serde_json::from_str::<serde_json::Value>(&reply.body).is_ok(),
        "reply body is not JSON: {:?}",
        reply.body
    );
    reply.reason
}
