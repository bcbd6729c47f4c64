//! Signature keys: JWKS parsing and signature verification, turned into ready keys once at load.
//!
//! INTERFACE (fixed; other modules depend on it):
//! - `Jwks`, `Jwk`: serde input types (JWKS documents carry extra fields such as `x5c`; those are
//!   ignored, not refused).
//! - `Algorithm`: the JWS `alg` values we support; `Algorithm::from_name("RS256")`.
//! - `VerifyingKey::from_jwk(&Jwk) -> Result<VerifyingKey, KeyError>`
//! - `VerifyingKey::accepts(alg) -> bool`: whether the key's type fits the algorithm family.
//! - `VerifyingKey::verify(alg, signing_input, signature) -> Result<(), SignatureError>`
//!
//! What is accepted:
//! - RSA (`RS256/384/512`, `PS256/384/512`): modulus 2048 to 8192 bits, odd exponent
//!   `3 <= e < 2^33`. Verification is our own fixed-width Montgomery code (`montgomery.rs`,
//!   `rsa.rs`): on wasm32 it is several times faster than general-purpose bignum crates.
//! - EC (`ES256` on P-256, `ES384` on P-384): signatures are JWS `r ‖ s`, not DER; high-S is
//!   accepted (JWS does not require low-S); `r`/`s` of zero or `>= n` are refused.
//! - OKP `Ed25519` (`EdDSA`), verified strictly (no small-order keys or `R`, canonical `S`).
//! - oct (`HS256/384/512`), compared in constant time; the key must be at least as long as the
//!   hash output (RFC 7518 §3.2), so a 32-byte key serves HS256 but not HS384/HS512.
//! - `none` is never an algorithm here.

mod b64;
mod montgomery;
mod rsa;

#[cfg(test)]
mod tests;

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

use self::rsa::{Hash, Padding, RsaPublicKey};

/// A JWK Set document (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One JSON Web Key (RFC 7517 §4, RFC 7518 §6, RFC 8037 §2). Members we do not use (`x5c`, `x5t`,
/// `key_ops`, private-key members …) are ignored. `Debug` never prints the HMAC secret `k`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// RSA modulus (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Curve of an EC or OKP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate, or the OKP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Symmetric key (`kty: "oct"`). Secret: redacted in `Debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("use_", &self.use_)
            .field("n", &self.n)
            .field("e", &self.e)
            .field("crv", &self.crv)
            .field("x", &self.x)
            .field("y", &self.y)
            .field("k", &self.k.as_ref().map(|_| Redacted))
            .finish()
    }
}

/// Prints `<redacted>` in place of a secret.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The JWS algorithms we verify (RFC 7518 §3, RFC 8037 §3.1). `none` is deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
    ];

    /// Parses a JWS `alg` value (case-sensitive, as JOSE requires). `none` and anything unknown
    /// give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The JWS `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }

    /// Whether this is a shared-secret (HMAC) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
    }

    /// The RSA scheme and hash, for RSA algorithms.
    fn rsa_params(self) -> Option<(Padding, Hash)> {
        Some(match self {
            Algorithm::RS256 => (Padding::Pkcs1v15, Hash::Sha256),
            Algorithm::RS384 => (Padding::Pkcs1v15, Hash::Sha384),
            Algorithm::RS512 => (Padding::Pkcs1v15, Hash::Sha512),
            Algorithm::PS256 => (Padding::Pss, Hash::Sha256),
            Algorithm::PS384 => (Padding::Pss, Hash::Sha384),
            Algorithm::PS512 => (Padding::Pss, Hash::Sha512),
            _ => return None,
        })
    }

    /// The hash of an HMAC algorithm.
    fn hmac_hash(self) -> Option<Hash> {
        match self {
            Algorithm::HS256 => Some(Hash::Sha256),
            Algorithm::HS384 => Some(Hash::Sha384),
            Algorithm::HS512 => Some(Hash::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a JWK cannot be turned into a [`VerifyingKey`].
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    #[error("unsupported key type {0:?}")]
    UnsupportedKeyType(String),
    #[error("missing JWK parameter {0:?}")]
    MissingParameter(&'static str),
    #[error("JWK parameter {0:?} is not valid base64url")]
    BadBase64(&'static str),
    #[error("JWK parameter {0:?} has the wrong length")]
    BadLength(&'static str),
    #[error("RSA modulus of {0} bits is too small (minimum 2048)")]
    RsaModulusTooSmall(usize),
    #[error("RSA modulus of {0} bits is too large (maximum 8192)")]
    RsaModulusTooLarge(usize),
    #[error("RSA modulus is not valid (zero or even)")]
    InvalidModulus,
    #[error("RSA exponent must be odd, at least 3 and below 2^33")]
    BadExponent,
    #[error("unsupported curve {0:?}")]
    UnsupportedCurve(String),
    #[error("public key is not a valid point on its curve")]
    InvalidPoint,
    #[error("key use {0:?} is not \"sig\"")]
    WrongUse(String),
    #[error("unknown or unsupported JWK alg {0:?}")]
    UnknownAlg(String),
    #[error("JWK alg {alg} does not fit key type {kty}")]
    AlgorithmMismatch { alg: &'static str, kty: String },
    #[error("HMAC key of {0} bits is too short (minimum 256, and at least the hash size)")]
    HmacKeyTooShort(usize),
}

impl KeyError {
    /// Whether the key is well-formed but of a kind this module does not verify with (another
    /// key type, curve or `alg`, or a key not meant for signatures). A JWKS consumer may skip such
    /// keys — IdPs publish encryption keys and keys for other algorithms next to their signing
    /// keys — while still refusing malformed or weak ones.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            KeyError::UnsupportedKeyType(_)
                | KeyError::UnsupportedCurve(_)
                | KeyError::UnknownAlg(_)
                | KeyError::WrongUse(_)
        )
    }
}

/// Why a signature was not accepted.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the key cannot be used with this algorithm")]
    AlgorithmMismatch,
    #[error("signature has the wrong length")]
    BadLength,
    #[error("signature is invalid")]
    Invalid,
}

/// A public (or, for HS*, shared) key ready to verify signatures.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    /// The JWK's `alg`, when it pinned one.
    alg: Option<Algorithm>,
    material: Material,
}

#[derive(Clone)]
enum Material {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Hmac(HmacSecret),
}

/// HMAC key bytes; never printed.
#[derive(Clone)]
struct HmacSecret(Vec<u8>);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.material {
            Material::Rsa(k) => format!("RSA-{}", k.bits()),
            Material::P256(_) => "EC P-256".to_owned(),
            Material::P384(_) => "EC P-384".to_owned(),
            Material::Ed25519(_) => "OKP Ed25519".to_owned(),
            Material::Hmac(s) => format!("oct ({} bytes, <redacted>)", s.0.len()),
        };
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key", &kind)
            .finish()
    }
}

