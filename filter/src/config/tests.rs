use serde_json::json;

use super::*;

fn snapshot() -> serde_json::Value {
    json!({"format": 1, "version": 7})
}

fn parse_json(v: serde_json::Value) -> Result<Role, ConfigError> {
    parse(Some(v.to_string().as_bytes()))
}

fn refused(v: serde_json::Value) -> String {
    match parse_json(v) {
        Ok(role) => panic!("accepted: {role:?}"),
        Err(e) => e.to_string(),
    }
}

fn sync(v: serde_json::Value) -> Result<SyncConfig, String> {
    match parse_json(json!({ "sync": v })) {
        Ok(Role::Singleton(c)) => Ok(c),
        Ok(other) => panic!("not a singleton: {other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn static_snapshot_compiles_and_audit_is_off_by_default() {
    match parse_json(json!({ "snapshot": snapshot() })).unwrap() {
        Role::Static { policy, audit, .. } => {
            assert_eq!(policy.version, 7);
            assert!(!audit);
        }
        other => panic!("{other:?}"),
    }
    match parse_json(json!({ "snapshot": snapshot(), "audit": true })).unwrap() {
        Role::Static { audit, .. } => assert!(audit),
        other => panic!("{other:?}"),
    }
}

#[test]
fn static_snapshot_errors_name_the_field() {
    let e = refused(json!({"snapshot": {"format": 1, "version": 1, "bogus": 1}}));
    assert!(e.starts_with("snapshot: ") && e.contains("bogus"), "{e}");
}

#[test]
fn shared_snapshot_audits_by_default() {
    match parse_json(json!({"shared_snapshot": true})).unwrap() {
        Role::Shared { audit, .. } => assert!(audit),
        other => panic!("{other:?}"),
    }
    match parse_json(json!({"shared_snapshot": true, "audit": false})).unwrap() {
        Role::Shared { audit, .. } => assert!(!audit),
        other => panic!("{other:?}"),
    }
    let e = refused(json!({"shared_snapshot": false}));
    assert!(e.contains("shared_snapshot must be true"), "{e}");
}

#[test]
fn singleton_defaults() {
    let c = sync(json!({"cluster": "cp", "token": "s3cret"})).unwrap();
    assert_eq!(c.cluster, "cp");
    assert_eq!(c.authority, "cp");
    assert_eq!(c.token, "s3cret");
    assert_eq!(c.poll_seconds, 30);
    // 60 s at 2,000 decisions/s fits, in events and in bytes (a typical event ~0.5 KiB).
    assert_eq!(c.audit_buffer_events, 150_000);
    assert_eq!(c.audit_buffer_bytes, 96 << 20);
    assert!(c.audit_buffer_events >= 120_000 && c.audit_buffer_bytes >= 120_000 * 600);
    assert_eq!(c.audit_batch_events, 2_000);
}

#[test]
fn audit_buffer_bytes_is_bounded() {
    let c = sync(json!({"cluster": "cp", "token": "t", "audit_buffer_bytes": 2_000_000})).unwrap();
    assert_eq!(c.audit_buffer_bytes, 2_000_000);
    for bad in [0usize, 1000, (1 << 30) + 1] {
        let e =
            sync(json!({"cluster": "cp", "token": "t", "audit_buffer_bytes": bad})).unwrap_err();
        assert!(e.starts_with("sync.audit_buffer_bytes"), "{e}");
    }
}

#[test]
fn access_log_is_on_with_audit_and_can_be_turned_off() {
    match parse_json(json!({"shared_snapshot": true})).unwrap() {
        Role::Shared { access_log, .. } => assert!(access_log),
        other => panic!("{other:?}"),
    }
    match parse_json(json!({"shared_snapshot": true, "access_log": false})).unwrap() {
        Role::Shared { access_log, .. } => assert!(!access_log),
        other => panic!("{other:?}"),
    }
}

#[test]
fn singleton_takes_every_field() {
    let c = sync(json!({
        "cluster": "cp", "authority": "cp.internal:8080", "token": "t", "poll_seconds": 5,
        "audit_buffer_events": 100, "audit_batch_events": 10,
    }))
    .unwrap();
    assert_eq!(c.authority, "cp.internal:8080");
    assert_eq!(c.poll_seconds, 5);
    assert_eq!(c.audit_buffer_events, 100);
    assert_eq!(c.audit_batch_events, 10);
    // A batch larger than the buffer is clamped to it.
    let c = sync(json!({"cluster": "cp", "token": "t", "audit_buffer_events": 3})).unwrap();
    assert_eq!(c.audit_batch_events, 3);
}

#[test]
fn singleton_missing_or_bad_fields_are_refused() {
    let e = sync(json!({"token": "t"})).unwrap_err();
    assert!(e.starts_with("sync.cluster: required"), "{e}");
    let e = sync(json!({"cluster": " ", "token": "t"})).unwrap_err();
    assert!(e.starts_with("sync.cluster"), "{e}");
    let e = sync(json!({"cluster": "cp"})).unwrap_err();
    assert!(e.starts_with("sync.token: required"), "{e}");
    for poll in [0, 61] {
        let e = sync(json!({"cluster": "cp", "token": "t", "poll_seconds": poll})).unwrap_err();
        assert!(e.starts_with("sync.poll_seconds"), "{e}");
    }
    let e = sync(json!({"cluster": "cp", "token": "t", "audit_buffer_events": 0})).unwrap_err();
    assert!(e.starts_with("sync.audit_buffer_events"), "{e}");
    let e = sync(json!({"cluster": "cp", "token": "t", "audit_batch_events": 0})).unwrap_err();
    assert!(e.starts_with("sync.audit_batch_events"), "{e}");
    let e = sync(json!({"cluster": "cp", "token": "t", "authority": ""})).unwrap_err();
    assert!(e.starts_with("sync.authority"), "{e}");
}

#[test]
fn a_bad_token_is_refused_without_echoing_it() {
    let e = sync(json!({"cluster": "cp", "token": "top secret\r\nx: y"})).unwrap_err();
    assert!(e.starts_with("sync.token"), "{e}");
    assert!(!e.contains("secret"), "{e}");
    // The Debug form (used in panics and logs) hides it too.
    let c = sync(json!({"cluster": "cp", "token": "hunter2"})).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn unknown_fields_are_refused_at_both_levels() {
    let e = refused(json!({"snapshot": snapshot(), "unexpected_option": true}));
    assert!(e.contains("unexpected_option"), "{e}");
    let e = refused(json!({"shared_snapshot": true, "poll": 1}));
    assert!(e.contains("`poll`"), "{e}");
    let e = sync(json!({"cluster": "cp", "token": "t", "interval": 3})).unwrap_err();
    assert!(e.contains("interval"), "{e}");
}

#[test]
fn two_roles_at_once_are_refused() {
    let sync_section = json!({"cluster": "cp", "token": "t"});
    for config in [
        json!({"snapshot": snapshot(), "shared_snapshot": true}),
        json!({"snapshot": snapshot(), "sync": sync_section}),
        json!({"shared_snapshot": true, "sync": sync_section}),
    ] {
        let e = refused(config);
        assert!(e.contains("different roles"), "{e}");
    }
    let e = refused(json!({"sync": sync_section, "audit": true}));
    assert!(
        e.contains("\"audit\", \"access_log\" and \"hold\" belong to the HTTP filter"),
        "{e}"
    );
}

#[test]
fn empty_and_non_json_configurations_are_refused() {
    assert!(matches!(parse(None), Err(ConfigError::Missing)));
    assert!(matches!(parse(Some(b"")), Err(ConfigError::Missing)));
    assert!(refused(json!({})).contains("empty configuration"));
    assert!(refused(json!({"audit": true})).contains("\"audit\" alone"));
    let e = parse(Some(b"this is not json")).unwrap_err().to_string();
    assert!(e.starts_with("plugin configuration: expected"), "{e}");
}

#[test]
fn hold_defaults_to_the_whole_request_and_may_be_the_body_only() {
    match parse_json(json!({"shared_snapshot": true})).unwrap() {
        Role::Shared { hold, .. } => assert_eq!(hold, Hold::Request),
        other => panic!("{other:?}"),
    }
    match parse_json(json!({"shared_snapshot": true, "hold": "body"})).unwrap() {
        Role::Shared { hold, .. } => assert_eq!(hold, Hold::Body),
        other => panic!("{other:?}"),
    }
    match parse_json(json!({"snapshot": snapshot(), "hold": "request"})).unwrap() {
        Role::Static { hold, .. } => assert_eq!(hold, Hold::Request),
        other => panic!("{other:?}"),
    }
    let e = refused(json!({"shared_snapshot": true, "hold": "headers"}));
    assert!(e.contains("unknown variant `headers`"), "{e}");
    assert!(
        refused(json!({"sync": {"cluster": "cp", "token": "t"}, "hold": "body"}))
            .contains("HTTP filter")
    );
}
