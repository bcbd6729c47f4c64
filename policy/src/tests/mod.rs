//! Crate-level tests: token verification, snapshot validation and the decision table.
//! Tokens are signed here with independent implementations (the `rsa` crate, HMAC).

mod decision;
mod robustness;
mod snapshot;
mod token;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

use crate::Policy;

/// "Now" for every test: 2027-01-15.
pub const NOW: u64 = 1_800_000_000;
pub const ISS: &str = "https://idp.test/realms/acme";
pub const RESOURCE_A: &str = "https://gw.test/everything/mcp";
pub const RESOURCE_B: &str = "https://gw.test/files/mcp";

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn rsa_key(which: &str) -> RsaPrivateKey {
    let pem = match which {
        "a" => include_str!("../keys/testdata/rsa2048.pem"),
        "b" => include_str!("../keys/testdata/rsa2048b.pem"),
        other => panic!("no test key {other}"),
    };
    RsaPrivateKey::from_pkcs8_pem(pem).expect("test key parses")
}

pub fn rsa_jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    let public = key.to_public_key();
    json!({
        "kty": "RSA", "kid": kid, "use": "sig",
        "n": b64(&public.n().to_bytes_be()),
        "e": b64(&public.e().to_bytes_be()),
    })
}

/// Signs raw header and claims JSON text with RS256 (raw, so tests can forge odd JSON).
pub fn rs256_raw(key: &RsaPrivateKey, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let signer = SigningKey::<rsa::sha2::Sha256>::new(key.clone());
    let signature = signer.sign(input.as_bytes()).to_vec();
    format!("{input}.{}", b64(&signature))
}

pub fn rs256(key: &RsaPrivateKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    rs256_raw(key, &header.to_string(), &claims.to_string())
}

pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// Valid claims for user alice in group `eng`.
pub fn claims() -> Value {
    json!({
        "iss": ISS,
        "sub": "user-1",
        "preferred_username": "alice",
        "aud": RESOURCE_A,
        "groups": ["eng"],
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 300,
    })
}

/// Two servers; `eng` may list tools and call `echo` on `everything`; `admins` may do anything
/// anywhere; `readers` may read resources on `files`.
pub fn snapshot() -> Value {
    json!({
        "format": 1,
        "version": 7,
        "issuers": [{
            "issuer": ISS,
            "jwks": {"keys": [rsa_jwk(&rsa_key("a"), "k1")]},
            "algorithms": ["RS256"],
            "audiences": [RESOURCE_A],
        }],
        "servers": [
            {"name": "everything", "path_prefix": "/everything", "resource": RESOURCE_A,
             "resource_metadata": "https://gw.test/.well-known/oauth-protected-resource/everything/mcp",
             "scopes_supported": ["openid", "email"]},
            {"name": "files", "path_prefix": "/files", "resource": RESOURCE_B,
             "resource_metadata": "https://gw.test/.well-known/oauth-protected-resource/files/mcp"},
        ],
        "group_mappings": [
            {"group": "eng", "scopes": ["everything-echo"]},
            {"group": "admins", "scopes": ["admin"]},
            {"group": "readers", "scopes": ["files-read"]},
        ],
        "scopes": [
            {"name": "everything-echo", "grants": [
                {"server": "everything", "methods": ["tools/list", "tools/call"], "tools": ["echo"]}]},
            {"name": "admin", "grants": [{"server": "*", "methods": ["*"], "tools": ["*"]}]},
            {"name": "files-read", "grants": [
                {"server": "files", "methods": ["resources/*"]}]},
        ],
        "api_keys": [{
            "name": "ci", "sha256": sha256_hex("pk_test_ci_key"), "subject": "ci-bot",
            "groups": ["eng"],
        }],
    })
}

pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn compile(snapshot: &Value) -> Policy {
    Policy::from_json(snapshot.to_string().as_bytes()).expect("test snapshot is valid")
}
