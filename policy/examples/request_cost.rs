//! What the request rules cost natively, per request, for the benchmark's `POST tools/call`
//! (docs/benchmarks.md): `Policy::check_head`, `Policy::admit` and `Policy::check_body`, each
//! timed over many iterations. Not a test (timings on shared machines are noisy); a tool to see
//! how much of the filter's cost inside Envoy is the policy logic itself.
//!
//!     cargo run --release -p portcullis-policy --example request_cost

use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::json;

use policy::{Admission, HeadVerdict, Policy};

const ITERATIONS: u32 = 200_000;
const RESOURCE: &str = "http://127.0.0.1:8000/bench/mcp";
const ISSUER: &str = "http://127.0.0.1:8000/bench-idp/rs256";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn per_request(what: &str, mut f: impl FnMut()) {
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        f();
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / f64::from(ITERATIONS);
    println!("{what:<12} {micros:.3} µs");
}

fn main() {
    let key = RsaPrivateKey::from_pkcs8_pem(include_str!("../src/keys/testdata/rsa2048.pem"))
        .expect("test key");
    let public = key.to_public_key();
    // The bench snapshot's shape: one issuer, one server, group `bench` → tools/list and
    // tools/call of `echo`.
    let snapshot = json!({
        "format": 1, "version": 1,
        "issuers": [{"issuer": ISSUER, "algorithms": ["RS256"], "audiences": [RESOURCE],
            "jwks": {"keys": [{"kty": "RSA", "kid": "bench-rs256", "use": "sig",
                "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be())}]}}],
        "servers": [{"name": "bench", "path_prefix": "/bench", "resource": RESOURCE,
            "resource_metadata": "http://127.0.0.1:8000/.well-known/oauth-protected-resource/bench/mcp"}],
        "group_mappings": [{"group": "bench", "scopes": ["bench-echo"]}],
        "scopes": [{"name": "bench-echo", "grants": [{"server": "bench",
            "methods": ["tools/list", "tools/call"], "tools": ["echo"]}]}],
    });
    let policy = Policy::from_json(snapshot.to_string().as_bytes()).expect("snapshot");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "bench-rs256"});
    let claims = json!({"iss": ISSUER, "sub": "bench-user", "aud": RESOURCE, "groups": ["bench"],
        "iat": now, "exp": now + 3600});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = SigningKey::<rsa::sha2::Sha256>::new(key).sign(input.as_bytes());
    let token = format!("{input}.{}", b64(&signature.to_vec()));
    let authorization = format!("Bearer {token}");
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"}}}"#;
    let headers: Vec<(&[u8], &[u8])> = vec![
        (b":authority", b"127.0.0.1:10000"),
        (b":path", b"/bench/mcp"),
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b"authorization", authorization.as_bytes()),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-length", b"105"),
        (b"x-forwarded-proto", b"http"),
        (b"x-request-id", b"5669da38-0b3f-4611-a7c9-54fcef18e210"),
    ];
    let identity = policy.verify_jwt(&token, now).expect("the token verifies");

    per_request("check_head", || {
        black_box(policy.check_head(black_box(&headers), false));
    });
    let head = policy.check_head(&headers, false);
    let HeadVerdict::Authenticate(pending) = head.verdict else {
        panic!("expected a credential to verify")
    };
    let Admission::Forward(rule) = policy.admit(&pending, Ok(&identity)) else {
        panic!("expected the request to be admitted")
    };
    per_request("admit", || {
        black_box(policy.admit(black_box(&pending), Ok(&identity)));
    });
    per_request("check_body", || {
        let decision = policy.check_body(&identity, pending.server, &rule, black_box(body));
        assert!(decision.reply.is_none(), "the call is allowed");
    });
}
