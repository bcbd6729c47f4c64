use super::*;

fn urls<S>(c: Vec<Candidate<S>>) -> Vec<String> {
    c.into_iter().map(|c| c.url).collect()
}

fn u(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn prm_order_challenge_then_suffixed_then_appended_then_root() {
    let c = prm_candidates(
        &u("https://mcp.example.com/github/mcp"),
        Some("https://meta.example.com/prm"),
    );
    let sources: Vec<PrmSource> = c.iter().map(|c| c.source).collect();
    assert_eq!(
        sources,
        [
            PrmSource::Challenge,
            PrmSource::PathSuffixed,
            PrmSource::PathAppended,
            PrmSource::Root
        ]
    );
    assert_eq!(
        urls(c),
        [
            "https://meta.example.com/prm",
            "https://mcp.example.com/.well-known/oauth-protected-resource/github/mcp",
            "https://mcp.example.com/github/mcp/.well-known/oauth-protected-resource",
            "https://mcp.example.com/.well-known/oauth-protected-resource",
        ]
    );
}

#[test]
fn prm_without_challenge_and_trailing_slash() {
    assert_eq!(
        urls(prm_candidates(&u("http://127.0.0.1:8080/mcp/"), None)),
        [
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
            "http://127.0.0.1:8080/mcp/.well-known/oauth-protected-resource",
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource",
        ]
    );
}

#[test]
fn prm_at_the_root_has_one_location_and_duplicates_go() {
    assert_eq!(
        urls(prm_candidates(&u("https://mcp.example.com"), None)),
        ["https://mcp.example.com/.well-known/oauth-protected-resource"]
    );
    assert_eq!(
        urls(prm_candidates(&u("https://mcp.example.com/"), None)),
        ["https://mcp.example.com/.well-known/oauth-protected-resource"]
    );
    // The challenge names the path-suffixed URL: listed once, as the challenge's.
    let c = prm_candidates(
        &u("https://h/mcp"),
        Some("https://h/.well-known/oauth-protected-resource/mcp"),
    );
    assert_eq!(c.len(), 3);
    assert_eq!(c[0].source, PrmSource::Challenge);
    assert_eq!(c[1].source, PrmSource::PathAppended);
}

#[test]
fn prm_keeps_ports_ipv6_and_query() {
    assert_eq!(
        urls(prm_candidates(&u("https://[::1]:8443/a/b?tenant=x"), None))[0],
        "https://[::1]:8443/.well-known/oauth-protected-resource/a/b?tenant=x"
    );
    // Default ports disappear, as in the URL clients build.
    assert_eq!(
        urls(prm_candidates(&u("https://h:443/m"), None))[2],
        "https://h/.well-known/oauth-protected-resource"
    );
}

#[test]
fn as_order_for_an_issuer_with_a_path() {
    let c = as_candidates(&u("https://idp.example.com/realms/acme"));
    let sources: Vec<AsSource> = c.iter().map(|c| c.source).collect();
    assert_eq!(
        sources,
        [
            AsSource::Oauth,
            AsSource::OidcInserted,
            AsSource::OidcAppended
        ]
    );
    assert_eq!(
        urls(c),
        [
            "https://idp.example.com/.well-known/oauth-authorization-server/realms/acme",
            "https://idp.example.com/.well-known/openid-configuration/realms/acme",
            "https://idp.example.com/realms/acme/.well-known/openid-configuration",
        ]
    );
}

#[test]
fn as_issuer_trailing_slash_is_removed_before_inserting_or_appending() {
    assert_eq!(
        urls(as_candidates(&u("https://login.example.com/tenant/v2.0/"))),
        [
            "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2.0",
            "https://login.example.com/.well-known/openid-configuration/tenant/v2.0",
            "https://login.example.com/tenant/v2.0/.well-known/openid-configuration",
        ]
    );
}

#[test]
fn as_order_for_an_issuer_without_a_path() {
    for iss in ["https://auth.example.com", "https://auth.example.com/"] {
        assert_eq!(
            urls(as_candidates(&u(iss))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ],
            "{iss}"
        );
    }
    assert_eq!(
        urls(as_candidates(&u("http://127.0.0.1:9000")))[0],
        "http://127.0.0.1:9000/.well-known/oauth-authorization-server"
    );
}

#[test]
fn loopback_and_insecure() {
    for ok in [
        "http://127.0.0.1:1/x",
        "http://127.9.9.9/",
        "http://localhost:3000",
        "http://LOCALHOST./",
        "http://app.localhost/",
        "http://[::1]:80/",
        "https://mcp.example.com/",
    ] {
        assert!(!is_insecure(&u(ok)), "{ok}");
    }
    for bad in [
        "http://mcp.example.com/",
        "http://10.0.0.1/",
        "http://localhost.example.com/",
        "http://[::2]/",
    ] {
        assert!(is_insecure(&u(bad)), "{bad}");
    }
}
