use super::*;

#[test]
fn exit_codes() {
    let mut d = Doctor::new(Options::new("x"), None);
    d.begin("probe", "p");
    d.find(Code::ChallengeNoScope, "w");
    assert_eq!(d.finish().summary.exit_code, 0);

    let mut o = Options::new("x");
    o.strict = true;
    let mut d = Doctor::new(o, None);
    d.begin("probe", "p");
    d.find(Code::ChallengeNoScope, "w");
    assert_eq!(d.finish().summary.exit_code, 1);

    let mut d = Doctor::new(Options::new("x"), None);
    d.begin("probe", "p");
    d.find(Code::PrmNotFound, "e");
    let r = d.finish();
    assert_eq!(r.summary.exit_code, 1);
    assert_eq!(r.steps[0].status, StepStatus::Fail);

    let mut d = Doctor::new(Options::new("x"), None);
    d.begin("probe", "p");
    d.find(Code::Unreachable, "e");
    d.reachable = false;
    assert_eq!(d.finish().summary.exit_code, 2);
}

#[test]
fn invalid_urls_are_reported_without_a_request() {
    for bad in ["", "mcp.example.com/mcp", "ftp://h/x", "mailto:a@b"] {
        let r = diagnose_blocking(&Options::new(bad));
        assert!(r.has(Code::InvalidUrl), "{bad}: {:?}", r.findings);
        assert_eq!(r.summary.exit_code, 2);
    }
}

#[test]
fn options_debug_hides_the_tokens() {
    let mut o = Options::new("http://h/mcp");
    o.token = Some("user-token-value".into());
    o.admin_token = Some("admin-token-value".into());
    let d = format!("{o:?}");
    assert!(
        !d.contains("user-token-value") && !d.contains("admin-token-value"),
        "{d}"
    );
    assert!(d.contains("<hidden>"));
}
