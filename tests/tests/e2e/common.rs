//! Fixtures shared by the end-to-end tests: signing keys, the standard snapshot, and "a gate"
//! (Envoy with the filter in front of an upstream).

use std::sync::OnceLock;

use portcullis::devtools::{DevAlg, DevKey};
use portcullis_e2e::envoy::EnvoyConfig;
use portcullis_e2e::snapshot::{self, SnapshotBuilder, RESOURCE_METADATA, SCOPE_ALL, SCOPE_ECHO};
use portcullis_e2e::{
    challenge_param, parse_bearer_challenge, EchoUpstream, Envoy, McpServer, Response, TestDir,
};
use serde_json::Value;

pub const KID_RSA: &str = "e2e-rsa-1";
pub const KID_EC: &str = "e2e-ec-1";
pub const KID_ED: &str = "e2e-ed-1";

/// Keys the standard snapshot trusts. RSA key generation is slow in debug builds, so each key
/// is made once per test binary.
pub fn key(alg: DevAlg) -> &'static DevKey {
    static RSA: OnceLock<DevKey> = OnceLock::new();
    static EC: OnceLock<DevKey> = OnceLock::new();
    static ED: OnceLock<DevKey> = OnceLock::new();
    match alg {
        DevAlg::RS256 => RSA.get_or_init(|| DevKey::generate(alg, KID_RSA)),
        DevAlg::ES256 => EC.get_or_init(|| DevKey::generate(alg, KID_EC)),
        DevAlg::EdDSA => ED.get_or_init(|| DevKey::generate(alg, KID_ED)),
    }
}

/// A key the snapshot does NOT trust, with the same `kid` as the trusted ES256 key (so only the
/// signature check can tell them apart).
pub fn impostor_key() -> &'static DevKey {
    static K: OnceLock<DevKey> = OnceLock::new();
    K.get_or_init(|| DevKey::generate(DevAlg::ES256, KID_EC))
}

/// The standard snapshot: one issuer trusting the RS256, ES256 and EdDSA test keys; server
/// `everything` at `/srv`; `devs` → `mcp:echo` (tools/list + tools/call of `echo`), `admins` →
/// `mcp:all`.
pub fn standard() -> SnapshotBuilder {
    let jwks: Vec<Value> = DevAlg::ALL.iter().map(|a| key(*a).public_jwk()).collect();
    SnapshotBuilder::standard(&jwks, &["RS256", "ES256", "EdDSA"])
}

/// A valid ES256 token (the fastest to sign in debug builds) for `user` in `groups`.
pub fn token(user: &str, groups: &[&str]) -> String {
    key(DevAlg::ES256).sign(&snapshot::claims(user, groups))
}

/// Envoy with the filter in front of the echo upstream.
pub struct Gate {
    pub upstream: EchoUpstream,
    pub envoy: Envoy,
    /// Holds the test's files until the processes above are gone (fields drop in order).
    #[allow(dead_code)]
    pub dir: TestDir,
}

impl Gate {
    pub fn start(name: &str, snapshot: &Value) -> Gate {
        Gate::start_with(name, snapshot, |config| config)
    }

    /// [`Gate::start`] with the config changed by `adjust` (e.g. `.concurrency(2)`).
    pub fn start_with(
        name: &str,
        snapshot: &Value,
        adjust: impl FnOnce(EnvoyConfig) -> EnvoyConfig,
    ) -> Gate {
        let dir = TestDir::new(name);
        let upstream = EchoUpstream::start();
        let config = adjust(EnvoyConfig::portcullis(snapshot, upstream.port()));
        let envoy = Envoy::start(&config, &dir);
        Gate {
            upstream,
            envoy,
            dir,
        }
    }

    /// Asserts the upstream received nothing, not even the headers of a request (the filter
    /// holds a POST's headers until it has judged the body, and answered by itself).
    pub fn assert_upstream_untouched(&self, context: &str) {
        let seen = self.upstream.all_requests();
        assert!(
            seen.is_empty(),
            "{context}: the upstream should have received nothing, got {:?}",
            seen.iter()
                .map(|r| format!("{} {}", r.method, r.path))
                .collect::<Vec<_>>()
        );
    }
}

