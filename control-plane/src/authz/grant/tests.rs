use super::*;
use crate::authz::error::ErrorCode;
use crate::authz::pkce::s256;

pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const CLIENT: &str = "client-1";
pub(crate) const AUD: &str = "https://mcp.example.com/jira";
pub(crate) const REDIRECT: &str = "http://127.0.0.1:5555/callback";
pub(crate) const T0: Timestamp = Timestamp(1_700_000_000_000);

pub(crate) fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

pub(crate) fn grant() -> Grant {
    Grant {
        client_id: CLIENT.into(),
        subject: "alice".into(),
        audience: AUD.into(),
        scopes: vec!["jira:read".into()],
    }
}

pub(crate) fn code(name: &str) -> SecretToken {
    SecretToken::new(format!("code-{name}"))
}

pub(crate) fn access(id: &str, expires: Timestamp) -> AccessGrant {
    AccessGrant {
        id: id.into(),
        expires_at: expires,
    }
}

pub(crate) fn new_family(id: &str) -> NewFamily {
    NewFamily {
        id: FamilyId(id.into()),
        refresh: Some(SecretToken::new(format!("refresh-{id}"))),
        access: access(&format!("at-{id}"), at(300)),
    }
}

pub(crate) fn issue(g: &mut Grants, name: &str, now: Timestamp) -> SecretToken {
    let c = code(name);
    g.issue_code(
        &c,
        CodeRequest {
            grant: grant(),
            redirect_uri: Some(REDIRECT.into()),
            challenge: pkce::validate_challenge(Some(&s256(VERIFIER)), Some("S256")).unwrap(),
        },
        now,
    )
    .unwrap();
    c
}

pub(crate) fn redemption(code: &SecretToken) -> CodeRedemption<'_> {
    CodeRedemption {
        code,
        client_id: CLIENT,
        client: ClientStanding::Active,
        redirect_uri: Some(REDIRECT),
        code_verifier: Some(VERIFIER),
        resource: &[],
    }
}

/// A family issued from a fresh code at T0.
pub(crate) fn redeemed(g: &mut Grants, name: &str) -> Issued {
    let c = issue(g, name, T0);
    g.redeem_code(&redemption(&c), new_family(name), at(1))
        .unwrap()
}

fn grant_error(r: Result<Issued, Refusal>) -> Refusal {
    let refusal = r.expect_err("should be refused");
    assert_eq!(refusal.error.error, ErrorCode::InvalidGrant, "{refusal:?}");
    refusal
}

#[test]
fn defaults() {
    let p = GrantPolicy::default();
    assert_eq!(p.code_ttl, Duration::from_secs(60));
    assert_eq!(p.refresh_grace, Duration::from_secs(5));
    assert_eq!(
        Timestamp(1).plus(Duration::from_millis(1500)),
        Timestamp(1501)
    );
    assert_eq!(
        Timestamp(u64::MAX).plus(Duration::from_secs(1)),
        Timestamp(u64::MAX)
    );
}

#[test]
fn a_code_is_exchanged_once() {
    let mut g = Grants::default();
    let issued = redeemed(&mut g, "a");
    assert_eq!(issued.family, FamilyId("a".into()));
    assert_eq!(issued.grant, grant());
    assert_eq!(issued.refresh, Some(SecretToken::new("refresh-a")));
    assert_eq!(issued.access, access("at-a", at(300)));
    assert!(!issued.repeated);
    assert_eq!(g.family_code(&issued.family), Some(code("a").hash()));
}

#[test]
fn a_replayed_code_revokes_what_it_issued() {
    let mut g = Grants::default();
    let c = issue(&mut g, "a", T0);
    let first = g
        .redeem_code(&redemption(&c), new_family("a"), at(1))
        .unwrap();
    let replay = grant_error(g.redeem_code(&redemption(&c), new_family("b"), at(2)));
    assert_eq!(
        replay.error.error_description,
        "authorization code was already used; the tokens it issued are revoked"
    );
    assert_eq!(
        replay.effects,
        [Effect::RevokeFamily {
            family: first.family.clone(),
            reason: RevokeReason::CodeReplayed,
            access_tokens: vec!["at-a".into()],
        }]
    );
    assert_eq!(
        g.family_revoked(&first.family),
        Some(RevokeReason::CodeReplayed)
    );
    // Nothing was issued to the replay, and the family's refresh token is dead.
    assert_eq!(g.family_revoked(&FamilyId("b".into())), None);
    assert!(!g.families.contains_key(&FamilyId("b".into())));
    // A third replay, long after the code's lifetime, is refused without a second effect.
    let again = grant_error(g.redeem_code(&redemption(&c), new_family("c"), at(3600)));
    assert!(again.effects.is_empty());
}

#[test]
fn revocation_lists_only_unexpired_access_tokens() {
    let mut g = Grants::default();
    let issued = redeemed(&mut g, "a");
    let e = g.revoke_family(&issued.family, RevokeReason::Requested, at(300));
    assert_eq!(
        e,
        Some(Effect::RevokeFamily {
            family: issued.family.clone(),
            reason: RevokeReason::Requested,
            access_tokens: vec![],
        })
    );
    assert_eq!(
        g.revoke_family(&issued.family, RevokeReason::Requested, at(301)),
        None
    );
    assert_eq!(
        g.revoke_family(&FamilyId("nope".into()), RevokeReason::Requested, T0),
        None
    );
}

