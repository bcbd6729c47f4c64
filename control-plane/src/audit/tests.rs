use serde_json::json;

use std::time::Duration;

use super::{
    time_problem, validate, AuditBatch, AuditEvent, Decision, InvalidEvent, MAX_FUTURE_SKEW,
};

fn event() -> serde_json::Value {
    json!({
        "time_ms": 1_700_000_000_000u64, "request_id": "r-1", "policy_version": 4,
        "decision": "deny", "status": 403, "reason": "tool_not_allowed",
        "sub": "u-1", "username": "alice", "issuer": "https://idp", "client_id": "cli",
        "groups": ["eng"], "scopes": ["read"], "server": "everything",
        "method": "tools/call", "tool": "echo", "http_method": "POST", "path": "/everything/mcp"
    })
}

#[test]
fn a_filter_event_parses_and_validates() {
    let e: AuditEvent = serde_json::from_value(event()).expect("parses");
    assert_eq!(e.decision, Decision::Deny);
    assert_eq!(validate(&e, 0), Ok(()));
}

#[test]
fn fields_a_newer_filter_adds_are_ignored() {
    let mut v = event();
    v["new_field"] = json!(1);
    assert!(serde_json::from_value::<AuditEvent>(v).is_ok());
}

#[test]
fn bad_events_name_the_field() {
    let cases: [(&str, serde_json::Value, &str); 5] = [
        (
            "reason",
            json!("Not A Code"),
            "expected a lowercase reason code",
        ),
        ("status", json!(42), "expected an HTTP status (100-599)"),
        ("sub", json!("a\nb"), "contains control characters"),
        ("tool", json!("x".repeat(5000)), "too long"),
        ("groups", json!(vec!["g"; 300]), "too many items"),
    ];
    for (field, value, problem) in cases {
        let mut v = event();
        v[field] = value;
        let e: AuditEvent = serde_json::from_value(v).expect("parses");
        assert_eq!(
            validate(&e, 3),
            Err(InvalidEvent {
                index: 3,
                field,
                problem
            }),
            "{field}"
        );
    }
}

#[test]
fn wrong_types_and_decisions_do_not_parse() {
    for (field, value) in [
        ("decision", json!("maybe")),
        ("time_ms", json!("now")),
        ("status", json!(-1)),
    ] {
        let mut v = event();
        v[field] = value;
        assert!(serde_json::from_value::<AuditEvent>(v).is_err(), "{field}");
    }
    let batch = json!({"events": [], "extra": 1});
    assert!(serde_json::from_value::<AuditBatch>(batch).is_err());
}

#[test]
fn time_window_is_retention_back_and_five_minutes_ahead() {
    let now = 1_800_000_000_000u64;
    let day = Duration::from_secs(86_400);
    let skew = MAX_FUTURE_SKEW.as_millis() as u64;
    assert_eq!(skew, 300_000);
    for ok in [now, now + skew, now - 1, now - 86_400_000] {
        assert_eq!(time_problem(ok, now, day), None, "{ok}");
    }
    assert_eq!(
        time_problem(now + skew + 1, now, day),
        Some("more than 5 minutes ahead of the control plane's clock")
    );
    assert_eq!(
        time_problem(u64::MAX, now, day),
        Some("more than 5 minutes ahead of the control plane's clock")
    );
    assert_eq!(
        time_problem(now - 86_400_001, now, day),
        Some("older than the audit retention period")
    );
    assert!(time_problem(0, now, day).is_some());
    // A retention longer than the epoch, or a clock at 0, still decides.
    assert_eq!(time_problem(0, now, Duration::MAX), None);
    assert_eq!(time_problem(0, 0, day), None);
}
