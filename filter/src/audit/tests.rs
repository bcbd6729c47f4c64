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
        token_scopes: Box::default(),
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

const FIELDS: [&str; 18] = [
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
    "event_id",
];

#[test]
fn allowed_event_has_every_contract_field() {
    let policy = policy();
    let identity = identity();
    let facts = RequestFacts::new(Some("req-1"), Some("POST"), Some("/srv/mcp?session=abc#x"));
    let event = decision_event(
        "id-1".into(),
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
            "event_id": "id-1",
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
    let v = to_value(&decision_event(
        "id-5".into(),
        5,
        &facts,
        None,
        None,
        None,
        outcome,
    ));
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
        "id-1".into(),
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

fn buffer(max_events: usize) -> AuditBuffer {
    AuditBuffer::new(max_events, 1 << 30, IdSource::new(0xab, 1))
}

/// Pushes event `n` decided at time `n`.
fn push(buffer: &mut AuditBuffer, n: u32) -> u64 {
    buffer.push(u64::from(n), &event(n))
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

fn gaps_of(body: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(body).expect("batch is JSON");
    v.get("gaps")
        .map(|g| g.as_array().unwrap().clone())
        .unwrap_or_default()
}

#[test]
fn buffer_batches_oldest_first_and_keeps_events_until_acknowledged() {
    let mut buffer = buffer(10);
    assert!(buffer.batch(5, 1 << 20).is_none());
    for n in 0..7 {
        assert_eq!(push(&mut buffer, n), 0);
    }
    let (body, mark) = buffer.batch(5, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![0, 1, 2, 3, 4], 0));
    assert!(gaps_of(&body).is_empty(), "no gaps key without a gap");
    assert!(!String::from_utf8_lossy(&body).contains("gaps"));
    assert_eq!(mark.events, 5);
    // Not acknowledged (the call failed): the same batch again.
    let (again, _) = buffer.batch(5, 1 << 20).unwrap();
    assert_eq!(again, body);
    assert_eq!(buffer.acknowledge(&mark), 5);
    assert_eq!(buffer.len(), 2);
    let (body, _) = buffer.batch(5, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![5, 6], 0));
}

#[test]
fn full_buffer_drops_the_oldest_and_reports_it_once() {
    let mut buffer = buffer(3);
    for n in 0..3 {
        push(&mut buffer, n);
    }
    let (_, in_flight) = buffer.batch(2, 1 << 20).unwrap();
    // While a batch of 0 and 1 is in flight, two more arrive: 0 and 1 are pushed out.
    assert_eq!(push(&mut buffer, 3), 1);
    assert_eq!(push(&mut buffer, 4), 1);
    assert_eq!(buffer.len(), 3);
    // Acknowledging the old batch must not remove 2, which it never contained.
    assert_eq!(buffer.acknowledge(&in_flight), 0);
    let (body, mark) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![2, 3, 4], 2));
    buffer.acknowledge(&mark);
    assert!(buffer.is_empty());
    assert!(
        !buffer.has_work(),
        "the gap was acknowledged with its final count"
    );
    push(&mut buffer, 5);
    let (body, _) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![5], 0), "drops are reported once");
    assert!(gaps_of(&body).is_empty());
}

#[test]
fn a_run_of_losses_is_one_gap_record_with_its_exact_count_and_span() {
    let mut buffer = buffer(4);
    for n in 0..10 {
        push(&mut buffer, n);
    }
    // 0..=5 were pushed out by 6..=9.
    let (body, mark) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![6, 7, 8, 9], 6));
    let gaps = gaps_of(&body);
    assert_eq!(
        gaps,
        [
            json!({"id": policy::audit::event_id(0xab, 1, 0), "reason": "buffer_full",
                "from_ms": 0, "to_ms": 5, "lost": 6})
        ]
    );
    // The answer is lost: the same gap, same id, goes again (the control plane keeps one).
    let (again, _) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(gaps_of(&again), gaps);
    // More are lost before the answer comes: the gap grows under the same id and stays open
    // after the acknowledgement of the smaller count.
    for n in 10..12 {
        push(&mut buffer, n);
    }
    buffer.acknowledge(&mark);
    let (body, mark) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![10, 11], 2));
    assert_eq!(
        gaps_of(&body),
        [
            json!({"id": policy::audit::event_id(0xab, 1, 0), "reason": "buffer_full",
                "from_ms": 0, "to_ms": 7, "lost": 8})
        ]
    );
    buffer.acknowledge(&mark);
    assert!(!buffer.has_work());
    // A later run is a new gap with a new id.
    for n in 20..25 {
        push(&mut buffer, n);
    }
    let (body, _) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(
        gaps_of(&body),
        [
            json!({"id": policy::audit::event_id(0xab, 1, 1), "reason": "buffer_full",
                "from_ms": 20, "to_ms": 20, "lost": 1})
        ]
    );
}

