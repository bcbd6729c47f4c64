use std::borrow::Cow;

use serde_json::{json, Value};

use super::*;

fn full() -> AuditEvent<'static> {
    AuditEvent {
        time_ms: 1_700_000_000_123,
        request_id: Some("req-1".into()),
        policy_version: 42,
        decision: Decision::Allow,
        status: 200,
        reason: "allowed".into(),
        sub: Some("sub-alice".into()),
        username: Some("alice".into()),
        issuer: Some("https://idp.test".into()),
        client_id: Some("cli".into()),
        groups: vec!["devs".into(), "ops".into()],
        scopes: vec!["mcp:echo".into()],
        server: Some("everything".into()),
        method: Some("tools/call".into()),
        tool: Some("echo".into()),
        http_method: "POST".into(),
        path: "/srv/mcp".into(),
        event_id: Some("00000000000000ab-18bcfe56800-7".into()),
    }
}

fn empty() -> AuditEvent<'static> {
    AuditEvent {
        time_ms: 5,
        request_id: None,
        policy_version: 0,
        decision: Decision::Deny,
        status: 503,
        reason: "no_policy".into(),
        sub: None,
        username: None,
        issuer: None,
        client_id: None,
        groups: Vec::new(),
        scopes: Vec::new(),
        server: None,
        method: None,
        tool: None,
        http_method: "GET".into(),
        path: "/srv/mcp".into(),
        event_id: None,
    }
}

/// The wire contract, byte for byte: field names and their order, every one written.
#[test]
fn the_wire_json_is_the_contract() {
    assert_eq!(
        serde_json::to_string(&full()).unwrap(),
        concat!(
            r#"{"time_ms":1700000000123,"request_id":"req-1","policy_version":42,"#,
            r#""decision":"allow","status":200,"reason":"allowed","sub":"sub-alice","#,
            r#""username":"alice","issuer":"https://idp.test","client_id":"cli","#,
            r#""groups":["devs","ops"],"scopes":["mcp:echo"],"server":"everything","#,
            r#""method":"tools/call","tool":"echo","http_method":"POST","path":"/srv/mcp","#,
            r#""event_id":"00000000000000ab-18bcfe56800-7"}"#,
        )
    );
    // Unknown values are nulls and empty lists, never missing keys.
    assert_eq!(
        serde_json::to_value(empty()).unwrap(),
        json!({
            "time_ms": 5, "request_id": null, "policy_version": 0, "decision": "deny",
            "status": 503, "reason": "no_policy", "sub": null, "username": null,
            "issuer": null, "client_id": null, "groups": [], "scopes": [], "server": null,
            "method": null, "tool": null, "http_method": "GET", "path": "/srv/mcp",
            "event_id": null,
        })
    );
}

#[test]
fn borrowed_and_owned_events_write_the_same_json() {
    let path = String::from("/srv/mcp");
    let mut borrowed = full();
    borrowed.path = Cow::Borrowed(&path);
    assert_eq!(
        serde_json::to_vec(&borrowed).unwrap(),
        serde_json::to_vec(&full()).unwrap()
    );
}

#[test]
fn events_read_back_owned() {
    for event in [full(), empty()] {
        let bytes = serde_json::to_vec(&event).unwrap();
        let back: AuditEvent<'static> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, event);
        // Read from a value (no input buffer to borrow from) as well.
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::from_value::<AuditEvent>(value).unwrap(), event);
    }
}

#[test]
fn missing_optional_fields_read_as_null_and_new_fields_are_ignored() {
    let v = json!({
        "time_ms": 5, "policy_version": 0, "decision": "deny", "status": 503,
        "reason": "no_policy", "http_method": "GET", "path": "/srv/mcp", "new_field": 1,
    });
    assert_eq!(serde_json::from_value::<AuditEvent>(v).unwrap(), empty());
    for required in [
        "time_ms",
        "policy_version",
        "decision",
        "status",
        "reason",
        "http_method",
        "path",
    ] {
        let mut v = serde_json::to_value(empty()).unwrap();
        v.as_object_mut().unwrap().remove(required);
        assert!(
            serde_json::from_value::<AuditEvent>(v).is_err(),
            "{required}"
        );
    }
}

#[test]
fn decisions_are_lowercase_words() {
    for d in [Decision::Allow, Decision::Deny] {
        assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        assert_eq!(Decision::parse(d.as_str()), Some(d));
    }
    assert_eq!(Decision::parse("Allow"), None);
    assert!(serde_json::from_value::<Decision>(json!("maybe")).is_err());
}

