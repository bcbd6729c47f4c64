//! PKCE (RFC 7636), S256 only: OAuth 2.1 and the MCP authorization spec require it, and
//! `plain` protects nothing against whoever can read the authorization request.
//!
//! - At `/authorize`, [`validate_challenge`] takes `code_challenge` and
//!   `code_challenge_method` as sent and returns the [`CodeChallenge`] to record with the code.
//!   A missing challenge, `plain`, a missing method (RFC 7636 §4.3: absent means `plain`) or a
//!   challenge that is not the base64url of a SHA-256 digest is `invalid_request`.
//! - At `/token`, [`verify`] checks the `code_verifier` against the recorded challenge in
//!   constant time: a mismatch is `invalid_grant` (RFC 7636 §4.6), a malformed or missing
//!   verifier `invalid_request`, and a verifier for a code that recorded no challenge
//!   `invalid_grant` (a downgrade attempt: every code we issue has one).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::OAuthError;

/// The one `code_challenge_method` we accept.
pub const S256: &str = "S256";

/// Shortest and longest `code_verifier` (RFC 7636 §4.1).
pub const VERIFIER_LEN: std::ops::RangeInclusive<usize> = 43..=128;

/// A validated S256 challenge: 43 characters, the unpadded base64url of 32 bytes. Stored as
/// its text and checked again when read back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CodeChallenge(String);

impl TryFrom<String> for CodeChallenge {
    type Error = String;
    fn try_from(stored: String) -> Result<CodeChallenge, String> {
        CodeChallenge::parse(&stored).map_err(|e| e.to_string())
    }
}

impl From<CodeChallenge> for String {
    fn from(challenge: CodeChallenge) -> String {
        challenge.0
    }
}

impl CodeChallenge {
    /// The challenge as sent (and as it is stored).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A stored challenge read back; the same checks as at `/authorize`.
    pub fn parse(stored: &str) -> Result<CodeChallenge, OAuthError> {
        validate_challenge(Some(stored), Some(S256))
    }
}

/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`: what a client sends for a verifier. The
/// broker uses it too, as a client of the upstream IdP.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The `/authorize` check: S256 and a well-formed challenge, else `invalid_request`.
/// Empty values count as missing (a form field sent empty is not a challenge).
pub fn validate_challenge(
    code_challenge: Option<&str>,
    code_challenge_method: Option<&str>,
) -> Result<CodeChallenge, OAuthError> {
    let challenge = code_challenge
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("code_challenge is required: PKCE with S256"))?;
    match code_challenge_method.filter(|m| !m.is_empty()) {
        Some(S256) => {}
        Some("plain") => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method plain is not allowed: use S256",
            ))
        }
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ))
        }
        None => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method is required and must be S256 (absent means plain)",
            ))
        }
    }
    // 43 characters of the base64url alphabet that decode to exactly 32 bytes; the decoder
    // refuses non-zero trailing bits, so there is one spelling per digest.
    let well_formed = challenge.len() == 43
        && URL_SAFE_NO_PAD
            .decode(challenge)
            .is_ok_and(|bytes| bytes.len() == 32);
    if !well_formed {
        return Err(OAuthError::invalid_request(
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok(CodeChallenge(challenge.to_string()))
}

/// Whether `verifier` has the RFC 7636 §4.1 form: 43 to 128 unreserved characters.
pub fn is_well_formed_verifier(verifier: &str) -> bool {
    VERIFIER_LEN.contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The `/token` check of `code_verifier` against the challenge recorded with the code.
pub fn verify(recorded: Option<&CodeChallenge>, verifier: Option<&str>) -> Result<(), OAuthError> {
    let verifier = verifier.filter(|v| !v.is_empty());
    let Some(challenge) = recorded else {
        return Err(match verifier {
            Some(_) => OAuthError::invalid_grant(
                "code_verifier sent but no code_challenge was recorded for this code",
            ),
            None => OAuthError::invalid_grant("the code was issued without PKCE"),
        });
    };
    let verifier =
        verifier.ok_or_else(|| OAuthError::invalid_request("code_verifier is required"))?;
    if !is_well_formed_verifier(verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        ));
    }
    let computed = s256(verifier);
    if bool::from(computed.as_bytes().ct_eq(challenge.as_str().as_bytes())) {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ))
    }
}

#[cfg(test)]
mod tests;
