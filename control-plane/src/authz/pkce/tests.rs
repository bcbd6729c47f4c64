use super::*;
use crate::authz::error::ErrorCode;

/// RFC 7636 Appendix B.
const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn challenge() -> CodeChallenge {
    validate_challenge(Some(RFC_CHALLENGE), Some("S256")).unwrap()
}

fn refused(r: Result<CodeChallenge, OAuthError>) -> OAuthError {
    r.expect_err("should be refused")
}

#[test]
fn rfc_7636_appendix_b() {
    assert_eq!(s256(RFC_VERIFIER), RFC_CHALLENGE);
    let c = challenge();
    assert_eq!(c.as_str(), RFC_CHALLENGE);
    assert_eq!(verify(Some(&c), Some(RFC_VERIFIER)), Ok(()));
}

#[test]
fn missing_challenge_is_invalid_request() {
    for c in [None, Some("")] {
        let e = refused(validate_challenge(c, Some("S256")));
        assert_eq!(e.error, ErrorCode::InvalidRequest);
        assert_eq!(
            e.error_description,
            "code_challenge is required: PKCE with S256"
        );
    }
}

#[test]
fn plain_and_other_methods_are_invalid_request() {
    let e = refused(validate_challenge(Some(RFC_CHALLENGE), Some("plain")));
    assert_eq!(e.error, ErrorCode::InvalidRequest);
    assert!(e.error_description.contains("plain is not allowed"), "{e}");
    // A plain "challenge" (the verifier itself) is refused whatever its form.
    let e = refused(validate_challenge(Some(RFC_VERIFIER), Some("plain")));
    assert_eq!(e.error, ErrorCode::InvalidRequest);
    // Absent method means plain (RFC 7636 §4.3).
    for m in [None, Some("")] {
        let e = refused(validate_challenge(Some(RFC_CHALLENGE), m));
        assert_eq!(e.error, ErrorCode::InvalidRequest);
        assert!(e.error_description.contains("absent means plain"), "{e}");
    }
    // The method name is case-sensitive.
    for m in ["s256", "SHA256", "S256 ", "S512"] {
        let e = refused(validate_challenge(Some(RFC_CHALLENGE), Some(m)));
        assert_eq!(e.error_description, "code_challenge_method must be S256");
    }
}

#[test]
fn malformed_challenges_are_invalid_request() {
    let too_long = format!("{RFC_CHALLENGE}A");
    let padded = format!("{RFC_CHALLENGE}=");
    let standard_alphabet = RFC_CHALLENGE.replace('-', "+");
    // Same length, but the last character carries non-zero trailing bits (not a digest's
    // canonical spelling).
    let trailing_bits = format!("{}N", &RFC_CHALLENGE[..42]);
    for c in [
        &RFC_CHALLENGE[..42],
        too_long.as_str(),
        padded.as_str(),
        standard_alphabet.as_str(),
        trailing_bits.as_str(),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw.cM", // '.' is not base64url
        &"a".repeat(128),
    ] {
        let e = refused(validate_challenge(Some(c), Some("S256")));
        assert_eq!(e.error, ErrorCode::InvalidRequest, "{c}");
        assert!(e.error_description.contains("43 characters"), "{c}: {e}");
    }
}

/// 43 base64url characters that decode to 32 bytes are indistinguishable from a digest: a
/// verifier sent as its own challenge is accepted at /authorize and then never matches.
#[test]
fn any_canonical_32_byte_value_is_a_challenge() {
    let c = validate_challenge(Some(RFC_VERIFIER), Some("S256")).unwrap();
    let e = verify(Some(&c), Some(RFC_VERIFIER)).unwrap_err();
    assert_eq!(e.error, ErrorCode::InvalidGrant);
}

#[test]
fn stored_challenges_parse_back() {
    assert_eq!(CodeChallenge::parse(RFC_CHALLENGE).unwrap(), challenge());
    assert!(CodeChallenge::parse("nope").is_err());
}

#[test]
fn wrong_verifier_is_invalid_grant() {
    let c = challenge();
    let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";
    let e = verify(Some(&c), Some(other)).unwrap_err();
    assert_eq!(e.error, ErrorCode::InvalidGrant);
    assert_eq!(
        e.error_description,
        "code_verifier does not match the code_challenge"
    );
    // Sending the challenge as the verifier (what a plain client would do) does not match.
    let e = verify(Some(&c), Some(RFC_CHALLENGE)).unwrap_err();
    assert_eq!(e.error, ErrorCode::InvalidGrant);
}

#[test]
fn malformed_or_missing_verifier_is_invalid_request() {
    let c = challenge();
    let short = &RFC_VERIFIER[..42];
    let long = "a".repeat(129);
    let spaced = format!("{} ", &RFC_VERIFIER[..42]);
    let non_ascii = format!("{}é", &RFC_VERIFIER[..42]);
    for v in [
        short,
        long.as_str(),
        spaced.as_str(),
        non_ascii.as_str(),
        "a+b/c=".repeat(10).as_str(),
    ] {
        let e = verify(Some(&c), Some(v)).unwrap_err();
        assert_eq!(e.error, ErrorCode::InvalidRequest, "{v:?}");
    }
    for v in [None, Some("")] {
        let e = verify(Some(&c), v).unwrap_err();
        assert_eq!(e.error, ErrorCode::InvalidRequest);
        assert_eq!(e.error_description, "code_verifier is required");
    }
}

#[test]
fn verifier_lengths_at_the_bounds() {
    for len in [43, 128] {
        let v = "~._-aZ09".repeat(16)[..len].to_string();
        assert!(is_well_formed_verifier(&v), "{len}");
        let c = validate_challenge(Some(&s256(&v)), Some("S256")).unwrap();
        assert_eq!(verify(Some(&c), Some(&v)), Ok(()));
    }
    assert!(!is_well_formed_verifier(&"a".repeat(42)));
    assert!(!is_well_formed_verifier(&"a".repeat(129)));
}

#[test]
fn verifier_without_recorded_challenge_is_invalid_grant() {
    let e = verify(None, Some(RFC_VERIFIER)).unwrap_err();
    assert_eq!(e.error, ErrorCode::InvalidGrant);
    assert!(e
        .error_description
        .contains("no code_challenge was recorded"));
    let e = verify(None, None).unwrap_err();
    assert_eq!(e.error, ErrorCode::InvalidGrant);
}
