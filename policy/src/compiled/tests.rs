//! Deltas: a policy that follows a chain of deltas must be the policy compiled from the
//! snapshot they lead to, in everything a decision reads; a bad delta changes nothing.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::snapshot::{
    ApiKeySpec, GrantSpec, GroupMappingSpec, ScopeSpec, ServerSpec, Snapshot, SnapshotDelta,
};
use crate::{Policy, SnapshotError};

/// Everything a decision can observe, by name (ids differ between a compiled policy and one
/// that followed deltas: vacant slots are reused).
fn observable(policy: &Policy) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    seen.insert("version".into(), policy.version.to_string());
    seen.insert("settings".into(), format!("{:?}", policy.settings));
    seen.insert(
        "issuers".into(),
        format!(
            "{:?}",
            policy.issuers.iter().map(|i| &i.issuer).collect::<Vec<_>>()
        ),
    );
    seen.insert("server_count".into(), policy.server_count().to_string());
    for server in policy.servers.iter().filter(|s| !s.is_vacant()) {
        let id = policy.server_by_name[server.name.as_str()];
        assert!(std::ptr::eq(&*policy.servers[id], &**server));
        assert_eq!(policy.server_by_prefix[server.path_prefix.as_str()], id);
        let mut grants: Vec<String> = policy
            .grants_on(id)
            .map(|g| {
                format!(
                    "{} {:?} {:?}",
                    policy.scope_names[g.scope], g.methods, g.tools
                )
            })
            .collect();
        grants.sort();
        seen.insert(
            format!("server {}", server.name),
            format!(
                "{} {} {} {} {grants:?}",
                server.path_prefix, server.resource, server.resource_metadata, server.challenge
            ),
        );
    }
    for (id, name) in policy.scope_names.iter().enumerate() {
        if name.is_empty() {
            assert!(policy.scope_groups[id].is_empty() && policy.scope_grants[id].is_empty());
            continue;
        }
        assert_eq!(policy.scope_ids[name], id);
        seen.insert(
            format!("scope {name}"),
            format!("{:?}", policy.scope_groups[id]),
        );
    }
    for (group, scopes) in &policy.group_scopes {
        let mut names: Vec<&str> = scopes.iter().map(|&s| &*policy.scope_names[s]).collect();
        names.sort();
        seen.insert(format!("group {group}"), format!("{names:?}"));
    }
    for key in policy.api_keys.iter() {
        let mut names: Vec<&str> = key.scopes.iter().map(|s| &*policy.scope_names[s]).collect();
        names.sort();
        seen.insert(format!("key {}", key.name), format!("{names:?}"));
    }
    seen
}

fn server(name: &str, prefix: &str) -> ServerSpec {
    ServerSpec {
        name: name.into(),
        path_prefix: prefix.into(),
        resource: format!("https://gw.test{prefix}/mcp"),
        resource_metadata: format!("https://gw.test/.well-known/oauth-protected-resource{prefix}"),
        scopes_supported: vec![],
    }
}