fn decode_member(value: Option<&String>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let value = value.ok_or(KeyError::MissingParameter(name))?;
    let bytes = b64::decode(value).map_err(|_| KeyError::BadBase64(name))?;
    if bytes.is_empty() {
        return Err(KeyError::MissingParameter(name));
    }
    Ok(bytes)
}

/// Decodes an EC coordinate, which must be exactly the field size (RFC 7518 §6.2.1.2).
fn decode_coordinate(
    value: Option<&String>,
    name: &'static str,
    size: usize,
) -> Result<Vec<u8>, KeyError> {
    let bytes = decode_member(value, name)?;
    if bytes.len() != size {
        return Err(KeyError::BadLength(name));
    }
    Ok(bytes)
}

/// Uncompressed SEC1 point `04 ‖ x ‖ y`.
fn sec1_point(jwk: &Jwk, size: usize) -> Result<Vec<u8>, KeyError> {
    let x = decode_coordinate(jwk.x.as_ref(), "x", size)?;
    let y = decode_coordinate(jwk.y.as_ref(), "y", size)?;
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(point)
}

impl VerifyingKey {
    /// Builds a verifying key from a JWK. Refuses keys whose `use` is not `sig`, unknown `alg`
    /// values, an `alg` that does not fit the key type, and anything malformed or too weak.
    pub fn from_jwk(jwk: &Jwk) -> Result<VerifyingKey, KeyError> {
        if let Some(u) = &jwk.use_ {
            if u != "sig" {
                return Err(KeyError::WrongUse(u.clone()));
            }
        }
        let alg = match &jwk.alg {
            None => None,
            Some(name) => {
                Some(Algorithm::from_name(name).ok_or_else(|| KeyError::UnknownAlg(name.clone()))?)
            }
        };
        let material = match jwk.kty.as_str() {
            "RSA" => {
                let n = decode_member(jwk.n.as_ref(), "n")?;
                let e = decode_member(jwk.e.as_ref(), "e")?;
                Material::Rsa(RsaPublicKey::new(&n, &e)?)
            }
            "EC" => match jwk.crv.as_deref() {
                None => return Err(KeyError::MissingParameter("crv")),
                Some("P-256") => {
                    let point = sec1_point(jwk, 32)?;
                    Material::P256(
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                            .map_err(|_| KeyError::InvalidPoint)?,
                    )
                }
                Some("P-384") => {
                    let point = sec1_point(jwk, 48)?;
                    Material::P384(
                        p384::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                            .map_err(|_| KeyError::InvalidPoint)?,
                    )
                }
                Some(other) => return Err(KeyError::UnsupportedCurve(other.to_owned())),
            },
            "OKP" => match jwk.crv.as_deref() {
                None => return Err(KeyError::MissingParameter("crv")),
                Some("Ed25519") => {
                    let x = decode_member(jwk.x.as_ref(), "x")?;
                    let x: [u8; 32] = x
                        .as_slice()
                        .try_into()
                        .map_err(|_| KeyError::BadLength("x"))?;
                    let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                        .map_err(|_| KeyError::InvalidPoint)?;
                    if key.is_weak() {
                        return Err(KeyError::InvalidPoint);
                    }
                    Material::Ed25519(key)
                }
                Some(other) => return Err(KeyError::UnsupportedCurve(other.to_owned())),
            },
            "oct" => {
                let k = decode_member(jwk.k.as_ref(), "k")?;
                let min = alg.and_then(Algorithm::hmac_hash).map_or(32, Hash::len);
                if k.len() < min {
                    return Err(KeyError::HmacKeyTooShort(8 * k.len()));
                }
                Material::Hmac(HmacSecret(k))
            }
            other => return Err(KeyError::UnsupportedKeyType(other.to_owned())),
        };
        let key = VerifyingKey {
            kid: jwk.kid.clone(),
            alg: None,
            material,
        };
        if let Some(alg) = alg {
            if !key.fits(alg) {
                return Err(KeyError::AlgorithmMismatch {
                    alg: alg.name(),
                    kty: jwk.kty.clone(),
                });
            }
        }
        Ok(VerifyingKey { alg, ..key })
    }

