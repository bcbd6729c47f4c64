use policy::audit::{MAX_FIELD_CHARS, MAX_LIST_ITEMS};
use policy::{IdSet, IdentityHeaders};
use serde_json::{json, Value};

use super::*;

fn policy() -> Policy {
    let snapshot = json!({
        "format": 1, "version": 42,
        "servers": [{"name": "everything", "path_prefix": "/srv", "resource": "https://gw.test/srv/mcp",
                     "resource_metadata": "https://gw.test/.well-known/oauth-protected-resource/srv/mcp"}],
        "scopes": [
            {"name": "mcp:echo", "grants": [{"server": "everything", "methods": ["tools/call"], "tools": ["echo"]}]},
            {"name": "mcp:other", "grants": []},
            {"name": "mcp:all", "grants": [{"server": "*", "methods": ["*"], "tools": ["*"]}]},
        ],
    });
    Policy::from_json(snapshot.to_string().as_bytes()).unwrap()
}

fn identity() -> Identity {
    let mut scopes = IdSet::empty(3);
    scopes.insert(0);
    scopes.insert(2);
    Identity {
        subject: "sub-alice".into(),
        username: "alice".into(),
        issuer: "https://idp.test".into(),
        client_id: Some("cli".into()),
        groups: vec!["devs".to_string(), "ops".to_string()].into_boxed_slice(),
        scopes,
        audience_servers: IdSet::full(1),
        expires_at: Some(2_000_000_000),
        headers: IdentityHeaders {
            user: "alice".into(),
            groups: "devs,ops".into(),
            scopes: "mcp:echo,mcp:all".into(),
        },
    }
}

fn to_json(event: &AuditEvent<'_>) -> Vec<u8> {
    serde_json::to_vec(event).unwrap()
}

fn to_value(event: &AuditEvent<'_>) -> Value {
    serde_json::from_slice(&to_json(event)).unwrap()
}

const FIELDS: [&str; 17] = [
    "time_ms",
    "request_id",
    "policy_version",
    "decision",
    "status",
    "reason",
    "sub",
    "username",
    "issuer",
    "client_id",
    "groups",
    "scopes",
    "server",
    "method",
    "tool",
    "http_method",
    "path",
];

#[test]
fn allowed_event_has_every_contract_field() {
    let policy = policy();
    let identity = identity();
    let facts = RequestFacts::new(Some("req-1"), Some("POST"), Some("/srv/mcp?session=abc#x"));
    let event = decision_event(
        1_700_000_000_123,
        &facts,
        Some(&policy),
        Some(&identity),
        Some(0),
        Outcome::allowed(Some("tools/call"), Some("echo")),
    );
    let v = to_value(&event);
    assert_eq!(
        v,
        json!({
            "time_ms": 1_700_000_000_123u64,
            "request_id": "req-1",
            "policy_version": 42,
            "decision": "allow",
            "status": 200,
            "reason": "allowed",
            "sub": "sub-alice",
            "username": "alice",
            "issuer": "https://idp.test",
            "client_id": "cli",
            "groups": ["devs", "ops"],
            "scopes": ["mcp:echo", "mcp:all"],
            "server": "everything",
            "method": "tools/call",
            "tool": "echo",
            "http_method": "POST",
            "path": "/srv/mcp",
        })
    );
}

#[test]
fn refusal_without_identity_or_policy_has_nulls_not_missing_fields() {
    let facts = RequestFacts::new(None, Some("GET"), Some("/srv/mcp"));
    let outcome = Outcome {
        status: 503,
        reason: "no_policy",
        method: None,
        tool: None,
    };
    let v = to_value(&decision_event(5, &facts, None, None, None, outcome));
    let object = v.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["status"], 503);
    assert_eq!(v["policy_version"], 0);
    for field in [
        "request_id",
        "sub",
        "username",
        "issuer",
        "client_id",
        "server",
        "method",
        "tool",
    ] {
        assert!(v[field].is_null(), "{field} should be null: {v}");
    }
    assert_eq!(v["groups"], json!([]));
    assert_eq!(v["scopes"], json!([]));
}

#[test]
fn denied_event_carries_the_reason_and_no_credential() {
    let policy = policy();
    let identity = identity();
    let facts = RequestFacts::new(Some("r"), Some("POST"), Some("/srv/mcp"));
    let outcome = Outcome {
        status: 403,
        reason: "tool_not_allowed",
        method: Some("tools/call"),
        tool: Some("get-sum"),
    };
    let json = to_json(&decision_event(
        1,
        &facts,
        Some(&policy),
        Some(&identity),
        Some(0),
        outcome,
    ));
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reason"], "tool_not_allowed");
    assert_eq!(v["tool"], "get-sum");
    // Nothing token-like: the event is built from the identity, which holds no credential.
    let text = String::from_utf8(json).unwrap();
    assert!(
        !text.to_ascii_lowercase().contains("bearer") && !text.contains("eyJ"),
        "{text}"
    );
}