#[test]
fn ordinary_text_is_borrowed_as_is() {
    assert!(matches!(
        storable("tools/call"),
        Cow::Borrowed("tools/call")
    ));
    let long_ascii = "a".repeat(MAX_FIELD_CHARS);
    assert!(matches!(storable(&long_ascii), Cow::Borrowed(_)));
    // Multi-byte text over the byte bound but within the char bound stays whole.
    let accents = "é".repeat(MAX_FIELD_CHARS);
    assert_eq!(storable(&accents), accents.as_str());
}

#[test]
fn hostile_text_is_made_storable_visibly() {
    let cleaned = storable("get-sum\u{0}\r\nx");
    assert_eq!(cleaned, "get-sum\u{FFFD}\u{FFFD}\u{FFFD}x");
    let long = format!("/srv/mcp/{}", "x".repeat(10_000));
    let cut = storable(&long);
    assert_eq!(cut.chars().count(), MAX_FIELD_CHARS);
    assert!(
        cut.starts_with("/srv/mcp/xxx") && cut.ends_with("…[truncated]"),
        "{cut}"
    );
}

/// What the filter makes storable, the control plane stores: the two ends agree.
#[test]
fn storable_text_has_no_problem() {
    let long = "é".repeat(MAX_FIELD_CHARS + 1);
    let controls = "\u{0}\u{7f}\u{85}\t\n".repeat(1000);
    let texts = ["", "ok", "a\u{0}b", long.as_str(), controls.as_str()];
    for text in texts {
        assert_eq!(text_problem(&storable(text)), None, "{text:?}");
    }
    assert_eq!(text_problem(&long), Some("too long"));
    assert_eq!(text_problem("a\nb"), Some("contains control characters"));
    assert_eq!(text_problem(&"x".repeat(MAX_FIELD_CHARS)), None);
}

#[test]
fn long_lists_are_cut_with_a_count() {
    let items: Vec<String> = (0..300).map(|i| format!("g{i}")).collect();
    let list = storable_list(items.iter().map(String::as_str));
    assert_eq!(list.len(), MAX_LIST_ITEMS);
    assert_eq!(list[0], "g0");
    assert_eq!(list[MAX_LIST_ITEMS - 1], "…[45 more]");
    let short = storable_list(["a", "b\u{0}"].into_iter());
    assert_eq!(short, ["a", "b\u{FFFD}"]);
}

#[test]
fn event_ids_are_unique_per_vm_start_and_sequence_and_storable() {
    let a = event_id(0xab, 1_700_000_000_000, 7);
    assert_eq!(a, "00000000000000ab-18bcfe56800-7");
    assert_eq!(id_problem(&a), None);
    let ids: std::collections::HashSet<String> = [
        event_id(0xab, 1, 1),
        event_id(0xab, 1, 2),
        event_id(0xab, 2, 1),
        event_id(0xac, 1, 1),
        event_id(u64::MAX, u64::MAX, u64::MAX),
    ]
    .into_iter()
    .collect();
    assert_eq!(ids.len(), 5);
    // The longest id fits comfortably.
    assert!(event_id(u64::MAX, u64::MAX, u64::MAX).len() <= MAX_ID_CHARS);
}

#[test]
fn ids_outside_the_alphabet_or_too_long_are_refused() {
    for bad in ["", "a b", "a/b", "é", "x\n", &"a".repeat(MAX_ID_CHARS + 1)] {
        assert!(id_problem(bad).is_some(), "{bad:?}");
    }
    for good in ["a", "A.b_c:d-9", &"a".repeat(MAX_ID_CHARS)] {
        assert_eq!(id_problem(good), None, "{good:?}");
    }
}

#[test]
fn gap_records_have_a_fixed_wire_shape() {
    let gap = AuditGap {
        id: "00000000000000ab-1-g0".into(),
        reason: GapReason::BufferFull,
        from_ms: 10,
        to_ms: 20,
        lost: 3,
    };
    assert_eq!(
        serde_json::to_string(&gap).unwrap(),
        r#"{"id":"00000000000000ab-1-g0","reason":"buffer_full","from_ms":10,"to_ms":20,"lost":3}"#
    );
    let back: AuditGap<'static> =
        serde_json::from_str(&serde_json::to_string(&gap).unwrap()).unwrap();
    assert_eq!(back, gap);
    for reason in GapReason::ALL {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        assert_eq!(GapReason::parse(reason.as_str()), Some(reason));
    }
    assert!(serde_json::from_value::<GapReason>(json!("other")).is_err());
}
