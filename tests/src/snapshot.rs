//! Policy snapshots (format 1, see `policy/src/snapshot.rs`) built as JSON, token claims, and
//! hand-made hostile tokens. Real signing is `portcullis::devtools::DevKey`'s job; this module
//! only makes tokens no honest signer would (`alg: none`, HMAC keyed with a public key, tampered
//! payloads).

use serde_json::{json, Value};

use crate::util::{b64url, b64url_decode, now, sha256_hex};

/// `iss` of the default issuer.
pub const ISSUER: &str = "https://idp.portcullis.test";
/// The audience the default issuer's tokens must carry.
pub const AUDIENCE: &str = "portcullis-e2e";
/// Registry name of the default server.
pub const SERVER: &str = "everything";
/// Path prefix of the default server (Envoy forwards `/srv/x` upstream as `/x`).
pub const PATH_PREFIX: &str = "/srv";
/// The MCP endpoint clients call.
pub const MCP_PATH: &str = "/srv/mcp";
/// Canonical resource URL of the default server.
pub const RESOURCE: &str = "https://mcp.portcullis.test/srv/mcp";
/// Its protected-resource metadata URL (sent in `WWW-Authenticate`).
pub const RESOURCE_METADATA: &str =
    "https://mcp.portcullis.test/.well-known/oauth-protected-resource/srv/mcp";
/// The well-known path Envoy sees for that metadata.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource/srv/mcp";
/// Grants `tools/list` and `tools/call` of `echo` only.
pub const SCOPE_ECHO: &str = "mcp:echo";
/// Grants every method and tool on every server.
pub const SCOPE_ALL: &str = "mcp:all";
/// Mapped to [`SCOPE_ECHO`].
pub const GROUP_DEVS: &str = "devs";
/// Mapped to [`SCOPE_ALL`].
pub const GROUP_ADMINS: &str = "admins";

/// Builds a snapshot document.
#[derive(Debug, Clone)]
pub struct SnapshotBuilder {
    snap: Value,
}

impl SnapshotBuilder {
    /// Format 1, version 1, nothing else.
    pub fn empty() -> SnapshotBuilder {
        SnapshotBuilder {
            snap: json!({
                "format": 1,
                "version": 1,
                "issuers": [],
                "servers": [],
                "group_mappings": [],
                "scopes": [],
                "api_keys": [],
                "settings": {},
            }),
        }
    }

    /// The usual fixture: the default issuer trusting `jwks` (public JWKs) with `algorithms`,
    /// the default server, [`SCOPE_ECHO`] and [`SCOPE_ALL`], [`GROUP_DEVS`] and
    /// [`GROUP_ADMINS`] mapped to them.
    pub fn standard(jwks: &[Value], algorithms: &[&str]) -> SnapshotBuilder {
        SnapshotBuilder::empty()
            .issuer(issuer(ISSUER, jwks, algorithms))
            .server(server(
                SERVER,
                PATH_PREFIX,
                RESOURCE,
                RESOURCE_METADATA,
                &[SCOPE_ECHO, SCOPE_ALL],
            ))
            .scope(
                SCOPE_ECHO,
                vec![grant(SERVER, &["tools/list", "tools/call"], &["echo"])],
            )
            .scope(SCOPE_ALL, vec![grant("*", &["*"], &["*"])])
            .group_mapping(GROUP_DEVS, &[SCOPE_ECHO])
            .group_mapping(GROUP_ADMINS, &[SCOPE_ALL])
    }

    pub fn version(mut self, v: u64) -> SnapshotBuilder {
        self.snap["version"] = json!(v);
        self
    }

    fn push(mut self, key: &str, v: Value) -> SnapshotBuilder {
        self.snap[key].as_array_mut().expect("array").push(v);
        self
    }

    pub fn issuer(self, v: Value) -> SnapshotBuilder {
        self.push("issuers", v)
    }

    pub fn server(self, v: Value) -> SnapshotBuilder {
        self.push("servers", v)
    }

    pub fn scope(self, name: &str, grants: Vec<Value>) -> SnapshotBuilder {
        self.push("scopes", json!({"name": name, "grants": grants}))
    }

    pub fn group_mapping(self, group: &str, scopes: &[&str]) -> SnapshotBuilder {
        self.push("group_mappings", json!({"group": group, "scopes": scopes}))
    }

    /// An API key entry: the snapshot stores only the SHA-256 of `key`.
    pub fn api_key(
        self,
        name: &str,
        key: &str,
        subject: &str,
        groups: &[&str],
        scopes: &[&str],
    ) -> SnapshotBuilder {
        self.push(
            "api_keys",
            json!({
                "name": name,
                "sha256": sha256_hex(key.as_bytes()),
                "subject": subject,
                "groups": groups,
                "scopes": scopes,
            }),
        )
    }