fn event(n: u32) -> Vec<u8> {
    format!("{{\"n\":{n}}}").into_bytes()
}

fn events_of(body: &[u8]) -> (Vec<u64>, u64) {
    let v: Value = serde_json::from_slice(body).expect("batch is JSON");
    let ns = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["n"].as_u64().unwrap())
        .collect();
    (ns, v["dropped"].as_u64().unwrap())
}

#[test]
fn buffer_batches_oldest_first_and_keeps_events_until_acknowledged() {
    let mut buffer = AuditBuffer::new(10);
    assert!(buffer.batch(5, 1 << 20).is_none());
    for n in 0..7 {
        assert!(!buffer.push(event(n)));
    }
    let (body, mark) = buffer.batch(5, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![0, 1, 2, 3, 4], 0));
    assert_eq!(mark.events, 5);
    // Not acknowledged (the call failed): the same batch again.
    let (again, _) = buffer.batch(5, 1 << 20).unwrap();
    assert_eq!(again, body);
    assert_eq!(buffer.acknowledge(mark), 5);
    assert_eq!(buffer.len(), 2);
    let (body, _) = buffer.batch(5, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![5, 6], 0));
}

#[test]
fn full_buffer_drops_the_oldest_and_reports_it_once() {
    let mut buffer = AuditBuffer::new(3);
    for n in 0..3 {
        buffer.push(event(n));
    }
    let (_, in_flight) = buffer.batch(2, 1 << 20).unwrap();
    // While a batch of 0 and 1 is in flight, two more arrive: 0 and 1 are pushed out.
    assert!(buffer.push(event(3)));
    assert!(buffer.push(event(4)));
    assert_eq!(buffer.len(), 3);
    // Acknowledging the old batch must not remove 2, which it never contained.
    assert_eq!(buffer.acknowledge(in_flight), 0);
    let (body, mark) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![2, 3, 4], 2));
    buffer.acknowledge(mark);
    assert!(buffer.is_empty());
    buffer.push(event(5));
    let (body, _) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![5], 0), "drops are reported once");
}

#[test]
fn batch_respects_the_byte_limit_but_always_takes_one() {
    let mut buffer = AuditBuffer::new(10);
    for n in 0..5 {
        buffer.push(event(n));
    }
    let (body, mark) = buffer.batch(10, 60).unwrap();
    assert!(mark.events >= 1 && mark.events < 5, "{mark:?}");
    assert!(events_of(&body).0.len() == mark.events);
    let (_, mark) = buffer.batch(10, 1).unwrap();
    assert_eq!(mark.events, 1);
}

#[test]
fn discarded_batch_counts_as_dropped() {
    let mut buffer = AuditBuffer::new(10);
    for n in 0..4 {
        buffer.push(event(n));
    }
    let (_, mark) = buffer.batch(3, 1 << 20).unwrap();
    assert_eq!(buffer.discard(mark), 3);
    buffer.count_dropped(1);
    let (body, _) = buffer.batch(3, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![3], 4));
}

#[test]
fn event_fields_stay_within_what_the_control_plane_stores() {
    let policy = policy();
    let mut identity = identity();
    identity.groups = (0..300).map(|i| format!("g{i}")).collect();
    identity.username = "ali\u{7}ce".into();
    let long_path = format!("/srv/{}", "p".repeat(5000));
    let facts = RequestFacts::new(Some("r"), Some("POST"), Some(&long_path));
    let outcome = Outcome {
        status: 403,
        reason: "tool_not_allowed",
        method: Some("tools/call"),
        tool: Some("evil\u{0}tool"),
    };
    let v = to_value(&decision_event(
        1,
        &facts,
        Some(&policy),
        Some(&identity),
        Some(0),
        outcome,
    ));
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), MAX_LIST_ITEMS);
    assert_eq!(groups[0], "g0");
    assert_eq!(
        groups[MAX_LIST_ITEMS - 1],
        format!("…[{} more]", 300 - (MAX_LIST_ITEMS - 1))
    );
    assert_eq!(v["username"], "ali\u{FFFD}ce");
    assert_eq!(v["tool"], "evil\u{FFFD}tool");
    assert_eq!(v["path"].as_str().unwrap().chars().count(), MAX_FIELD_CHARS);
}

#[test]
fn a_queue_item_is_split_into_its_events() {
    let item = b"{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\n";
    let events: Vec<&[u8]> = super::split_batch(item).collect();
    assert_eq!(events, [&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
    assert_eq!(super::split_batch(b"").count(), 0);
    // A single event without a newline (an older filter's item) is still one event.
    assert_eq!(super::split_batch(b"{\"x\":1}").count(), 1);
}