/// A random registry: servers, scopes granting on them (or `*`), groups mapped to scopes,
/// an API key. Names come from small pools so that changes hit existing entries.
fn random_snapshot(rng: &mut StdRng, version: u64) -> Snapshot {
    let mut servers: Vec<ServerSpec> = Vec::new();
    let mut prefixes = std::collections::HashSet::new();
    for i in 0..8 {
        if !rng.gen_bool(0.7) {
            continue;
        }
        // Prefixes move between servers and nest, to exercise the prefix index.
        let prefix = match rng.gen_range(0..3) {
            0 => format!("/p{i}"),
            1 => format!("/p{}/sub{i}", rng.gen_range(0..8)),
            _ => format!("/q{}", rng.gen_range(0..20)),
        };
        if prefixes.insert(prefix.clone()) {
            servers.push(server(&format!("s{i}"), &prefix));
        }
    }
    let mut scopes: Vec<ScopeSpec> = Vec::new();
    for i in 0..10 {
        if !rng.gen_bool(0.6) {
            continue;
        }
        let mut grants = Vec::new();
        for _ in 0..rng.gen_range(0..4) {
            let server = if rng.gen_bool(0.15) || servers.is_empty() {
                "*".to_string()
            } else {
                servers[rng.gen_range(0..servers.len())].name.clone()
            };
            grants.push(GrantSpec {
                server,
                methods: vec![["tools/call", "tools/*", "*"][rng.gen_range(0..3)].into()],
                tools: vec![format!("t{}*", rng.gen_range(0..3))],
            });
        }
        scopes.push(ScopeSpec {
            name: format!("scope{i}"),
            grants,
        });
    }
    let mut group_mappings = Vec::new();
    for g in 0..6 {
        if !rng.gen_bool(0.6) {
            continue;
        }
        let mut mapped = Vec::new();
        for scope in &scopes {
            if rng.gen_bool(0.3) {
                mapped.push(scope.name.clone());
            }
        }
        group_mappings.push(GroupMappingSpec {
            group: format!("g{g}"),
            scopes: mapped,
        });
    }
    let api_keys = if rng.gen_bool(0.5) {
        vec![ApiKeySpec {
            name: "ci".into(),
            sha256: "ab".repeat(32),
            subject: "ci-bot".into(),
            groups: vec![format!("g{}", rng.gen_range(0..6))],
            scopes: scopes.first().map(|s| s.name.clone()).into_iter().collect(),
            expires_at: None,
        }]
    } else {
        vec![]
    };
    Snapshot {
        format: 1,
        version,
        issuers: vec![],
        servers,
        group_mappings,
        scopes,
        api_keys,
        settings: Default::default(),
    }
}

#[test]
fn a_chain_of_deltas_gives_the_policy_of_the_last_snapshot() {
    for seed in 0..40 {
        let mut rng = StdRng::seed_from_u64(seed);
        let first = random_snapshot(&mut rng, 1);
        let mut previous = first.clone();
        let mut followed = Policy::compile(first).expect("random snapshots are valid");
        for version in 2..30 {
            let next = random_snapshot(&mut rng, version);
            let delta = delta_between(&previous, &next);
            followed = followed
                .apply(&delta)
                .unwrap_or_else(|e| panic!("seed {seed} v{version}: {e}\n{delta:#?}"));
            let compiled = Policy::compile(next.clone()).unwrap();
            assert_eq!(
                observable(&followed),
                observable(&compiled),
                "seed {seed} version {version}"
            );
            // Decisions route the same way too.
            for path in ["/p1", "/p1/sub3/x", "/p3/sub3", "/q7/mcp", "/nothing", "/"] {
                let name = |p: &Policy| match p.route(path) {
                    Ok(crate::Route::Server(id)) => p.servers[id].name.clone(),
                    other => format!("{other:?}"),
                };
                assert_eq!(name(&followed), name(&compiled), "{path}");
            }
            // Vacant slots are reused: ids never outgrow the largest registry seen.
            assert!(followed.servers.len() <= 8 && followed.scope_names.len() <= 10);
            previous = next;
        }
    }
}

fn base() -> Snapshot {
    Snapshot {
        format: 1,
        version: 1,
        issuers: vec![],
        servers: vec![server("a", "/a"), server("b", "/b")],
        group_mappings: vec![GroupMappingSpec {
            group: "eng".into(),
            scopes: vec!["read".into()],
        }],
        scopes: vec![ScopeSpec {
            name: "read".into(),
            grants: vec![GrantSpec {
                server: "a".into(),
                methods: vec!["tools/*".into()],
                tools: vec!["*".into()],
            }],
        }],
        api_keys: vec![],
        settings: Default::default(),
    }
}

