use serde_json::json;

use super::*;
use crate::diagnosis::{http, Options};
use crate::report::{Report, TokenSummary};

const RESOURCE: &str = "https://mcp.example.com/github/mcp";

fn registry() -> (Value, Value, Value) {
    (
        json!({"total_count": 2, "servers": [
            {"name": "docs", "mcp_url": "https://mcp.example.com/docs/mcp"},
            {"name": "github", "mcp_url": RESOURCE},
        ]}),
        json!({"group_mappings": [
            {"group": "devs", "scopes": ["github-read", "gone"]},
            {"group": "writers", "scopes": ["docs-all"]},
            {"group": "admins", "scopes": ["everything"]},
        ]}),
        json!({"scopes": [
            {"name": "github-read", "grants": [{"server": "github", "methods": ["tools/list"]}]},
            {"name": "docs-all", "grants": [{"server": "docs"}]},
            {"name": "everything", "grants": [{"server": "*"}]},
        ]}),
    )
}

fn groups(g: &[&str]) -> Vec<String> {
    g.iter().map(std::string::ToString::to_string).collect()
}

#[test]
fn groups_map_to_scopes_that_grant_the_server_or_not() {
    let (servers, mappings, scopes) = registry();
    let e = evaluate(
        &groups(&["devs", "strangers"]),
        RESOURCE,
        &servers,
        &mappings,
        &scopes,
    );
    assert_eq!(e.server.as_deref(), Some("github"));
    assert_eq!(
        e.scopes_by_group,
        BTreeMap::from([("devs".into(), vec!["github-read".into(), "gone".into()])])
    );
    assert_eq!(e.granting, ["github-read"]);
    assert_eq!(e.unknown_scopes, ["gone"]);

    let e = evaluate(
        &groups(&["writers"]),
        RESOURCE,
        &servers,
        &mappings,
        &scopes,
    );
    assert!(e.granting.is_empty(), "docs-all grants another server");
    let e = evaluate(&groups(&["admins"]), RESOURCE, &servers, &mappings, &scopes);
    assert_eq!(e.granting, ["everything"], "`*` grants every server");
    let e = evaluate(&groups(&["nobody"]), RESOURCE, &servers, &mappings, &scopes);
    assert!(e.scopes_by_group.is_empty());

    let e = evaluate(
        &groups(&["devs"]),
        "https://elsewhere/mcp",
        &servers,
        &mappings,
        &scopes,
    );
    assert_eq!(e.server, None);
    assert!(e.granting.is_empty());
}

/// A doctor in the token step with `groups` in the token, as `inspect_token` leaves it.
fn doctor(groups: &[&str], control_plane: Option<&str>) -> Doctor {
    let mut opts = Options::new(RESOURCE);
    opts.control_plane = control_plane.map(String::from);
    opts.admin_token = control_plane.map(|_| "admin-secret-value".to_string());
    let client = http::build_client(&opts).ok();
    let mut d = Doctor::new(opts, client);
    d.begin("token", "t");
    d.token = Some(TokenSummary {
        jwt: true,
        groups: groups
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        resource: Some(RESOURCE.into()),
        ..TokenSummary::default()
    });
    d
}

fn run(mut d: Doctor) -> Report {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(d.check_mappings());
    d.finish()
}

#[test]
fn without_a_control_plane_the_report_says_how_to_check() {
    let r = run(doctor(&["devs"], None));
    assert!(r.findings.is_empty());
    let m = r.summary.token.as_ref().unwrap().mapping.as_ref().unwrap();
    assert!(!m.checked);
    assert_eq!(m.not_checked.as_deref(), Some(HOW_TO_CHECK));
    assert!(r
        .to_text()
        .contains("group mappings: not checked (pass --control-plane URL"));
    assert_eq!(r.to_json()["summary"]["token"]["mapping"]["checked"], false);
}

#[test]
fn the_admin_token_never_goes_over_plain_http_off_loopback() {
    let r = run(doctor(&["devs"], Some("http://cp.example.com")));
    assert!(r.has(Code::MappingCheckFailed));
    assert!(r.steps[0].requests.is_empty(), "nothing sent");
    let r = run(doctor(&["devs"], Some("cp.example.com")));
    assert!(r.has(Code::MappingCheckFailed));
    assert!(r.steps[0].requests.is_empty());
}

#[test]
fn an_unreachable_control_plane_is_a_warning() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = run(doctor(
        &["devs"],
        Some(&format!("http://127.0.0.1:{port}/")),
    ));
    assert!(r.has(Code::MappingCheckFailed), "{:?}", r.findings);
    assert_eq!(r.summary.exit_code, 0);
    assert_eq!(
        r.steps[0].requests[0].url,
        format!("http://127.0.0.1:{port}/api/servers")
    );
    assert!(!r.to_text().contains("admin-secret-value"));
    assert!(!r.to_json().to_string().contains("admin-secret-value"));
}

fn reported(groups: &[&str], mappings: Value) -> Report {
    let (servers, _, scopes) = registry();
    let mut d = doctor(groups, None);
    let g: Vec<String> = groups
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    let e = evaluate(&g, RESOURCE, &servers, &mappings, &scopes);
    d.report_mappings(&g, RESOURCE, &mappings, &e);
    d.finish()
}

#[test]
fn unmapped_groups_and_scopes_without_a_grant_are_errors() {
    let (_, mappings, _) = registry();
    let r = reported(&["devs"], mappings.clone());
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert!(r.steps[0]
        .notes
        .iter()
        .any(|n| n.contains("scopes granting server `github`: github-read")));

    let r = reported(&["nobody"], mappings.clone());
    assert!(r.has(Code::TokenGroupsUnmapped));
    assert_eq!(r.summary.exit_code, 1);

    let r = reported(&["writers"], mappings.clone());
    assert!(r.has(Code::TokenNoServerAccess));
    assert!(r.findings[0].message.contains("docs-all"));

    let guid = "0b6a2f54-1c3e-4d7a-9f00-aa12bc34de56";
    let r = reported(&[guid], mappings);
    assert!(r.findings[0]
        .message
        .contains("map the ids, not the groups' display names"));
}