    /// Sets `settings.<key>`.
    pub fn setting(mut self, key: &str, value: Value) -> SnapshotBuilder {
        self.snap["settings"][key] = value;
        self
    }

    /// Arbitrary edits.
    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> SnapshotBuilder {
        f(&mut self.snap);
        self
    }

    pub fn build(self) -> Value {
        self.snap
    }
}

/// An issuer entry with `audiences: [AUDIENCE]` and the default claim names.
pub fn issuer(iss: &str, jwks: &[Value], algorithms: &[&str]) -> Value {
    json!({
        "issuer": iss,
        "jwks": {"keys": jwks},
        "algorithms": algorithms,
        "audiences": [AUDIENCE],
        "groups_claim": "groups",
        "username_claim": "preferred_username",
        "leeway_seconds": 30,
    })
}

pub fn server(
    name: &str,
    path_prefix: &str,
    resource: &str,
    resource_metadata: &str,
    scopes_supported: &[&str],
) -> Value {
    json!({
        "name": name,
        "path_prefix": path_prefix,
        "resource": resource,
        "resource_metadata": resource_metadata,
        "scopes_supported": scopes_supported,
    })
}

pub fn grant(server: &str, methods: &[&str], tools: &[&str]) -> Value {
    json!({"server": server, "methods": methods, "tools": tools})
}

/// Claims of a valid access token from the default issuer for user `user` (`sub` is
/// `sub-<user>`, `preferred_username` is `user`) in `groups`, valid for ten minutes.
pub fn claims(user: &str, groups: &[&str]) -> Value {
    let t = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": format!("sub-{user}"),
        "preferred_username": user,
        "groups": groups,
        "iat": t,
        "nbf": t,
        "exp": t + 600,
        "jti": format!("jti-{user}-{t}"),
    })
}

/// `header.payload.` with `alg: none` (must always be refused).
pub fn alg_none_token(claims: &Value, kid: &str) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!("{}.{}.", b64(&header), b64(claims))
}

/// An HS256 token whose HMAC key is `secret` (e.g. the bytes of a public key: the classic
/// algorithm-confusion attack; must be refused when the issuer lists only asymmetric algorithms).
pub fn hs256_token(claims: &Value, kid: &str, secret: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let input = format!("{}.{}", b64(&header), b64(claims));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key size");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64url(&mac.finalize().into_bytes()))
}

/// `token` with its payload replaced by `claims` and the original signature kept.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let (h, _, s) = (
        parts.next().unwrap_or(""),
        parts.next(),
        parts.next().unwrap_or(""),
    );
    format!("{h}.{}.{s}", b64(claims))
}

/// The decoded header of a compact JWS.
pub fn token_header(token: &str) -> Value {
    let h = token.split('.').next().unwrap_or("");
    serde_json::from_slice(&b64url_decode(h).unwrap_or_default()).unwrap_or(Value::Null)
}

fn b64(v: &Value) -> String {
    b64url(&serde_json::to_vec(v).expect("serialize"))
}

/// A JSON-RPC request.
pub fn rpc(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A `tools/call` request.
pub fn tool_call(id: u64, tool: &str, arguments: Value) -> Value {
    rpc(
        id,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_snapshot_has_every_section() {
        let s = SnapshotBuilder::standard(&[json!({"kty": "OKP"})], &["EdDSA"])
            .api_key("ci", "k", "ci-bot", &[GROUP_DEVS], &[])
            .setting("max_body_bytes", json!(1024))
            .build();
        assert_eq!(s["format"], 1);
        assert_eq!(s["issuers"][0]["issuer"], ISSUER);
        assert_eq!(s["servers"][0]["path_prefix"], PATH_PREFIX);
        assert_eq!(s["scopes"].as_array().unwrap().len(), 2);
        assert_eq!(s["api_keys"][0]["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(s["settings"]["max_body_bytes"], 1024);
    }

    #[test]
    fn hostile_tokens_have_the_intended_shape() {
        let c = claims("alice", &[GROUP_DEVS]);
        let none = alg_none_token(&c, "k1");
        assert!(none.ends_with('.'));
        assert_eq!(token_header(&none)["alg"], "none");
        let hs = hs256_token(&c, "k1", b"secret");
        assert_eq!(hs.split('.').count(), 3);
        assert_eq!(token_header(&hs)["alg"], "HS256");
        let t = with_payload(&hs, &json!({"sub": "mallory"}));
        assert_eq!(t.split('.').nth(2), hs.split('.').nth(2));
    }
}