/// Envoy with the filter in front of a real `mcp-server-everything`.
pub struct McpGate {
    #[allow(dead_code)]
    pub server: McpServer,
    pub envoy: Envoy,
    pub dir: TestDir,
}

impl McpGate {
    pub fn start(name: &str, snapshot: &Value) -> McpGate {
        let dir = TestDir::new(name);
        let server = McpServer::start(&dir);
        let envoy = Envoy::start(&EnvoyConfig::portcullis(snapshot, server.port()), &dir);
        McpGate { server, envoy, dir }
    }
}

/// The response is `status` with a JSON body carrying `error`: an OAuth-style string (equal to
/// `error` when given) or, for malformed JSON-RPC, a JSON-RPC error object. Returns the body.
pub fn assert_json_error(resp: &Response, status: u16, error: Option<&str>) -> Value {
    assert_eq!(
        resp.status,
        status,
        "unexpected status: {}",
        resp.describe()
    );
    let ct = resp.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "error responses are JSON; content-type {ct:?}: {}",
        resp.describe()
    );
    let body = resp.json();
    match error {
        Some(e) => assert_eq!(body["error"], e, "{}", resp.describe()),
        None => assert!(
            body["error"].is_string() || body["error"]["message"].is_string(),
            "body has no `error` (string, or JSON-RPC error object): {}",
            resp.describe()
        ),
    }
    body
}

/// The `WWW-Authenticate` Bearer challenge of a response (exactly one header), as parameters.
pub fn challenge(resp: &Response) -> String {
    let all = resp.header_all("www-authenticate");
    assert_eq!(
        all.len(),
        1,
        "expected one WWW-Authenticate header: {}",
        resp.describe()
    );
    let v = all[0].to_string();
    assert!(
        parse_bearer_challenge(&v).is_some(),
        "WWW-Authenticate is not a Bearer challenge: {v:?}"
    );
    v
}

/// A 401 for a bad credential: `error="invalid_token"` with a description in the challenge and
/// the JSON body, and the server's resource metadata URL.
pub fn assert_invalid_token(resp: &Response, what: &str) {
    assert_eq!(
        resp.status,
        401,
        "{what}: expected 401: {}",
        resp.describe()
    );
    let c = challenge(resp);
    assert_eq!(
        challenge_param(&c, "error").as_deref(),
        Some("invalid_token"),
        "{what}: challenge {c:?}"
    );
    let desc = challenge_param(&c, "error_description").unwrap_or_default();
    assert!(!desc.is_empty(), "{what}: no error_description in {c:?}");
    assert_eq!(
        challenge_param(&c, "resource_metadata").as_deref(),
        Some(RESOURCE_METADATA),
        "{what}: challenge {c:?}"
    );
    let body = assert_json_error(resp, 401, Some("invalid_token"));
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{what}: body needs an error_description: {body}"
    );
}

/// A 403 `insufficient_scope` naming a scope that would allow the request.
pub fn assert_insufficient_scope(resp: &Response, what: &str, allowing_scope: &str) {
    assert_eq!(
        resp.status,
        403,
        "{what}: expected 403: {}",
        resp.describe()
    );
    let c = challenge(resp);
    assert_eq!(
        challenge_param(&c, "error").as_deref(),
        Some("insufficient_scope"),
        "{what}: challenge {c:?}"
    );
    let scopes = challenge_param(&c, "scope").unwrap_or_default();
    assert!(
        scopes.split(' ').any(|s| s == allowing_scope),
        "{what}: scope={scopes:?} should name {allowing_scope}"
    );
    assert_eq!(
        challenge_param(&c, "resource_metadata").as_deref(),
        Some(RESOURCE_METADATA),
        "{what}: challenge {c:?}"
    );
    assert_json_error(resp, 403, Some("insufficient_scope"));
}

/// Both scopes of the standard server, as the 401 challenge lists them.
pub fn scopes_supported() -> String {
    [SCOPE_ECHO, SCOPE_ALL].join(" ")
}

/// Splits a header value holding a list (comma and/or space separated).
pub fn list(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}
