//! Demo and test tooling: throwaway signing keys and hand-made JWTs.
//!
//! **Not the authorization server.** These helpers exist so the demo, the end-to-end tests and
//! the benchmarks can mint tokens that a Portcullis snapshot (or Envoy's `jwt_authn`) accepts,
//! without running an IdP. Nothing here checks who asks for a token. Never point a production
//! snapshot at a key made with `portcullis dev keygen`.
//!
//! ```no_run
//! use portcullis::devtools::{DevAlg, DevKey};
//! let key = DevKey::generate(DevAlg::ES256, "demo-1");
//! let jwks = serde_json::json!({ "keys": [key.public_jwk()] });
//! let token = key.sign(&serde_json::json!({ "iss": "http://127.0.0.1:9000", "sub": "alice" }));
//! # let _ = (jwks, token);
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

// p256 0.14 and ed25519-dalek 3 share `pkcs8` 0.11 and `signature` 3: one import serves both.
// rsa 0.9 is on the older `pkcs8` 0.10 / `signature` 2.
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rand::RngCore as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::traits::PublicKeyParts as _;

/// RSA modulus size for generated RS256 keys.
pub const RSA_BITS: usize = 2048;

/// The JWS algorithms the dev tools can sign with.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DevAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// ECDSA on P-256 with SHA-256 (signature is `r || s`, 64 bytes).
    ES256,
    /// Ed25519.
    EdDSA,
}

impl DevAlg {
    pub const ALL: [DevAlg; 3] = [DevAlg::RS256, DevAlg::ES256, DevAlg::EdDSA];

    /// The JWS `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            DevAlg::RS256 => "RS256",
            DevAlg::ES256 => "ES256",
            DevAlg::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for DevAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DevAlg {
    type Err = DevKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(DevAlg::RS256),
            "ES256" => Ok(DevAlg::ES256),
            "EdDSA" => Ok(DevAlg::EdDSA),
            other => Err(DevKeyError::UnknownAlg(other.to_string())),
        }
    }
}

/// Errors from loading dev keys.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    #[error("unknown algorithm {0:?} (expected RS256, ES256 or EdDSA)")]
    UnknownAlg(String),
    #[error("not a PKCS#8 PEM {alg} private key: {reason}")]
    BadPem { alg: DevAlg, reason: String },
    #[error("RS256 key has {0} bits; at least 2048 are required")]
    WeakRsa(usize),
    #[error("the PEM is not a PKCS#8 RS256, ES256 or EdDSA private key")]
    UnrecognizedPem,
}

enum Secret {
    Rsa(Box<rsa::RsaPrivateKey>),
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

/// A signing key for demo/test tokens. `Debug` never shows the secret.
pub struct DevKey {
    alg: DevAlg,
    kid: String,
    secret: Secret,
}

impl fmt::Debug for DevKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DevKey {
    /// A fresh random key from the OS RNG (RSA: 2048 bits; slow in unoptimized builds).
    pub fn generate(alg: DevAlg, kid: &str) -> DevKey {
        let mut rng = rand::rngs::OsRng;
        let secret = match alg {
            DevAlg::RS256 => Secret::Rsa(Box::new(
                rsa::RsaPrivateKey::new(&mut rng, RSA_BITS).expect("RSA key generation"),
            )),
            DevAlg::ES256 => loop {
                // A uniformly random scalar; the rare out-of-range or zero value is drawn again.
                let mut bytes = [0u8; 32];
                rng.fill_bytes(&mut bytes);
                if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&bytes) {
                    break Secret::Es256(k);
                }
            },
            DevAlg::EdDSA => {
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut seed);
                Secret::EdDsa(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
        };
        DevKey {
            alg,
            kid: kid.to_string(),
            secret,
        }
    }

