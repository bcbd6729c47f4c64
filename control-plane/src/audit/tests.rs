use serde_json::json;

use super::{AuditBatch, AuditEvent, Decision, InvalidEvent};

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
    assert_eq!(e.validate(0), Ok(()));
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
            e.validate(3),
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
