//! Micro-benchmark of `policy::keys` signature verification.
//!
//! Native:  `cargo run --release -p portcullis-policy --example verify_speed`
//! wasm32:  `cargo build --release -p portcullis-policy --example verify_speed --target wasm32-wasip1`
//!          then run `target/wasm32-wasip1/release/examples/verify_speed.wasm` with any WASI
//!          runtime: `wasmtime`, or Node's `node:wasi`, which runs it on V8 like Envoy does:
//!
//! ```text
//! node --no-warnings --input-type=module -e "
//!   import { readFile } from 'node:fs/promises'; import { WASI } from 'node:wasi';
//!   const wasi = new WASI({ version: 'preview1' });
//!   const m = await WebAssembly.compile(await readFile(process.argv[1]));
//!   wasi.start(await WebAssembly.instantiate(m, wasi.getImportObject()));
//! " target/wasm32-wasip1/release/examples/verify_speed.wasm
//! ```
//!
//! Prints, per algorithm, the median and the first ("cold": right after the key was loaded)
//! verification time in microseconds, and for comparison the `rsa` crate's RS256 verification.

use std::time::Instant;

use policy::keys::{Algorithm, Jwk, SignatureError, VerifyingKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;

const ITERATIONS: usize = 300;

fn b64e(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn jwk(value: serde_json::Value) -> Jwk {
    serde_json::from_value(value).expect("JWK")
}

/// Median and first-call time of `f`, in microseconds.
fn measure(mut f: impl FnMut()) -> (f64, f64) {
    let mut times = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        f();
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let first = times[0];
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], first)
}

fn report(name: &str, (median, first): (f64, f64)) {
    println!("{name:<28} median {median:>8.1} µs   first {first:>8.1} µs");
}

fn bench_verify(name: &str, key: &VerifyingKey, alg: Algorithm, msg: &[u8], sig: &[u8]) {
    let check = || {
        let r: Result<(), SignatureError> = key.verify(alg, msg, sig);
        assert_eq!(r, Ok(()), "{name}");
    };
    report(name, measure(check));
}

fn main() {
    // A typical JWS signing input (header.payload) of ~600 bytes.
    let msg = format!(
        "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{}",
        "eyJzdWIiOiJhbGljZUBleGFtcGxlLmNvbSJ9".repeat(16)
    );
    let msg = msg.as_bytes();

    for (label, pem) in [
        ("2048", include_str!("../src/keys/testdata/rsa2048.pem")),
        ("3072", include_str!("../src/keys/testdata/rsa3072.pem")),
        ("4096", include_str!("../src/keys/testdata/rsa4096.pem")),
    ] {
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("test key");
        let public = private.to_public_key();
        let value = serde_json::json!({
            "kty": "RSA",
            "n": b64e(&public.n().to_bytes_be()),
            "e": b64e(&public.e().to_bytes_be()),
        });
        let (load, _) = measure(|| {
            VerifyingKey::from_jwk(&jwk(value.clone())).expect("key");
        });
        println!("RSA-{label} from_jwk             median {load:>8.1} µs");
        let key = VerifyingKey::from_jwk(&jwk(value)).expect("key");

        let rs = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(private.clone())
            .sign(msg)
            .to_vec();
        bench_verify(
            &format!("RS256 ({label})"),
            &key,
            Algorithm::RS256,
            msg,
            &rs,
        );
        let mut rng = rand::thread_rng();
        let ps = rsa::pss::BlindedSigningKey::<rsa::sha2::Sha256>::new(private.clone())
            .sign_with_rng(&mut rng, msg)
            .to_vec();
        bench_verify(
            &format!("PS256 ({label})"),
            &key,
            Algorithm::PS256,
            msg,
            &ps,
        );

        if label == "2048" {
            let reference = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(public);
            let sig = rsa::pkcs1v15::Signature::try_from(rs.as_slice()).expect("sig");
            report(
                "RS256 (2048, rsa crate)",
                measure(|| reference.verify(msg, &sig).expect("valid")),
            );
        }
    }

    {
        use p256::ecdsa::signature::Signer as _;
        let sk = p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("scalar");
        let point = sk.verifying_key().to_sec1_point(false);
        let b = point.as_bytes();
        let key = VerifyingKey::from_jwk(&jwk(serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": b64e(&b[1..33]), "y": b64e(&b[33..65]),
        })))
        .expect("key");
        let sig: p256::ecdsa::Signature = sk.sign(msg);
        bench_verify("ES256", &key, Algorithm::ES256, msg, &sig.to_bytes());
    }
    {
        use p384::ecdsa::signature::Signer as _;
        let sk = p384::ecdsa::SigningKey::from_slice(&[7; 48]).expect("scalar");
        let point = sk.verifying_key().to_sec1_point(false);
        let b = point.as_bytes();
        let key = VerifyingKey::from_jwk(&jwk(serde_json::json!({
            "kty": "EC", "crv": "P-384", "x": b64e(&b[1..49]), "y": b64e(&b[49..97]),
        })))
        .expect("key");
        let sig: p384::ecdsa::Signature = sk.sign(msg);
        bench_verify("ES384", &key, Algorithm::ES384, msg, &sig.to_bytes());
    }
    {
        use ed25519_dalek::ed25519::signature::Signer as _;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let key = VerifyingKey::from_jwk(&jwk(serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "x": b64e(sk.verifying_key().as_bytes()),
        })))
        .expect("key");
        let sig = sk.sign(msg);
        bench_verify("EdDSA", &key, Algorithm::EdDSA, msg, &sig.to_bytes());
    }
    {
        use hmac::{KeyInit, Mac};
        let secret = [0x42u8; 32];
        let key = VerifyingKey::from_jwk(&jwk(serde_json::json!({
            "kty": "oct", "k": b64e(&secret),
        })))
        .expect("key");
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&secret).expect("key");
        mac.update(msg);
        let tag = mac.finalize().into_bytes();
        bench_verify("HS256", &key, Algorithm::HS256, msg, &tag);
    }
}
