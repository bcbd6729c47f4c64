//! Round trips: sign with `DevKey`, verify with the RustCrypto crates from the *published JWK*
//! alone (so the JWK fields, the header and the signature encoding are all checked).

use super::*;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier as _;
use rsa::signature::Verifier as _;

/// RSA key generation is slow in debug builds: make one and share it.
fn rsa_key() -> &'static DevKey {
    static KEY: OnceLock<DevKey> = OnceLock::new();
    KEY.get_or_init(|| DevKey::generate(DevAlg::RS256, "rsa-1"))
}

fn key(alg: DevAlg) -> DevKey {
    match alg {
        DevAlg::RS256 => DevKey::from_pem(alg, "rsa-1", &rsa_key().to_pem()).unwrap(),
        other => DevKey::generate(other, &format!("{other}-1")),
    }
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s)
        .expect("base64url without padding")
}

fn field<'a>(jwk: &'a Value, name: &str) -> &'a str {
    jwk[name]
        .as_str()
        .unwrap_or_else(|| panic!("JWK field {name}"))
}

/// Verifies a compact JWS against a JWK with the RustCrypto crates; returns (header, claims).
fn verify(jwk: &Value, token: &str) -> Result<(Value, Value), String> {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS has three parts");
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    let sig = unb64(parts[2]);
    let header: Value = serde_json::from_slice(&unb64(parts[0])).unwrap();
    let claims: Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
    match field(jwk, "kty") {
        "RSA" => {
            let n = rsa::BigUint::from_bytes_be(&unb64(field(jwk, "n")));
            let e = rsa::BigUint::from_bytes_be(&unb64(field(jwk, "e")));
            let pk = rsa::RsaPublicKey::new(n, e).map_err(|e| e.to_string())?;
            let vk = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(pk);
            let sig =
                rsa::pkcs1v15::Signature::try_from(sig.as_slice()).map_err(|e| e.to_string())?;
            vk.verify(signing_input.as_bytes(), &sig)
                .map_err(|e| e.to_string())?;
        }
        "EC" => {
            assert_eq!(field(jwk, "crv"), "P-256");
            let mut sec1 = vec![4u8];
            sec1.extend(unb64(field(jwk, "x")));
            sec1.extend(unb64(field(jwk, "y")));
            let vk =
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|e| e.to_string())?;
            let sig = p256::ecdsa::Signature::from_slice(&sig).map_err(|e| e.to_string())?;
            vk.verify(signing_input.as_bytes(), &sig)
                .map_err(|e| e.to_string())?;
        }
        "OKP" => {
            assert_eq!(field(jwk, "crv"), "Ed25519");
            let x: [u8; 32] = unb64(field(jwk, "x")).try_into().unwrap();
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
            let sig: [u8; 64] = sig.as_slice().try_into().map_err(|_| "signature length")?;
            vk.verify_strict(
                signing_input.as_bytes(),
                &ed25519_dalek::Signature::from_bytes(&sig),
            )
            .map_err(|e| e.to_string())?;
        }
        other => panic!("unexpected kty {other}"),
    }
    Ok((header, claims))
}

#[test]
fn alg_names_round_trip() {
    for alg in DevAlg::ALL {
        assert_eq!(alg.name().parse::<DevAlg>().unwrap(), alg);
    }
    assert!("HS256".parse::<DevAlg>().is_err());
    assert!("rs256".parse::<DevAlg>().is_err());
    assert!("none".parse::<DevAlg>().is_err());
}

#[test]
fn sign_verify_round_trip_every_alg() {
    for alg in DevAlg::ALL {
        let key = key(alg);
        let jwk = key.public_jwk();
        assert_eq!(jwk["kid"], json!(key.kid()));
        assert_eq!(jwk["alg"], json!(alg.name()));
        assert_eq!(jwk["use"], json!("sig"));
        assert!(
            jwk.get("d").is_none(),
            "{alg}: JWK must not carry the private part"
        );

        let claims = json!({"iss": "http://127.0.0.1:1/", "sub": "alice", "n": 1});
        let token = key.sign(&claims);
        let (header, got) = verify(&jwk, &token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(
            header,
            json!({"alg": alg.name(), "typ": "JWT", "kid": key.kid()})
        );
        assert_eq!(got, claims);
    }
}

#[test]
fn tampered_token_fails() {
    for alg in DevAlg::ALL {
        let key = key(alg);
        let token = key.sign(&json!({"sub": "alice"}));
        let (head, rest) = token.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let forged = format!(
            "{head}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#)
        );
        assert!(verify(&key.public_jwk(), &forged).is_err(), "{alg}");
        // Another key of the same type does not verify it either.
        let other = DevKey::generate(alg, "other");
        assert!(verify(&other.public_jwk(), &token).is_err(), "{alg}");
    }
}

#[test]
fn pem_round_trip_keeps_the_key() {
    for alg in DevAlg::ALL {
        let key = key(alg);
        let pem = key.to_pem();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
            "{alg}: {pem}"
        );
        let back = DevKey::from_pem(alg, key.kid(), &pem).unwrap();
        assert_eq!(back.public_jwk(), key.public_jwk());
        // Signed by the reloaded key, verified with the original's JWK.
        verify(&key.public_jwk(), &back.sign(&json!({"a": 1}))).unwrap();
        // The algorithm can be worked out from the PEM.
        let any = DevKey::from_pem_any(key.kid(), &pem).unwrap();
        assert_eq!(any.alg(), alg);
        // A PEM of another key type is refused with a clear error.
        for wrong in DevAlg::ALL.into_iter().filter(|a| *a != alg) {
            let err = DevKey::from_pem(wrong, "x", &pem).unwrap_err();
            assert!(
                matches!(err, DevKeyError::BadPem { .. }),
                "{alg} as {wrong}: {err}"
            );
        }
    }
    assert!(matches!(
        DevKey::from_pem_any("x", "not a pem"),
        Err(DevKeyError::UnrecognizedPem)
    ));
}

