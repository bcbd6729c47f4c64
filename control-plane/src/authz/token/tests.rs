use super::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 4231 test cases 1, 2 and 6 (a key longer than a block).
#[test]
fn hmac_sha256_matches_rfc_4231() {
    assert_eq!(
        hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn hashes_are_sha256_of_the_raw_token() {
    let t = SecretToken::new("abc");
    assert_eq!(
        hex(t.hash().as_bytes()),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(t.hash(), TokenHash::of("abc"));
    assert!(t.hash().ct_eq(&TokenHash::of("abc")));
    assert!(!t.hash().ct_eq(&TokenHash::of("abd")));
    assert_eq!(TokenHash::from_bytes(*t.hash().as_bytes()), t.hash());
}

#[test]
fn debug_never_shows_a_secret() {
    let t = SecretToken::new("super-secret-refresh-token");
    assert_eq!(format!("{t:?}"), "SecretToken(<redacted>)");
    let k = RotationKey::new([7; 32]);
    assert_eq!(format!("{k:?}"), "RotationKey(<redacted>)");
    assert_eq!(
        format!("{:?}", TokenHash::of("abc")),
        "TokenHash(ba7816bf…)"
    );
}

#[test]
fn random_tokens_are_43_base64url_characters() {
    let t = SecretToken::from_random([0xff; 32]);
    assert_eq!(t.expose().len(), 43);
    assert!(t
        .expose()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
}

#[test]
fn successors_are_deterministic_and_keyed() {
    let k = RotationKey::new([1; 32]);
    let a = SecretToken::new("refresh-a");
    let b = SecretToken::new("refresh-b");
    assert_eq!(k.successor(&a), k.successor(&a));
    assert_ne!(k.successor(&a), k.successor(&b));
    assert_ne!(k.successor(&a), RotationKey::new([2; 32]).successor(&a));
    assert_ne!(k.successor(&a), a);
    assert_eq!(k.successor(&a).expose().len(), 43);
    // The successor of a successor is another token (rotation moves on).
    assert_ne!(k.successor(&k.successor(&a)), k.successor(&a));
}
