use policy::snapshot::{GroupMappingSpec, ServerSpec, Snapshot, SnapshotDelta};

use super::etag;
use super::spec::SpecState;

fn server(name: &str) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        path_prefix: format!("/{name}"),
        resource: format!("https://gw/{name}/mcp"),
        resource_metadata: format!("https://gw/.well-known/oauth-protected-resource/{name}/mcp"),
        scopes_supported: Vec::new(),
    }
}

fn snapshot(version: u64, servers: &[&str]) -> Snapshot {
    let mut s: Snapshot = serde_json::from_str(r#"{"format": 1, "version": 0}"#).unwrap();
    s.version = version;
    s.servers = servers.iter().map(|n| server(n)).collect();
    s
}

#[test]
fn hash_ignores_the_version_and_order_and_changes_with_content() {
    let a = SpecState::of(&snapshot(3, &["a", "b"]));
    let b = SpecState::of(&snapshot(9, &["b", "a"]));
    let c = SpecState::of(&snapshot(3, &["a", "c"]));
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), c.hash());
    assert_eq!(a.hash().len(), 64);
}

#[test]
fn a_change_entry_by_entry_hashes_as_the_whole_it_leads_to() {
    let mut state = SpecState::of(&snapshot(1, &["a", "b"]));
    let mut delta = SnapshotDelta::default();
    state.set_server("b", None, &mut delta);
    state.set_server("c", Some(server("c")), &mut delta);
    // Setting what is already there changes nothing and is not in the delta.
    state.set_server("a", Some(server("a")), &mut delta);
    state.set_group_mapping(
        "eng",
        Some(GroupMappingSpec {
            group: "eng".into(),
            scopes: vec![],
        }),
        &mut delta,
    );
    let whole = SpecState::of(&Snapshot {
        group_mappings: vec![GroupMappingSpec {
            group: "eng".into(),
            scopes: vec![],
        }],
        ..snapshot(2, &["c", "a"])
    });
    assert_eq!(state.hash(), whole.hash());
    assert_eq!(delta.removed_servers, vec!["b".to_string()]);
    assert_eq!(
        delta.servers.iter().map(|s| &s.name).collect::<Vec<_>>(),
        vec!["c"]
    );
    assert_eq!(delta.group_mappings.len(), 1);
    // The same delta, found by comparing the two states.
    let before = SpecState::of(&snapshot(1, &["a", "b"]));
    let compared = whole.delta_from(&before);
    assert_eq!(compared.servers, delta.servers);
    assert_eq!(compared.removed_servers, delta.removed_servers);
    assert_eq!(compared.group_mappings, delta.group_mappings);
}

#[test]
fn the_whole_snapshot_is_written_as_the_policy_crate_reads_it() {
    let state = SpecState::of(&snapshot(0, &["b", "a"]));
    let bytes = state.to_json(42).unwrap();
    let read: Snapshot = serde_json::from_slice(&bytes).unwrap();
    // Sorted by key, every field written.
    assert_eq!(read, snapshot(42, &["a", "b"]));
    let policy = policy::Policy::from_json(&bytes).unwrap();
    assert_eq!((policy.version, policy.server_count()), (42, 2));
}

#[test]
fn etag_is_quoted_version_and_hash_prefix() {
    assert_eq!(etag(7, "0123456789abcdef0123"), "\"7-0123456789abcdef\"");
}