fn refused(delta: SnapshotDelta) -> SnapshotError {
    let policy = Policy::compile(base()).unwrap();
    let before = observable(&policy);
    let error = policy
        .apply(&SnapshotDelta {
            format: 1,
            version: 2,
            ..delta
        })
        .expect_err("refused");
    assert_eq!(
        observable(&policy),
        before,
        "a refused delta changes nothing"
    );
    error
}

#[test]
fn a_delta_that_does_not_fit_its_base_is_refused_with_the_field() {
    let cases: Vec<(SnapshotDelta, &str)> = vec![
        (
            SnapshotDelta {
                removed_servers: vec!["ghost".into()],
                ..Default::default()
            },
            "removed_servers[0]: \"ghost\" not in the snapshot this applies to",
        ),
        (
            SnapshotDelta {
                removed_servers: vec!["a".into()],
                ..Default::default()
            },
            "removed_servers[0]: \"a\" is still granted by scope \"read\"",
        ),
        (
            SnapshotDelta {
                removed_scopes: vec!["read".into()],
                ..Default::default()
            },
            "removed_scopes[0]: \"read\" is still mapped by group \"eng\"",
        ),
        (
            SnapshotDelta {
                servers: vec![server("a", "/a")],
                removed_servers: vec!["a".into()],
                ..Default::default()
            },
            "removed_servers[0]: \"a\" also listed as changed",
        ),
        (
            SnapshotDelta {
                servers: vec![server("c", "/b")],
                ..Default::default()
            },
            "servers[0].path_prefix: duplicate path prefix \"/b\"",
        ),
        (
            SnapshotDelta {
                removed_group_mappings: vec!["eng".into(), "eng".into()],
                ..Default::default()
            },
            "removed_group_mappings[1]: \"eng\" listed twice",
        ),
        (
            SnapshotDelta {
                group_mappings: vec![GroupMappingSpec {
                    group: "ops".into(),
                    scopes: vec!["write".into()],
                }],
                ..Default::default()
            },
            "group_mappings[0].scopes[0]: unknown scope \"write\"",
        ),
        (
            SnapshotDelta {
                format: 2,
                ..Default::default()
            },
            "format: unsupported format 2, expected 1",
        ),
    ];
    for (delta, expected) in cases {
        let format = delta.format;
        let error = if format == 2 {
            Policy::compile(base()).unwrap().apply(&delta).unwrap_err()
        } else {
            refused(delta)
        };
        assert!(
            error.to_string().starts_with(expected),
            "{error} (expected {expected})"
        );
    }
}

