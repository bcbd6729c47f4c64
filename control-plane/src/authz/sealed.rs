//! The control plane's secret key and what it protects: signing keys encrypted at rest
//! (ChaCha20-Poly1305, a fresh nonce per value) and the keys derived from it for refresh-token
//! rotation and for signing `/authorize` forms. Every replica of one installation must hold
//! the same key (`PORTCULLIS_SECRET_KEY`); a single SQLite installation keeps one in its data
//! directory.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use super::token::{hmac_sha256, RotationKey};

/// Why a sealed value could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is not base64url of nonce and ciphertext")]
    Malformed,
    #[error(
        "sealed value does not open with this secret key (another installation's key, or tampered)"
    )]
    WrongKey,
}

/// 32 secret bytes. No `Display`; `Debug` is redacted.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    pub fn new(bytes: [u8; 32]) -> SecretKey {
        SecretKey(bytes)
    }

    /// From its text form: unpadded base64url of exactly 32 bytes.
    pub fn parse(text: &str) -> Option<SecretKey> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        Some(SecretKey(bytes.try_into().ok()?))
    }

    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// A key for one purpose, so no two uses share bytes.
    fn derive(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.0, format!("portcullis {purpose} v1").as_bytes())
    }

    pub fn rotation_key(&self) -> RotationKey {
        RotationKey::new(self.derive("refresh rotation"))
    }

    /// The key `/authorize` signs its login form with.
    pub fn form_key(&self) -> [u8; 32] {
        self.derive("authorize form")
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.derive("sealing")))
    }

    /// Encrypts `plain` under a fresh random nonce: base64url(nonce ‖ ciphertext+tag).
    /// `label` is bound as associated data (a key id), so a value moved to another row does
    /// not open.
    pub fn seal(&self, label: &str, plain: &[u8], nonce: [u8; 12]) -> String {
        let payload = chacha20poly1305::aead::Payload {
            msg: plain,
            aad: label.as_bytes(),
        };
        // Encryption fails only for messages beyond ChaCha20's 256 GiB limit.
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, label: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| SealError::Malformed)?;
        if bytes.len() < 12 + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, body) = bytes.split_at(12);
        let payload = chacha20poly1305::aead::Payload {
            msg: body,
            aad: label.as_bytes(),
        };
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| SealError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_and_label_only() {
        let key = SecretKey::new([7; 32]);
        let sealed = key.seal("kid-1", b"private scalar", [1; 12]);
        assert!(!sealed.contains("private"));
        assert_eq!(key.open("kid-1", &sealed).unwrap(), b"private scalar");
        assert_eq!(key.open("kid-2", &sealed), Err(SealError::WrongKey));
        assert_eq!(
            SecretKey::new([8; 32]).open("kid-1", &sealed),
            Err(SealError::WrongKey)
        );
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            key.open("kid-1", &URL_SAFE_NO_PAD.encode(tampered)),
            Err(SealError::WrongKey)
        );
        assert_eq!(key.open("kid-1", "!!"), Err(SealError::Malformed));
        assert_eq!(key.open("kid-1", "AAAA"), Err(SealError::Malformed));
    }

    #[test]
    fn keys_parse_from_32_bytes_of_base64url_only() {
        let key = SecretKey::new([9; 32]);
        assert!(SecretKey::parse(&key.to_text()).is_some());
        assert!(SecretKey::parse("c2hvcnQ").is_none());
        assert!(SecretKey::parse("not base64!").is_none());
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        assert_ne!(key.form_key(), key.derive("sealing"), "one key per purpose");
    }
}
