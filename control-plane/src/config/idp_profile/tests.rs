use super::*;
use crate::config::cfg;

const ISSUER: (&str, &str) = (
    "PORTCULLIS_IDP_ISSUER",
    "https://idp.example.com/realms/acme",
);

#[test]
fn profiles_parse_by_name_and_refuse_others() {
    for p in IdpProfile::ALL {
        assert_eq!(p.as_str().parse::<IdpProfile>(), Ok(p));
        assert_eq!(p.as_str().to_uppercase().parse::<IdpProfile>(), Ok(p));
    }
    let e = "auth0".parse::<IdpProfile>().unwrap_err();
    assert!(
        e.contains("keycloak, okta, cognito, entra") && e.contains("auth0"),
        "{e}"
    );
    let e = cfg(&[ISSUER, ("PORTCULLIS_IDP_PROFILE", "ping")])
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("PORTCULLIS_IDP_PROFILE:"), "{e}");
}

/// The table as documented in docs/idp-profiles.md.
#[test]
fn the_table() {
    let t = IdpProfile::Generic.traits();
    assert_eq!(
        (
            t.groups_claim,
            t.audience,
            t.accepts_resource,
            t.offline_access
        ),
        ("groups", AudienceStyle::Resource, true, true)
    );
    let k = IdpProfile::Keycloak.traits();
    assert_eq!(
        (k.audience, k.dcr, k.strict_redirects),
        (AudienceStyle::Fixed, true, false)
    );
    let o = IdpProfile::Okta.traits();
    assert_eq!(
        (o.audience, o.strict_redirects),
        (AudienceStyle::Fixed, true)
    );
    let c = IdpProfile::Cognito.traits();
    assert_eq!(
        (
            c.groups_claim,
            c.audience,
            c.token_use,
            c.offline_access,
            c.strict_redirects
        ),
        (
            "cognito:groups",
            AudienceStyle::ClientId,
            Some("access"),
            false,
            true
        )
    );
    let e = IdpProfile::Entra.traits();
    assert_eq!(
        (e.audience, e.accepts_resource, e.qualified_scopes),
        (AudienceStyle::Fixed, false, true)
    );
}

#[test]
fn cognito_needs_its_client_ids_and_gets_its_defaults() {
    let e = cfg(&[ISSUER, ("PORTCULLIS_IDP_PROFILE", "cognito")])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("PORTCULLIS_IDP_CLIENT_IDS: required") && e.contains("no aud"),
        "{e}"
    );
    let c = cfg(&[
        ISSUER,
        ("PORTCULLIS_IDP_PROFILE", "cognito"),
        ("PORTCULLIS_IDP_CLIENT_IDS", "app1, app2"),
    ])
    .unwrap();
    let idp = c.idp.as_ref().unwrap();
    assert_eq!(idp.client_ids, ["app1", "app2"]);
    assert_eq!(idp.token_use.as_deref(), Some("access"));
    assert_eq!(idp.groups_claim, "cognito:groups");
    assert!(c.idp_strict_redirects);
    assert!(!c.advertised_scopes.contains(&"offline_access".to_string()));
    assert!(c.advertised_scopes.contains(&"openid".to_string()));
    assert_eq!(idp.audience_problem(), None);
}

#[test]
fn every_field_has_a_setting_of_its_own() {
    let c = cfg(&[
        ISSUER,
        ("PORTCULLIS_IDP_PROFILE", "cognito"),
        ("PORTCULLIS_IDP_CLIENT_IDS", "app1"),
        ("PORTCULLIS_IDP_GROUPS_CLAIM", "custom:teams"),
        ("PORTCULLIS_IDP_TOKEN_USE", "none"),
        ("PORTCULLIS_IDP_STRICT_REDIRECTS", "false"),
        ("PORTCULLIS_IDP_ACCEPTS_RESOURCE", "false"),
        ("PORTCULLIS_IDP_SCOPE_PREFIX", "api://gw/"),
        ("MCP_ADVERTISED_SCOPES", "openid offline_access"),
    ])
    .unwrap();
    let idp = c.idp.as_ref().unwrap();
    assert_eq!(idp.groups_claim, "custom:teams");
    assert_eq!(idp.token_use, None);
    assert!(!idp.accepts_resource);
    assert_eq!(idp.scope_prefix.as_deref(), Some("api://gw/"));
    assert!(!c.idp_strict_redirects);
    assert_eq!(c.advertised_scopes, ["openid", "offline_access"]);
}

#[test]
fn keycloak_without_an_audience_is_told_what_to_set() {
    let c = cfg(&[ISSUER, ("PORTCULLIS_IDP_PROFILE", "keycloak")]).unwrap();
    let idp = c.idp.as_ref().unwrap();
    assert!(c.idp_expect_dcr);
    let problem = idp.audience_problem().expect("no audience configured");
    assert!(
        problem.contains("Audience mapper") && problem.contains("PORTCULLIS_IDP_AUDIENCE"),
        "{problem}"
    );
    assert_eq!(idp.weak_audience(), None);

    let c = cfg(&[
        ISSUER,
        ("PORTCULLIS_IDP_PROFILE", "keycloak"),
        ("PORTCULLIS_IDP_AUDIENCE", "account"),
    ])
    .unwrap();
    let idp = c.idp.as_ref().unwrap();
    assert_eq!(idp.audience_problem(), None);
    assert_eq!(idp.weak_audience(), Some("account"));

    let c = cfg(&[
        ISSUER,
        ("PORTCULLIS_IDP_PROFILE", "keycloak"),
        ("PORTCULLIS_IDP_AUDIENCE", "mcp-gateway"),
    ])
    .unwrap();
    let idp = c.idp.as_ref().unwrap();
    assert_eq!((idp.audience_problem(), idp.weak_audience()), (None, None));
}

#[test]
fn entra_refuses_resource_and_generic_is_unchanged() {
    let c = cfg(&[
        ISSUER,
        ("PORTCULLIS_IDP_PROFILE", "entra"),
        (
            "PORTCULLIS_IDP_AUDIENCE",
            "11111111-2222-3333-4444-555555555555",
        ),
    ])
    .unwrap();
    assert!(!c.idp.as_ref().unwrap().accepts_resource);

    let c = cfg(&[ISSUER]).unwrap();
    let idp = c.idp.as_ref().unwrap();
    assert_eq!(idp.profile, IdpProfile::Generic);
    assert_eq!(idp.groups_claim, "groups");
    assert!(idp.accepts_resource && idp.client_ids.is_empty() && idp.token_use.is_none());
    assert!(!c.idp_strict_redirects && !c.idp_expect_dcr);
    assert!(c.advertised_scopes.contains(&"offline_access".to_string()));
    assert_eq!(idp.audience_problem(), None);
}