#[test]
fn removing_a_server_with_the_scopes_that_grant_on_it_in_one_delta_works() {
    let policy = Policy::compile(base()).unwrap();
    let next = policy
        .apply(&SnapshotDelta {
            format: 1,
            version: 2,
            removed_servers: vec!["a".into()],
            scopes: vec![ScopeSpec {
                name: "read".into(),
                grants: vec![],
            }],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(next.server_count(), 1);
    assert!(matches!(next.route("/a/mcp"), Ok(crate::Route::Unknown)));
    // Two servers swapping prefixes in one delta is not a duplicate.
    let swapped = policy
        .apply(&SnapshotDelta {
            format: 1,
            version: 3,
            servers: vec![server("a", "/b"), server("b", "/a")],
            ..Default::default()
        })
        .unwrap();
    let Ok(crate::Route::Server(id)) = swapped.route("/a/mcp") else {
        panic!("routed")
    };
    assert_eq!(swapped.servers[id].name, "b");
    // The base is untouched and shares what did not change.
    assert!(matches!(
        policy.route("/a/mcp"),
        Ok(crate::Route::Server(_))
    ));
    assert!(std::sync::Arc::ptr_eq(&policy.servers[1], &next.servers[1]));
}

#[test]
fn a_delta_round_trips_through_json_and_refuses_unknown_fields() {
    let delta = delta_between(
        &base(),
        &Snapshot {
            version: 2,
            ..base()
        },
    );
    assert!(delta.is_empty());
    let text = serde_json::to_string(&delta).unwrap();
    assert_eq!(SnapshotDelta::from_json(text.as_bytes()).unwrap(), delta);
    let error =
        SnapshotDelta::from_json(br#"{"format":1,"base":"","etag":"","version":2,"server":[]}"#)
            .unwrap_err();
    assert!(
        error.to_string().contains("unknown field `server`"),
        "{error}"
    );
}

#[test]
fn turning_the_authorization_server_on_refuses_a_server_left_under_oauth() {
    let mut snapshot = base();
    snapshot.servers.push(server("legacy", "/oauth"));
    let policy = Policy::compile(snapshot).unwrap();
    let on = || crate::snapshot::SettingsSpec {
        authorization_server: true,
        ..Default::default()
    };
    let error = policy
        .apply(&SnapshotDelta {
            format: 1,
            version: 2,
            settings: Some(on()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("settings.authorization_server:"),
        "{error}"
    );
    // Removed in the same delta: nothing is left under /oauth.
    let next = policy
        .apply(&SnapshotDelta {
            format: 1,
            version: 2,
            settings: Some(on()),
            removed_servers: vec!["legacy".into()],
            ..Default::default()
        })
        .unwrap();
    assert!(matches!(
        next.route("/oauth/token"),
        Ok(crate::Route::AuthorizationServer)
    ));
}

/// What turns `old` into `new` (entries compared by key; `base` and `etag` left empty). A group
/// listed in several mappings is compared as the union of their scopes, which is what it is
/// granted.
fn delta_between(old: &Snapshot, new: &Snapshot) -> SnapshotDelta {
    let (servers, removed_servers) = keyed_changes(&old.servers, &new.servers, |s| &s.name);
    let (scopes, removed_scopes) = keyed_changes(&old.scopes, &new.scopes, |s| &s.name);
    let (old_mappings, new_mappings) = (
        merged_mappings(&old.group_mappings),
        merged_mappings(&new.group_mappings),
    );
    let (group_mappings, removed_group_mappings) =
        keyed_changes(&old_mappings, &new_mappings, |m| &m.group);
    SnapshotDelta {
        format: 1,
        base: String::new(),
        etag: String::new(),
        version: new.version,
        issuers: (old.issuers != new.issuers).then(|| new.issuers.clone()),
        servers,
        removed_servers,
        scopes,
        removed_scopes,
        group_mappings,
        removed_group_mappings,
        api_keys: (old.api_keys != new.api_keys).then(|| new.api_keys.clone()),
        settings: (old.settings != new.settings).then(|| new.settings.clone()),
    }
}

/// Entries of `new` that are not in `old` as they are, and keys of `old` missing from `new`.
fn keyed_changes<T: Clone + PartialEq>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> &String,
) -> (Vec<T>, Vec<String>) {
    let old_by_key: std::collections::HashMap<&String, &T> =
        old.iter().map(|e| (key(e), e)).collect();
    let new_keys: std::collections::HashSet<&String> = new.iter().map(&key).collect();
    let changed = new
        .iter()
        .filter(|e| old_by_key.get(key(e)) != Some(e))
        .cloned()
        .collect();
    let removed = old
        .iter()
        .map(&key)
        .filter(|k| !new_keys.contains(k))
        .cloned()
        .collect();
    (changed, removed)
}

/// One mapping per group, its scopes the sorted union of every mapping of that group.
fn merged_mappings(mappings: &[GroupMappingSpec]) -> Vec<GroupMappingSpec> {
    let mut by_group: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for m in mappings {
        by_group
            .entry(&m.group)
            .or_default()
            .extend(m.scopes.iter().cloned());
    }
    by_group
        .into_iter()
        .map(|(group, mut scopes)| {
            scopes.sort();
            scopes.dedup();
            GroupMappingSpec {
                group: group.to_owned(),
                scopes,
            }
        })
        .collect()
}