#[test]
fn codes_expire_after_60_seconds() {
    let mut g = Grants::default();
    let c = issue(&mut g, "a", T0);
    let r = grant_error(g.redeem_code(&redemption(&c), new_family("a"), at(60)));
    assert_eq!(r.error.error_description, "authorization code expired");
    let c = issue(&mut g, "b", T0);
    let just_in_time = T0.plus(Duration::from_millis(59_999));
    assert!(g
        .redeem_code(&redemption(&c), new_family("b"), just_in_time)
        .is_ok());
}

#[test]
fn unknown_codes_are_invalid_grant() {
    let mut g = Grants::default();
    let c = code("never-issued");
    let r = grant_error(g.redeem_code(&redemption(&c), new_family("a"), T0));
    assert_eq!(r.error.error_description, "authorization code is not valid");
}

#[test]
fn any_failed_presentation_burns_the_code() {
    type Tamper = for<'a> fn(&mut CodeRedemption<'a>);
    let cases: [(Tamper, ErrorCode, &str); 6] = [
        (
            |r| r.client_id = "client-2",
            ErrorCode::InvalidGrant,
            "another client",
        ),
        (
            |r| r.redirect_uri = Some("http://127.0.0.1:5556/callback"),
            ErrorCode::InvalidGrant,
            "redirect_uri",
        ),
        (
            |r| r.redirect_uri = None,
            ErrorCode::InvalidGrant,
            "redirect_uri",
        ),
        (
            |r| r.code_verifier = Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"),
            ErrorCode::InvalidGrant,
            "does not match",
        ),
        (
            |r| r.code_verifier = None,
            ErrorCode::InvalidRequest,
            "code_verifier is required",
        ),
        (
            |r| r.resource = &["https://mcp.example.com/github"],
            ErrorCode::InvalidTarget,
            "resource differs",
        ),
    ];
    for (i, (tamper, code_want, text)) in cases.into_iter().enumerate() {
        let mut g = Grants::default();
        let c = issue(&mut g, "a", T0);
        let mut req = redemption(&c);
        tamper(&mut req);
        let r = g
            .redeem_code(&req, new_family("a"), at(1))
            .expect_err("refused");
        assert_eq!(r.error.error, code_want, "case {i}");
        assert!(r.error.error_description.contains(text), "case {i}: {r:?}");
        assert!(r.effects.is_empty());
        // The right request afterwards finds the code used (and nothing to revoke).
        let again = grant_error(g.redeem_code(&redemption(&c), new_family("a"), at(2)));
        assert!(
            again.error.error_description.contains("already used"),
            "case {i}"
        );
        assert!(again.effects.is_empty());
        assert!(g.families.is_empty());
    }
}

#[test]
fn redirect_uri_may_be_omitted_only_if_it_was_at_authorize() {
    let mut g = Grants::default();
    let c = code("x");
    let mut request = CodeRequest {
        grant: grant(),
        redirect_uri: None,
        challenge: pkce::validate_challenge(Some(&s256(VERIFIER)), Some("S256")).unwrap(),
    };
    g.issue_code(&c, request.clone(), T0).unwrap();
    let mut req = redemption(&c);
    req.redirect_uri = None;
    assert!(g.redeem_code(&req, new_family("x"), at(1)).is_ok());
    request.redirect_uri = Some(REDIRECT.into());
    assert_eq!(
        g.issue_code(&c, request, T0).unwrap_err().error,
        ErrorCode::ServerError
    );
}

#[test]
fn resource_at_token_may_repeat_the_audience() {
    let mut g = Grants::default();
    let c = issue(&mut g, "a", T0);
    let mut req = redemption(&c);
    req.resource = &[AUD];
    assert!(g.redeem_code(&req, new_family("a"), at(1)).is_ok());
}

#[test]
fn disabled_or_unknown_clients_are_invalid_client_and_touch_nothing() {
    for (standing, text) in [
        (ClientStanding::Disabled, "client is disabled"),
        (
            ClientStanding::Pending,
            "client is waiting for an administrator's approval",
        ),
        (ClientStanding::Unknown, "unknown client: register again"),
    ] {
        let mut g = Grants::default();
        let c = issue(&mut g, "a", T0);
        let mut req = redemption(&c);
        req.client = standing;
        let r = g.redeem_code(&req, new_family("a"), at(1)).unwrap_err();
        assert_eq!(r.error.error, ErrorCode::InvalidClient);
        assert_eq!(r.error.token_endpoint_status(), 401);
        assert_eq!(r.error.error_description, text);
        // The code was not consumed: once the client is active again it works.
        assert!(g
            .redeem_code(&redemption(&c), new_family("a"), at(2))
            .is_ok());
    }
}

