//! Opaque tokens (authorization codes, refresh tokens) and how they are kept: only as
//! SHA-256 hashes ([`TokenHash`]); the raw value ([`SecretToken`]) exists in memory between
//! the endpoint and the client, and its `Debug` is redacted.
//!
//! Refresh-token successors are derived, not drawn: `successor = HMAC-SHA256(key, presented)`
//! ([`RotationKey::successor`]). A refresh retried within the grace window (parallel
//! requests, a lost response) must get the same new pair back, and we store no raw token: the
//! retry carries the presented token, so the same successor can be derived again and checked
//! against the stored hash. The key is a server secret (stored like the signing keys); the
//! first refresh token of a family and every code are random, drawn by the caller.
//!
//! HMAC is written out here over `sha2` (RFC 2104, checked against RFC 4231's vectors) rather
//! than adding the `hmac` crate for twenty lines.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a raw token: what storage keeps and what lookups use.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(raw: &str) -> TokenHash {
        TokenHash(Sha256::digest(raw.as_bytes()).into())
    }
    pub fn from_bytes(bytes: [u8; 32]) -> TokenHash {
        TokenHash(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Constant-time equality (for comparisons outside a hash-map lookup).
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
    /// Lower-case hex: how storage keys and records carry it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
    pub fn from_hex(text: &str) -> Option<TokenHash> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenHash(out))
    }
}

impl serde::Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TokenHash, D::Error> {
        let text = String::deserialize(d)?;
        TokenHash::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not a SHA-256 hex"))
    }
}

/// The first four bytes in hex: enough to follow one token through logs, nothing to use.
impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// A raw token on its way to or from a client. No `Display`, a redacted `Debug`; the
/// endpoint reads it with [`SecretToken::expose`] to put it in a response.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// A token as presented by a client.
    pub fn new(raw: impl Into<String>) -> SecretToken {
        SecretToken(raw.into())
    }
    /// A fresh token from 32 random bytes (the caller draws them): 43 base64url characters.
    pub fn from_random(bytes: [u8; 32]) -> SecretToken {
        SecretToken(URL_SAFE_NO_PAD.encode(bytes))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

/// The server secret refresh-token successors are derived with.
#[derive(Clone)]
pub struct RotationKey([u8; 32]);

impl RotationKey {
    pub fn new(bytes: [u8; 32]) -> RotationKey {
        RotationKey(bytes)
    }

    /// The refresh token that replaces `presented`: the same input always gives the same
    /// successor, and without the key it cannot be guessed from `presented`.
    pub fn successor(&self, presented: &SecretToken) -> SecretToken {
        let mut message = b"portcullis refresh successor v1\0".to_vec();
        message.extend_from_slice(presented.expose().as_bytes());
        SecretToken(URL_SAFE_NO_PAD.encode(hmac_sha256(&self.0, &message)))
    }
}

impl fmt::Debug for RotationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotationKey(<redacted>)")
    }
}

/// HMAC-SHA256 (RFC 2104) with a key of at most one block (64 bytes); longer keys are hashed
/// first, as the RFC says.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The claims of a JWT whose signature the caller has already verified (with the policy's
/// verifier): what `Identity` does not carry (`jti`, `nonce`). `None` when unreadable.
pub fn verified_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    serde_json::from_slice(&payload).ok()
}

#[cfg(test)]
mod tests;
