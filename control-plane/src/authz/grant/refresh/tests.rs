use std::time::Duration;

use super::super::tests::{access, at, redeemed, AUD, CLIENT};
use super::*;
use crate::authz::error::ErrorCode;
use crate::authz::grant::GrantPolicy;

fn key() -> RotationKey {
    RotationKey::new([9; 32])
}

fn req(token: &SecretToken) -> RefreshRequest<'_> {
    RefreshRequest {
        token,
        client_id: CLIENT,
        client: ClientStanding::Active,
        resource: &[],
    }
}

fn first_refresh(g: &mut Grants) -> (FamilyId, SecretToken) {
    let issued = redeemed(g, "fam");
    (issued.family, issued.refresh.expect("a refresh token"))
}

fn revoked_with(r: Refusal, family: &FamilyId, reason: RevokeReason) {
    assert_eq!(r.error.error, ErrorCode::InvalidGrant);
    assert!(
        matches!(
            r.effects.as_slice(),
            [Effect::RevokeFamily { family: f, reason: why, .. }] if f == family && *why == reason
        ),
        "{r:?}"
    );
}

#[test]
fn refresh_tokens_rotate_on_every_use() {
    let mut g = Grants::default();
    let (family, r0) = first_refresh(&mut g);
    let one = g
        .refresh(&req(&r0), &key(), access("at-1", at(400)), at(10))
        .unwrap();
    let r1 = one.refresh.clone().unwrap();
    assert_ne!(r1, r0);
    assert_eq!(r1, key().successor(&r0));
    assert_eq!(one.family, family);
    assert_eq!(one.grant.audience, AUD);
    assert_eq!(one.access, access("at-1", at(400)));
    assert!(!one.repeated);
    let two = g
        .refresh(&req(&r1), &key(), access("at-2", at(500)), at(20))
        .unwrap();
    assert_eq!(two.refresh, Some(key().successor(&r1)));
    assert_eq!(g.family_revoked(&family), None);
}

#[test]
fn a_retry_within_the_grace_window_gets_the_same_pair() {
    let mut g = Grants::default();
    let (family, r0) = first_refresh(&mut g);
    let first = g
        .refresh(&req(&r0), &key(), access("at-1", at(400)), at(10))
        .unwrap();
    for (ms, label) in [
        (0, "at once"),
        (2_500, "mid-window"),
        (5_000, "last instant"),
    ] {
        let now = at(10).plus(Duration::from_millis(ms));
        let again = g
            .refresh(&req(&r0), &key(), access("at-other", at(999)), now)
            .unwrap_or_else(|e| panic!("{label}: {e:?}"));
        assert!(again.repeated, "{label}");
        assert_eq!(again.refresh, first.refresh, "{label}");
        assert_eq!(
            again.access, first.access,
            "{label}: not a new access token"
        );
    }
    assert_eq!(g.family_revoked(&family), None);
    // The successor still works normally.
    let r1 = first.refresh.unwrap();
    assert!(g
        .refresh(&req(&r1), &key(), access("at-2", at(500)), at(16))
        .is_ok());
}

#[test]
fn reuse_after_the_grace_window_revokes_the_family() {
    let mut g = Grants::default();
    let (family, r0) = first_refresh(&mut g);
    let first = g
        .refresh(&req(&r0), &key(), access("at-1", at(400)), at(10))
        .unwrap();
    let late = at(10).plus(Duration::from_millis(5_001));
    let r = g
        .refresh(&req(&r0), &key(), access("at-x", at(999)), late)
        .unwrap_err();
    assert_eq!(
        r.error.error_description,
        "refresh token was already used; its grant is revoked"
    );
    revoked_with(r.clone(), &family, RevokeReason::RefreshReused);
    let Effect::RevokeFamily { access_tokens, .. } = &r.effects[0];
    assert_eq!(access_tokens, &["at-fam".to_string(), "at-1".to_string()]);
    // The legitimate holder's new token is dead too.
    let r1 = first.refresh.unwrap();
    let e = g
        .refresh(&req(&r1), &key(), access("at-2", at(500)), at(20))
        .unwrap_err();
    assert_eq!(e.error.error_description, "refresh token was revoked");
    assert!(e.effects.is_empty());
}

#[test]
fn reuse_once_the_successor_was_used_revokes_even_within_the_window() {
    let mut g = Grants::default();
    let (family, r0) = first_refresh(&mut g);
    let r1 = g
        .refresh(&req(&r0), &key(), access("at-1", at(400)), at(10))
        .unwrap()
        .refresh
        .unwrap();
    g.refresh(&req(&r1), &key(), access("at-2", at(400)), at(11))
        .unwrap();
    let r = g
        .refresh(&req(&r0), &key(), access("at-x", at(400)), at(12))
        .unwrap_err();
    revoked_with(r, &family, RevokeReason::RefreshReused);
}