#[test]
fn deleting_a_client_revokes_its_codes_and_families() {
    let mut g = Grants::default();
    let one = redeemed(&mut g, "f1");
    let two = redeemed(&mut g, "f2");
    let pending = issue(&mut g, "pending", at(2));
    // Another client's family is untouched.
    let other = code("other");
    g.issue_code(
        &other,
        CodeRequest {
            grant: Grant {
                client_id: "client-2".into(),
                ..grant()
            },
            redirect_uri: None,
            challenge: pkce::validate_challenge(Some(&s256(VERIFIER)), Some("S256")).unwrap(),
        },
        T0,
    )
    .unwrap();
    let effects = g.revoke_client(CLIENT, at(3));
    assert_eq!(
        effects,
        [
            Effect::RevokeFamily {
                family: one.family.clone(),
                reason: RevokeReason::ClientRemoved,
                access_tokens: vec!["at-f1".into()],
            },
            Effect::RevokeFamily {
                family: two.family.clone(),
                reason: RevokeReason::ClientRemoved,
                access_tokens: vec!["at-f2".into()],
            },
        ]
    );
    // The client id comes back (a CIMD URL is re-fetched): its old code is dead.
    let r = grant_error(g.redeem_code(&redemption(&pending), new_family("p"), at(4)));
    assert_eq!(r.error.error_description, "authorization code is not valid");
    let mut req = redemption(&other);
    req.client_id = "client-2";
    req.redirect_uri = None;
    assert!(g.redeem_code(&req, new_family("o"), at(4)).is_ok());
}

#[test]
fn id_collisions_are_server_errors() {
    let mut g = Grants::default();
    redeemed(&mut g, "a");
    let c = issue(&mut g, "b", T0);
    let r = g
        .redeem_code(&redemption(&c), new_family("a"), at(1))
        .unwrap_err();
    assert_eq!(r.error.error, ErrorCode::ServerError);
}

#[test]
fn families_without_refresh_tokens() {
    let mut g = Grants::default();
    let c = issue(&mut g, "a", T0);
    let mut new = new_family("a");
    new.refresh = None;
    let issued = g.redeem_code(&redemption(&c), new, at(1)).unwrap();
    assert_eq!(issued.refresh, None);
}

#[test]
fn debug_shows_no_raw_token() {
    let mut g = Grants::default();
    redeemed(&mut g, "a");
    let text = format!("{g:?}");
    assert!(
        !text.contains("code-a") && !text.contains("refresh-a"),
        "{text}"
    );
    assert!(text.contains("TokenHash("));
}

/// What storage does between two requests: export every record, import them into a fresh
/// `Grants`. The state machine must behave as if it had never been stored.
fn stored_and_loaded(g: &Grants) -> Grants {
    let mut fresh = Grants::new(g.policy());
    for r in g.export() {
        fresh.import(r.kind, &r.key, &r.record).unwrap();
    }
    assert_eq!(fresh.export(), g.export(), "a round trip changes nothing");
    fresh
}

#[test]
fn records_survive_storage_and_a_replayed_code_still_revokes_its_family() {
    let mut g = Grants::new(GrantPolicy::default());
    let c = issue(&mut g, "a", T0);
    let mut g = stored_and_loaded(&g);
    let issued = g
        .redeem_code(&redemption(&c), new_family("a"), at(1))
        .unwrap();
    let records = g.export();
    let code_row = records.iter().find(|r| r.kind == RecordKind::Code).unwrap();
    assert_eq!(code_row.family, Some(issued.family.clone()));
    assert_eq!(code_row.client_id, CLIENT);
    let refresh_row = records
        .iter()
        .find(|r| r.kind == RecordKind::Refresh)
        .unwrap();
    assert_eq!(
        refresh_row.client_id, CLIENT,
        "a refresh row names its client"
    );
    assert!(
        !code_row.record.contains("code-a"),
        "no raw token in a record"
    );
    assert!(
        !refresh_row.record.contains("refresh-a"),
        "no raw token in a record"
    );

    let mut g = stored_and_loaded(&g);
    let refusal = grant_error(g.redeem_code(&redemption(&c), new_family("b"), at(2)));
    assert!(matches!(
        refusal.effects.as_slice(),
        [Effect::RevokeFamily {
            reason: RevokeReason::CodeReplayed,
            ..
        }]
    ));
    let g = stored_and_loaded(&g);
    assert_eq!(
        g.family_revoked(&issued.family),
        Some(RevokeReason::CodeReplayed)
    );
}

#[test]
fn a_record_that_does_not_parse_is_an_error_not_a_default() {
    let mut g = Grants::new(GrantPolicy::default());
    let err = g
        .import(
            RecordKind::Code,
            &TokenHash::of("x").to_hex(),
            "{\"state\": 1}",
        )
        .unwrap_err();
    assert_eq!(err.kind, RecordKind::Code);
    assert!(g.import(RecordKind::Refresh, "not-hex", "{}").is_err());
    // A tampered challenge is refused when read back, as at /authorize.
    let c = issue(&mut g, "a", T0);
    let row = g.export().remove(0);
    let tampered = row.record.replace(&s256(VERIFIER), "short");
    let mut fresh = Grants::new(GrantPolicy::default());
    assert!(fresh.import(row.kind, &row.key, &tampered).is_err());
    drop(c);
}