    pub fn alg(&self) -> DevAlg {
        self.alg
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK: `{"kty", "kid", "alg", "use": "sig", ...key fields}`.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.secret {
            Secret::Rsa(k) => json!({
                "kty": "RSA",
                "n": b64(&k.n().to_bytes_be()),
                "e": b64(&k.e().to_bytes_be()),
            }),
            Secret::Es256(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                let bytes = point.as_bytes();
                debug_assert_eq!(bytes.len(), 65);
                json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64(&bytes[1..33]),
                    "y": b64(&bytes[33..65]),
                })
            }
            Secret::EdDsa(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(k.verifying_key().as_bytes()),
            }),
        };
        let obj = jwk.as_object_mut().expect("object");
        obj.insert("kid".into(), json!(self.kid));
        obj.insert("alg".into(), json!(self.alg.name()));
        obj.insert("use".into(), json!("sig"));
        jwk
    }

    /// `{"keys": [public_jwk]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// Raw JWS signature over `signing_input` (`base64url(header) "." base64url(payload)`).
    pub fn sign_raw(&self, signing_input: &[u8]) -> Vec<u8> {
        match &self.secret {
            Secret::Rsa(k) => {
                let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new((**k).clone());
                signer.sign(signing_input).to_vec()
            }
            Secret::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(signing_input);
                sig.to_bytes().to_vec()
            }
            Secret::EdDsa(k) => k.sign(signing_input).to_bytes().to_vec(),
        }
    }

    /// A compact JWS with header `{"alg", "typ": "JWT", "kid"}` over `claims` as given.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": self.alg.name(), "typ": "JWT", "kid": self.kid });
        self.sign_with_header(&header, claims)
    }

    /// A compact JWS with a caller-chosen header (tests: wrong `alg`, missing `kid`, ...).
    /// The signature is always made with this key's algorithm.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let mut out = String::new();
        out.push_str(&b64(header.to_string().as_bytes()));
        out.push('.');
        out.push_str(&b64(claims.to_string().as_bytes()));
        let sig = self.sign_raw(out.as_bytes());
        out.push('.');
        out.push_str(&b64(&sig));
        out
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), LF line endings.
    pub fn to_pem(&self) -> String {
        let pem = match &self.secret {
            Secret::Rsa(k) => k
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .map(|z| z.to_string())
                .map_err(|e| e.to_string()),
            Secret::Es256(k) => k
                .to_pkcs8_pem(LineEnding::LF)
                .map(|z| z.to_string())
                .map_err(|e| e.to_string()),
            Secret::EdDsa(k) => k
                .to_pkcs8_pem(LineEnding::LF)
                .map(|z| z.to_string())
                .map_err(|e| e.to_string()),
        };
        pem.expect("PKCS#8 encoding of a valid key")
    }

    /// Loads a PKCS#8 PEM private key of the given algorithm.
    pub fn from_pem(alg: DevAlg, kid: &str, pem: &str) -> Result<DevKey, DevKeyError> {
        let bad = |reason: String| DevKeyError::BadPem { alg, reason };
        let secret = match alg {
            DevAlg::RS256 => {
                let k = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|e| bad(e.to_string()))?;
                let bits = k.size() * 8;
                if bits < RSA_BITS {
                    return Err(DevKeyError::WeakRsa(bits));
                }
                Secret::Rsa(Box::new(k))
            }
            DevAlg::ES256 => Secret::Es256(
                p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|e| bad(e.to_string()))?,
            ),
            DevAlg::EdDSA => Secret::EdDsa(
                ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| bad(e.to_string()))?,
            ),
        };
        Ok(DevKey {
            alg,
            kid: kid.to_string(),
            secret,
        })
    }

    /// Loads a PKCS#8 PEM private key, working out the algorithm from the key type.
    pub fn from_pem_any(kid: &str, pem: &str) -> Result<DevKey, DevKeyError> {
        for alg in DevAlg::ALL {
            match DevKey::from_pem(alg, kid, pem) {
                Ok(k) => return Ok(k),
                Err(e @ DevKeyError::WeakRsa(_)) => return Err(e),
                // Not this algorithm's key type: try the next one.
                Err(_) => {}
            }
        }
        Err(DevKeyError::UnrecognizedPem)
    }
}

/// What goes into a dev token; [`TokenSpec::claims`] turns it into the JWT claims.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub iss: String,
    /// One value becomes a string `aud`, several an array, none no `aud` at all.
    pub aud: Vec<String>,
    pub sub: String,
    /// `preferred_username`; `sub` when `None`.
    pub name: Option<String>,
    /// `groups`; omitted when `None`.
    pub groups: Option<Vec<String>>,
    /// `exp - iat`; negative values make an already expired token.
    pub ttl_seconds: i64,
    /// `iat`/`nbf`; the current time when `None`.
    pub now: Option<u64>,
    /// Extra claims, set last (they override the ones above).
    pub extra: Map<String, Value>,
}

impl TokenSpec {
    pub fn new(iss: &str, aud: &str, sub: &str) -> TokenSpec {
        TokenSpec {
            iss: iss.to_string(),
            aud: vec![aud.to_string()],
            sub: sub.to_string(),
            name: None,
            groups: None,
            ttl_seconds: 3600,
            now: None,
            extra: Map::new(),
        }
    }

    pub fn claims(&self) -> Value {
        let now = self.now.unwrap_or_else(unix_now) as i64;
        let mut c = Map::new();
        c.insert("iss".into(), json!(self.iss));
        match self.aud.as_slice() {
            [] => {}
            [one] => {
                c.insert("aud".into(), json!(one));
            }
            many => {
                c.insert("aud".into(), json!(many));
            }
        }
        c.insert("sub".into(), json!(self.sub));
        c.insert(
            "preferred_username".into(),
            json!(self.name.as_deref().unwrap_or(&self.sub)),
        );
        if let Some(groups) = &self.groups {
            c.insert("groups".into(), json!(groups));
        }
        c.insert("iat".into(), json!(now));
        c.insert("nbf".into(), json!(now));
        c.insert("exp".into(), json!(now.saturating_add(self.ttl_seconds)));
        for (k, v) in &self.extra {
            c.insert(k.clone(), v.clone());
        }
        Value::Object(c)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses a `--claim k=v` argument: `v` is JSON when it parses as JSON, else a string.
pub fn parse_claim(arg: &str) -> Result<(String, Value), String> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected KEY=VALUE, got {arg:?}"))?;
    if k.is_empty() {
        return Err(format!("empty claim name in {arg:?}"));
    }
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

#[cfg(test)]
mod tests;