#[test]
fn a_token_from_another_client_revokes_the_family() {
    let mut g = Grants::default();
    let (family, r0) = first_refresh(&mut g);
    let mut other = req(&r0);
    other.client_id = "client-2";
    let r = g
        .refresh(&other, &key(), access("at-x", at(400)), at(10))
        .unwrap_err();
    revoked_with(r, &family, RevokeReason::WrongClient);
    assert!(g
        .refresh(&req(&r0), &key(), access("at-1", at(400)), at(11))
        .is_err());
}

#[test]
fn unknown_and_expired_tokens() {
    let mut g = Grants::default();
    let (family, r0) = first_refresh(&mut g);
    let nope = SecretToken::new("never-issued");
    let e = g
        .refresh(&req(&nope), &key(), access("a", at(1)), at(2))
        .unwrap_err();
    assert_eq!(e.error.error, ErrorCode::InvalidGrant);
    assert_eq!(e.error.error_description, "refresh token is not valid");
    // 30 days after issue (at 1 s) the unused token is expired; nothing is revoked.
    let expiry = at(1).plus(GrantPolicy::default().refresh_ttl);
    let e = g
        .refresh(&req(&r0), &key(), access("a", at(1)), expiry)
        .unwrap_err();
    assert_eq!(e.error.error_description, "refresh token expired");
    assert!(e.effects.is_empty());
    assert_eq!(g.family_revoked(&family), None);
}

#[test]
fn disabled_or_deleted_clients() {
    let mut g = Grants::default();
    let (family, r0) = first_refresh(&mut g);
    for standing in [ClientStanding::Disabled, ClientStanding::Unknown] {
        let mut r = req(&r0);
        r.client = standing;
        let e = g
            .refresh(&r, &key(), access("a", at(400)), at(10))
            .unwrap_err();
        assert_eq!(e.error.error, ErrorCode::InvalidClient);
        assert!(e.effects.is_empty());
    }
    // Deleted, then the same client id registers again: the old family is revoked.
    let effects = g.revoke_client(CLIENT, at(11));
    assert_eq!(effects.len(), 1);
    let e = g
        .refresh(&req(&r0), &key(), access("a", at(400)), at(12))
        .unwrap_err();
    assert_eq!(e.error.error, ErrorCode::InvalidGrant);
    assert_eq!(g.family_revoked(&family), Some(RevokeReason::ClientRemoved));
}

#[test]
fn resource_must_stay_the_granted_audience() {
    let mut g = Grants::default();
    let (_, r0) = first_refresh(&mut g);
    let mut r = req(&r0);
    r.resource = &["https://mcp.example.com/github"];
    let e = g
        .refresh(&r, &key(), access("a", at(400)), at(10))
        .unwrap_err();
    assert_eq!(e.error.error, ErrorCode::InvalidTarget);
    // Refused before rotation: the token still works.
    r.resource = &[AUD];
    assert!(g.refresh(&r, &key(), access("a", at(400)), at(11)).is_ok());
}

#[test]
fn a_changed_rotation_key_within_the_window_is_a_server_error() {
    let mut g = Grants::default();
    let (family, r0) = first_refresh(&mut g);
    g.refresh(&req(&r0), &key(), access("at-1", at(400)), at(10))
        .unwrap();
    let other = RotationKey::new([8; 32]);
    let e = g
        .refresh(&req(&r0), &other, access("x", at(400)), at(11))
        .unwrap_err();
    assert_eq!(e.error.error, ErrorCode::ServerError);
    assert_eq!(g.family_revoked(&family), None);
}

#[test]
fn grace_window_follows_the_policy() {
    let mut g = Grants::new(GrantPolicy {
        refresh_grace: Duration::ZERO,
        ..GrantPolicy::default()
    });
    let (family, r0) = first_refresh(&mut g);
    g.refresh(&req(&r0), &key(), access("at-1", at(400)), at(10))
        .unwrap();
    assert!(
        g.refresh(&req(&r0), &key(), access("x", at(400)), at(10))
            .unwrap()
            .repeated
    );
    let e = g
        .refresh(
            &req(&r0),
            &key(),
            access("x", at(400)),
            at(10).plus(Duration::from_millis(1)),
        )
        .unwrap_err();
    revoked_with(e, &family, RevokeReason::RefreshReused);
}
