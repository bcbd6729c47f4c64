use serde_json::json;

use std::time::Duration;

use super::{
    time_problem, validate, validate_gap, AuditBatch, AuditEvent, AuditGap, Decision, GapReason,
    InvalidEvent, MAX_FUTURE_SKEW,
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
                list: "events",
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

#[test]
fn event_ids_are_optional_and_checked() {
    let old: AuditEvent = serde_json::from_value(event()).expect("an old filter's event");
    assert_eq!(old.event_id, None);
    assert_eq!(validate(&old, 0), Ok(()));
    let mut v = event();
    v["event_id"] = json!("00000000000000ab-18bcfe56800-7");
    let e: AuditEvent = serde_json::from_value(v).unwrap();
    assert_eq!(validate(&e, 0), Ok(()));
    for bad in ["", "a b", "a/b"] {
        let mut v = event();
        v["event_id"] = json!(bad);
        let e: AuditEvent = serde_json::from_value(v).unwrap();
        assert_eq!(validate(&e, 1).unwrap_err().field, "event_id", "{bad:?}");
    }
}

#[test]
fn gap_records_parse_and_bad_ones_are_named() {
    let batch: AuditBatch = serde_json::from_value(json!({
        "events": [], "dropped": 3,
        "gaps": [{"id": "ab-1-0", "reason": "buffer_full", "from_ms": 1, "to_ms": 2, "lost": 3}],
    }))
    .unwrap();
    assert_eq!(batch.gaps.len(), 1);
    assert_eq!(batch.gaps[0].reason, GapReason::BufferFull);
    assert_eq!(validate_gap(&batch.gaps[0], 0), Ok(()));
    let gap = |id: &str, from_ms, to_ms, lost| AuditGap {
        id: id.to_string().into(),
        reason: GapReason::Refused,
        from_ms,
        to_ms,
        lost,
    };
    assert_eq!(
        validate_gap(&gap("a b", 1, 2, 1), 0).unwrap_err().field,
        "id"
    );
    assert_eq!(
        validate_gap(&gap("a", 3, 2, 1), 0).unwrap_err().field,
        "to_ms"
    );
    let e = validate_gap(&gap("a", 1, 2, 0), 2).unwrap_err();
    assert_eq!(e.to_string(), "gaps[2].lost: expected at least 1");
    // Batches of older filters have no gaps.
    let old: AuditBatch = serde_json::from_value(json!({"events": [], "dropped": 0})).unwrap();
    assert!(old.gaps.is_empty());
}

#[test]
fn out_of_range_numbers_name_their_own_field() {
    for field in ["time_ms", "policy_version"] {
        let mut v = event();
        v[field] = json!(u64::MAX);
        let e: AuditEvent = serde_json::from_value(v).expect("parses");
        let refused = validate(&e, 2).unwrap_err();
        assert_eq!(
            (refused.list, refused.index, refused.field, refused.problem),
            ("events", 2, field, "out of range")
        );
    }
}

/// serde's derive also builds a struct from an array of its fields; a batch's events and gaps
/// must be objects, like every other body the API takes.
#[test]
fn events_and_gaps_given_as_arrays_are_refused() {
    let fields: Vec<serde_json::Value> = event().as_object().unwrap().values().cloned().collect();
    let batch = json!({"events": [fields]});
    let e = serde_json::from_value::<AuditBatch>(batch).unwrap_err();
    assert!(e.to_string().contains("a JSON object"), "{e}");
    let batch = json!({"events": [], "gaps": [["buffer_full", 1, 2, 3]]});
    assert!(serde_json::from_value::<AuditBatch>(batch).is_err());
    let batch = json!({"events": [event()]});
    assert_eq!(
        serde_json::from_value::<AuditBatch>(batch)
            .unwrap()
            .events
            .len(),
        1
    );
}