#[test]
fn debug_is_redacted() {
    for alg in DevAlg::ALL {
        let key = key(alg);
        let dbg = format!("{key:?}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
        assert!(!dbg.contains("PRIVATE"), "{dbg}");
        assert!(dbg.len() < 120, "{alg}: {dbg}");
    }
}

#[test]
fn rsa_jwk_shape() {
    let jwk = rsa_key().public_jwk();
    assert_eq!(unb64(field(&jwk, "n")).len(), 256);
    assert_eq!(field(&jwk, "e"), "AQAB");
}

#[test]
fn token_spec_claims() {
    let mut spec = TokenSpec::new("http://idp", "http://mcp/a", "u1");
    spec.now = Some(1_000_000);
    spec.groups = Some(vec!["eng".into(), "ops".into()]);
    spec.extra.insert("scope".into(), json!("openid"));
    spec.extra.insert("sub".into(), json!("override"));
    assert_eq!(
        spec.claims(),
        json!({
            "iss": "http://idp", "aud": "http://mcp/a", "sub": "override",
            "preferred_username": "u1", "groups": ["eng", "ops"],
            "iat": 1_000_000, "nbf": 1_000_000, "exp": 1_003_600, "scope": "openid",
        })
    );

    spec.aud = vec!["a".into(), "b".into()];
    spec.ttl_seconds = -10;
    spec.groups = None;
    let c = spec.claims();
    assert_eq!(c["aud"], json!(["a", "b"]));
    assert_eq!(c["exp"], json!(999_990));
    assert!(c.get("groups").is_none());

    spec.aud.clear();
    assert!(spec.claims().get("aud").is_none());
}

#[test]
fn claim_arguments() {
    assert_eq!(
        parse_claim("scope=a b").unwrap(),
        ("scope".into(), json!("a b"))
    );
    assert_eq!(parse_claim("n=5").unwrap(), ("n".into(), json!(5)));
    assert_eq!(
        parse_claim("x={\"a\":[1]}").unwrap(),
        ("x".into(), json!({"a": [1]}))
    );
    assert_eq!(parse_claim("e=").unwrap(), ("e".into(), json!("")));
    assert_eq!(parse_claim("k=a=b").unwrap(), ("k".into(), json!("a=b")));
    assert!(parse_claim("novalue").is_err());
    assert!(parse_claim("=v").is_err());
}

#[test]
fn cli_keygen_then_token() {
    use crate::cli::{keygen, token, KeygenArgs, TokenArgs};

    let dir = std::env::temp_dir().join(format!("portcullis-devtools-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let kargs = KeygenArgs {
        alg: DevAlg::ES256,
        kid: "demo-1".into(),
        out: dir.clone(),
        force: false,
    };
    keygen(&kargs).unwrap();
    let pem_path = dir.join("signing-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&pem_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No silent overwrite of an existing key.
    assert!(keygen(&kargs).is_err());

    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("jwks.json")).unwrap()).unwrap();
    let jwk = &jwks["keys"][0];
    assert_eq!(jwk["kid"], json!("demo-1"));

    let targs = TokenArgs {
        key: pem_path,
        alg: None,
        kid: "demo-1".into(),
        iss: "http://127.0.0.1:9/".into(),
        aud: vec!["http://127.0.0.1:10/bench/mcp".into()],
        sub: "alice".into(),
        name: None,
        groups: Some("bench, eng,".into()),
        ttl: 60,
        claims: vec![("token_use".into(), json!("access"))],
    };
    let jwt = token(&targs).unwrap();
    let (header, claims) = verify(jwk, &jwt).unwrap();
    assert_eq!(header["alg"], json!("ES256"));
    assert_eq!(claims["groups"], json!(["bench", "eng"]));
    assert_eq!(claims["preferred_username"], json!("alice"));
    assert_eq!(claims["token_use"], json!("access"));
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, 60);

    // A wrong --alg for the key is an error, not a mis-signed token.
    let wrong = TokenArgs {
        alg: Some(DevAlg::EdDSA),
        ..targs
    };
    assert!(token(&wrong).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
