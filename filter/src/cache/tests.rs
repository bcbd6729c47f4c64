use std::rc::Rc;

use policy::{IdSet, Identity, IdentityHeaders, TokenError};

use super::*;

fn identity(expires_at: u64) -> Rc<Identity> {
    Rc::new(Identity {
        subject: "u".into(),
        username: "u".into(),
        issuer: "i".into(),
        client_id: None,
        groups: Box::new([]),
        scopes: IdSet::empty(1),
        token_scopes: Box::default(),
        audience_servers: IdSet::full(1),
        expires_at: Some(expires_at),
        headers: IdentityHeaders {
            user: "u".into(),
            groups: String::new(),
            scopes: String::new(),
        },
    })
}

#[test]
fn valid_entries_live_until_expiry() {
    let mut cache = CredentialCache::new(4, 4, 30);
    cache.insert_valid("t1", identity(100), 50);
    assert!(matches!(cache.get("t1", 100), Some(Cached::Valid(_))));
    assert!(
        cache.get("t1", 101).is_none(),
        "expired entries are never served"
    );
    assert!(cache.get("t2", 50).is_none());
}

#[test]
fn already_expired_identities_are_not_cached() {
    let mut cache = CredentialCache::new(4, 4, 30);
    cache.insert_valid("t1", identity(10), 50);
    assert_eq!(cache.sizes(), (0, 0));
}

#[test]
fn refusals_are_remembered_for_a_while() {
    let mut cache = CredentialCache::new(4, 4, 30);
    cache.insert_invalid("bad", TokenError::BadSignature, 100);
    assert!(matches!(
        cache.get("bad", 130),
        Some(Cached::Invalid(TokenError::BadSignature))
    ));
    assert!(cache.get("bad", 131).is_none());
}

#[test]
fn both_caches_are_bounded() {
    let mut cache = CredentialCache::new(16, 8, 30);
    for i in 0..1000 {
        cache.insert_valid(&format!("valid-{i}"), identity(10_000), 1);
        cache.insert_invalid(&format!("bad-{i}"), TokenError::Malformed, 1);
        let (valid, invalid) = cache.sizes();
        assert!(valid <= 16 && invalid <= 8, "{valid} {invalid}");
    }
    // The newest entry always survives its own insertion.
    assert!(cache.get("valid-999", 1).is_some());
}

#[test]
fn expired_entries_are_evicted_first() {
    let mut cache = CredentialCache::new(2, 2, 30);
    cache.insert_valid("old", identity(5), 1);
    cache.insert_valid("keep", identity(1000), 1);
    cache.insert_valid("new", identity(1000), 10);
    assert!(cache.get("keep", 10).is_some());
    assert!(cache.get("new", 10).is_some());
}

#[test]
fn zero_capacity_turns_caching_off() {
    let mut cache = CredentialCache::new(0, 0, 30);
    cache.insert_valid("t", identity(1000), 1);
    cache.insert_invalid("b", TokenError::Malformed, 1);
    assert_eq!(cache.sizes(), (0, 0));
}