#[test]
fn the_byte_bound_counts_overhead_and_drops_the_oldest() {
    let one = event(1).len() + EVENT_OVERHEAD_BYTES;
    let mut buffer = AuditBuffer::new(1000, 3 * one, IdSource::new(1, 1));
    for n in 1..=3 {
        assert_eq!(push(&mut buffer, n), 0);
    }
    assert_eq!(buffer.bytes(), 3 * one);
    assert_eq!(push(&mut buffer, 4), 1);
    assert_eq!(buffer.len(), 3);
    assert_eq!(buffer.bytes(), 3 * one);
    // An event larger than the whole bound is lost itself, and counted.
    let huge = vec![b'x'; 4 * one];
    assert_eq!(buffer.push(9, &huge), 1);
    assert_eq!(buffer.len(), 3);
    let (body, mark) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(gaps_of(&body)[0]["lost"], 2);
    buffer.acknowledge(&mark);
    assert_eq!(buffer.bytes(), 0);
}

#[test]
fn batch_respects_the_byte_limit_but_always_takes_one() {
    let mut buffer = buffer(10);
    for n in 0..5 {
        push(&mut buffer, n);
    }
    let (body, mark) = buffer.batch(10, 60).unwrap();
    assert!(mark.events >= 1 && mark.events < 5, "{mark:?}");
    assert!(events_of(&body).0.len() == mark.events);
    let (_, mark) = buffer.batch(10, 1).unwrap();
    assert_eq!(mark.events, 1);
}

#[test]
fn discarded_batch_counts_as_dropped_and_is_a_refused_gap() {
    let mut buffer = buffer(10);
    for n in 0..4 {
        push(&mut buffer, n);
    }
    let (_, mark) = buffer.batch(3, 1 << 20).unwrap();
    assert_eq!(buffer.discard(&mark), 3);
    buffer.lose(GapReason::Malformed, 7, 7, 1);
    let (body, _) = buffer.batch(3, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![3], 4));
    let gaps = gaps_of(&body);
    assert_eq!(gaps.len(), 2);
    assert_eq!(gaps[0]["reason"], "refused");
    assert_eq!(
        (gaps[0]["from_ms"].as_u64(), gaps[0]["to_ms"].as_u64()),
        (Some(0), Some(2))
    );
    assert_eq!(gaps[0]["lost"], 3);
    assert_eq!(gaps[1]["reason"], "malformed");
    assert_eq!(gaps[1]["lost"], 1);
}

#[test]
fn a_gap_alone_is_work_to_send() {
    let mut buffer = buffer(10);
    buffer.lose(GapReason::Malformed, 1, 1, 1);
    assert!(buffer.is_empty() && buffer.has_work());
    let (body, mark) = buffer.batch(10, 1 << 20).unwrap();
    assert_eq!(events_of(&body), (vec![], 1));
    buffer.acknowledge(&mark);
    assert!(!buffer.has_work());
}

#[test]
fn ids_are_unique_within_a_vm_and_across_vms() {
    let a = IdSource::random(1_700_000_000_000);
    let b = IdSource::random(1_700_000_000_000);
    let ids: std::collections::HashSet<String> =
        (0..1000).flat_map(|_| [a.next(), b.next()]).collect();
    assert_eq!(ids.len(), 2000);
    for id in &ids {
        assert_eq!(policy::audit::id_problem(id), None, "{id}");
    }
    let fixed = IdSource::new(0xab, 1);
    assert_eq!(fixed.next(), "00000000000000ab-1-0");
    assert_eq!(fixed.next(), "00000000000000ab-1-1");
}

/// What a typical event costs: printed for docs/benchmarks.md (`-- --nocapture`).
#[test]
fn a_typical_event_is_about_half_a_kibibyte() {
    let policy = policy();
    let identity = identity();
    let facts = RequestFacts::new(
        Some("3f2b9c1e-8d4a-4c7b-9e21-5a6f0d1c2b3a"),
        Some("POST"),
        Some("/srv/mcp"),
    );
    let json = to_json(&decision_event(
        IdSource::random(1_700_000_000_000).next(),
        1_700_000_000_000,
        &facts,
        Some(&policy),
        Some(&identity),
        Some(0),
        Outcome::allowed(Some("tools/call"), Some("echo")),
    ));
    println!(
        "typical event: {} bytes of JSON, {} with buffer overhead",
        json.len(),
        json.len() + EVENT_OVERHEAD_BYTES
    );
    assert!(json.len() < 512, "{}", json.len());
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
        "id-1".into(),
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