    /// The JWK's `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm the JWK pinned with its `alg` member, if any.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.alg
    }

    /// Whether this key may verify `alg`: the key type fits the algorithm family and, if the JWK
    /// named an `alg`, it is that one.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|pinned| pinned == alg) && self.fits(alg)
    }

    /// Key type (and, for HMAC, key length) fits the algorithm.
    fn fits(&self, alg: Algorithm) -> bool {
        match &self.material {
            Material::Rsa(_) => alg.rsa_params().is_some(),
            Material::P256(_) => alg == Algorithm::ES256,
            Material::P384(_) => alg == Algorithm::ES384,
            Material::Ed25519(_) => alg == Algorithm::EdDSA,
            Material::Hmac(secret) => alg.hmac_hash().is_some_and(|h| secret.0.len() >= h.len()),
        }
    }

    /// Verifies a JWS signature: `signing_input` is `BASE64URL(header) "." BASE64URL(payload)`,
    /// `signature` the decoded signature bytes.
    pub fn verify(
        &self,
        alg: Algorithm,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        if !self.accepts(alg) {
            return Err(SignatureError::AlgorithmMismatch);
        }
        match &self.material {
            Material::Rsa(key) => {
                let (padding, hash) = alg.rsa_params().ok_or(SignatureError::AlgorithmMismatch)?;
                key.verify(padding, hash, signing_input, signature)
            }
            Material::P256(key) => {
                use p256::ecdsa::signature::Verifier;
                if signature.len() != 64 {
                    return Err(SignatureError::BadLength);
                }
                let sig = p256::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::Invalid)?;
                key.verify(signing_input, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            Material::P384(key) => {
                use p384::ecdsa::signature::Verifier;
                if signature.len() != 96 {
                    return Err(SignatureError::BadLength);
                }
                let sig = p384::ecdsa::Signature::from_slice(signature)
                    .map_err(|_| SignatureError::Invalid)?;
                key.verify(signing_input, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            Material::Ed25519(key) => {
                let bytes: &[u8; 64] = signature
                    .try_into()
                    .map_err(|_| SignatureError::BadLength)?;
                let sig = ed25519_dalek::Signature::from_bytes(bytes);
                key.verify_strict(signing_input, &sig)
                    .map_err(|_| SignatureError::Invalid)
            }
            Material::Hmac(secret) => {
                let hash = alg.hmac_hash().ok_or(SignatureError::AlgorithmMismatch)?;
                if signature.len() != hash.len() {
                    return Err(SignatureError::BadLength);
                }
                hmac_verify(hash, &secret.0, signing_input, signature)
            }
        }
    }
}

/// Constant-time HMAC check (the `hmac` crate compares tags with `subtle`).
fn hmac_verify(hash: Hash, key: &[u8], msg: &[u8], tag: &[u8]) -> Result<(), SignatureError> {
    fn run<M: Mac + KeyInit>(key: &[u8], msg: &[u8], tag: &[u8]) -> Result<(), SignatureError> {
        let mut mac = <M as KeyInit>::new_from_slice(key).map_err(|_| SignatureError::Invalid)?;
        mac.update(msg);
        mac.verify_slice(tag).map_err(|_| SignatureError::Invalid)
    }
    match hash {
        Hash::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg, tag),
        Hash::Sha384 => run::<Hmac<sha2::Sha384>>(key, msg, tag),
        Hash::Sha512 => run::<Hmac<sha2::Sha512>>(key, msg, tag),
    }
}
