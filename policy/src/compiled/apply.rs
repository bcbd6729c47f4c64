//! Applying a change to a compiled policy. A whole snapshot is a change onto nothing, so the
//! same code validates both and a filter that follows deltas decides exactly as one that
//! compiled the resulting snapshot. Only what the change names is recompiled: a server's
//! grants are rebuilt when a scope granting on it changed, a group's scope list when its
//! mapping did, the API keys when they or the mappings did; the rest is shared.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::entries::{compile_issuer, compile_server, compile_settings, parse_sha256_hex};
use super::{invalid, ApiKey, Grant, Policy, ScopeGrant, ScopeId, Server, ServerId, SnapshotError};
use crate::idset::IdSet;
use crate::patterns::Patterns;
use crate::snapshot::{
    ApiKeySpec, GroupMappingSpec, IssuerSpec, ScopeSpec, ServerSpec, SettingsSpec, Snapshot,
    SnapshotDelta,
};

/// What one change holds, borrowed from a whole snapshot or a delta.
pub(super) struct Changes<'a> {
    version: u64,
    settings: Option<&'a SettingsSpec>,
    issuers: Option<&'a [IssuerSpec]>,
    servers: &'a [ServerSpec],
    removed_servers: &'a [String],
    scopes: &'a [ScopeSpec],
    removed_scopes: &'a [String],
    mappings: &'a [GroupMappingSpec],
    removed_mappings: &'a [String],
    api_keys: Option<&'a [ApiKeySpec]>,
}

impl<'a> Changes<'a> {
    pub(super) fn whole(snapshot: &'a Snapshot) -> Changes<'a> {
        Changes {
            version: snapshot.version,
            settings: Some(&snapshot.settings),
            issuers: Some(&snapshot.issuers),
            servers: &snapshot.servers,
            removed_servers: &[],
            scopes: &snapshot.scopes,
            removed_scopes: &[],
            mappings: &snapshot.group_mappings,
            removed_mappings: &[],
            api_keys: Some(&snapshot.api_keys),
        }
    }

    pub(super) fn delta(delta: &'a SnapshotDelta) -> Changes<'a> {
        Changes {
            version: delta.version,
            settings: delta.settings.as_ref(),
            issuers: delta.issuers.as_deref(),
            servers: &delta.servers,
            removed_servers: &delta.removed_servers,
            scopes: &delta.scopes,
            removed_scopes: &delta.removed_scopes,
            mappings: &delta.group_mappings,
            removed_mappings: &delta.removed_group_mappings,
            api_keys: delta.api_keys.as_deref(),
        }
    }
}

/// `base` with `changes` applied (`None`: onto nothing, and `changes` must then carry the
/// settings, as a whole snapshot does).
pub(super) fn apply(base: Option<&Policy>, changes: &Changes<'_>) -> Result<Policy, SnapshotError> {
    let settings = match (changes.settings, base) {
        (Some(spec), _) => compile_settings(spec)?,
        (None, Some(base)) => base.settings.clone(),
        (None, None) => compile_settings(&SettingsSpec::default())?,
    };
    let mut next = match base {
        Some(base) => Policy {
            settings,
            ..base.clone()
        },
        None => empty(settings),
    };
    next.version = changes.version;
    if let Some(issuers) = changes.issuers {
        apply_issuers(&mut next, issuers)?;
    }
    let authorization_server_turned_on = next.settings.authorization_server
        && !base.is_some_and(|b| b.settings.authorization_server);
    let removed_servers = apply_servers(&mut next, changes, authorization_server_turned_on)?;
    let removed_scopes = apply_scopes(&mut next, changes)?;
    let mappings_changed = apply_mappings(&mut next, changes)?;
    vacate_scopes(&mut next, changes.removed_scopes, &removed_scopes)?;
    vacate_servers(&mut next, changes.removed_servers, &removed_servers)?;
    if changes.api_keys.is_some() || mappings_changed || !removed_scopes.is_empty() {
        let specs = match changes.api_keys {
            Some(specs) => Arc::from(specs),
            None => next.api_key_specs.clone(),
        };
        next.api_keys = compile_api_keys(&next, &specs)?;
        next.api_key_specs = specs;
    }
    Ok(next)
}

fn empty(settings: super::Settings) -> Policy {
    Policy {
        version: 0,
        issuers: Arc::from([]),
        issuer_by_name: Arc::default(),
        servers: Vec::new(),
        vacant_servers: Vec::new(),
        server_by_name: HashMap::new(),
        server_by_prefix: HashMap::new(),
        scope_names: Vec::new(),
        vacant_scopes: Vec::new(),
        scope_ids: HashMap::new(),
        scope_grants: Vec::new(),
        group_scopes: HashMap::new(),
        scope_groups: Vec::new(),
        server_grants: Vec::new(),
        wildcard_grants: Arc::from([]),
        api_key_specs: Arc::from([]),
        api_keys: Arc::from([]),
        settings,
    }
}

fn apply_issuers(next: &mut Policy, specs: &[IssuerSpec]) -> Result<(), SnapshotError> {
    let mut issuers = Vec::with_capacity(specs.len());
    let mut issuer_by_name = HashMap::new();
    for (i, spec) in specs.iter().enumerate() {
        let issuer = compile_issuer(&format!("issuers[{i}]"), spec)?;
        if issuer_by_name.insert(issuer.issuer.clone(), i).is_some() {
            return Err(invalid(
                format!("issuers[{i}].issuer"),
                format!("duplicate issuer {:?}", issuer.issuer),
            ));
        }
        issuers.push(issuer);
    }
    next.issuers = issuers.into();
    next.issuer_by_name = Arc::new(issuer_by_name);
    Ok(())
}

/// Keys listed in a `removed_*` field, checked: each once, known, and not also replaced.
fn removed_keys<'k>(
    field: &str,
    keys: &'k [String],
    known: impl Fn(&str) -> bool,
    replaced: &HashSet<&str>,
) -> Result<Vec<&'k str>, SnapshotError> {
    let mut seen = HashSet::new();
    for (i, key) in keys.iter().enumerate() {
        let problem = if !seen.insert(key.as_str()) {
            "listed twice"
        } else if !known(key) {
            "not in the snapshot this applies to"
        } else if replaced.contains(key.as_str()) {
            "also listed as changed"
        } else {
            continue;
        };
        return Err(invalid(
            format!("{field}[{i}]"),
            format!("{key:?} {problem}"),
        ));
    }
    Ok(keys.iter().map(String::as_str).collect())
}

/// Adds and replaces servers, and takes removed ones out of the name and prefix indexes (their
/// slots are vacated once no grant names them, see [`vacate_servers`]). Returns the ids of the
/// removed servers.
fn apply_servers(
    next: &mut Policy,
    changes: &Changes<'_>,
    authorization_server_turned_on: bool,
) -> Result<Vec<ServerId>, SnapshotError> {
    let replaced: HashSet<&str> = changes.servers.iter().map(|s| s.name.as_str()).collect();
    let removed = removed_keys(
        "removed_servers",
        changes.removed_servers,
        |name| next.server_by_name.contains_key(name),
        &replaced,
    )?;
    let mut removed_ids = Vec::with_capacity(removed.len());
    // Prefixes of the servers that change are freed first, so two servers may swap prefixes.
    for name in removed.iter().copied().chain(replaced.iter().copied()) {
        if let Some(&id) = next.server_by_name.get(name) {
            next.server_by_prefix
                .remove(next.servers[id].path_prefix.as_str());
        }
    }
    for name in &removed {
        if let Some(id) = next.server_by_name.remove(*name) {
            removed_ids.push(id);
        }
    }
    let mut seen = HashSet::new();
    for (i, spec) in changes.servers.iter().enumerate() {
        let server = compile_server(&format!("servers[{i}]"), spec)?;
        if next.settings.authorization_server
            && crate::decision::is_authorization_server_path(&server.path_prefix)
        {
            return Err(invalid(
                format!("servers[{i}].path_prefix"),
                format!(
                    "{:?} lies under {}, the authorization server's",
                    server.path_prefix,
                    crate::decision::AUTHORIZATION_SERVER_PATH
                ),
            ));
        }
        if !seen.insert(server.name.clone()) {
            return Err(invalid(
                format!("servers[{i}].name"),
                format!("duplicate server name {:?}", server.name),
            ));
        }
        let id = match next.server_by_name.get(server.name.as_str()) {
            Some(&id) => id,
            None => {
                let id = next.vacant_servers.pop().unwrap_or(next.servers.len());
                if id == next.servers.len() {
                    next.servers.push(Arc::default());
                    next.server_grants.push(Arc::from([]));
                }
                next.server_by_name
                    .insert(Arc::from(server.name.as_str()), id);
                id
            }
        };
        if next
            .server_by_prefix
            .insert(Arc::from(server.path_prefix.as_str()), id)
            .is_some()
        {
            return Err(invalid(
                format!("servers[{i}].path_prefix"),
                format!("duplicate path prefix {:?}", server.path_prefix),
            ));
        }
        next.servers[id] = Arc::new(server);
    }
    if authorization_server_turned_on {
        // The servers there are after this change (removed ones are out of the prefix index).
        if let Some(server) = next
            .server_by_prefix
            .values()
            .map(|&id| &next.servers[id])
            .find(|s| crate::decision::is_authorization_server_path(&s.path_prefix))
        {
            return Err(invalid(
                "settings.authorization_server",
                format!(
                    "server {:?} at {:?} lies under {}, the authorization server's",
                    server.name,
                    server.path_prefix,
                    crate::decision::AUTHORIZATION_SERVER_PATH
                ),
            ));
        }
    }
    Ok(removed_ids)
}

/// Adds, replaces and removes scopes with their grants; every server a changed scope granted
/// on, or grants on now, gets its grant list rebuilt. Returns the ids of the removed scopes
/// (vacated once no mapping names them, see [`vacate_scopes`]).
fn apply_scopes(next: &mut Policy, changes: &Changes<'_>) -> Result<Vec<ScopeId>, SnapshotError> {
    let replaced: HashSet<&str> = changes.scopes.iter().map(|s| s.name.as_str()).collect();
    let removed = removed_keys(
        "removed_scopes",
        changes.removed_scopes,
        |name| next.scope_ids.contains_key(name),
        &replaced,
    )?;
    let mut removed_ids = Vec::with_capacity(removed.len());
    // Scopes whose old grants leave the servers they were on.
    let mut outgoing: HashSet<ScopeId> = HashSet::new();
    for name in &removed {
        if let Some(id) = next.scope_ids.remove(*name) {
            removed_ids.push(id);
            outgoing.insert(id);
        }
    }
    let mut incoming: Vec<(ScopeId, Vec<ScopeGrant>)> = Vec::with_capacity(changes.scopes.len());
    let mut seen = HashSet::new();
    for (s, scope) in changes.scopes.iter().enumerate() {
        let field = format!("scopes[{s}]");
        if scope.name.is_empty() || scope.name.chars().any(|c| c.is_whitespace() || c == '"') {
            return Err(invalid(
                format!("{field}.name"),
                "a scope name must be non-empty, without spaces or quotes",
            ));
        }
        if !seen.insert(scope.name.as_str()) {
            return Err(invalid(
                format!("{field}.name"),
                format!("duplicate scope {:?}", scope.name),
            ));
        }
        let id = match next.scope_ids.get(scope.name.as_str()) {
            Some(&id) => {
                outgoing.insert(id);
                id
            }
            None => {
                let id = next.vacant_scopes.pop().unwrap_or(next.scope_names.len());
                if id == next.scope_names.len() {
                    next.scope_names.push(Arc::from(""));
                    next.scope_grants.push(Arc::from([]));
                    next.scope_groups.push(Arc::from([]));
                }
                next.scope_names[id] = Arc::from(scope.name.as_str());
                next.scope_ids.insert(next.scope_names[id].clone(), id);
                id
            }
        };
        let mut grants = Vec::with_capacity(scope.grants.len());
        for (g, grant) in scope.grants.iter().enumerate() {
            let field = format!("{field}.grants[{g}]");
            let methods = Patterns::parse(&grant.methods)
                .map_err(|(i, e)| invalid(format!("{field}.methods[{i}]"), e))?;
            let tools = Patterns::parse(&grant.tools)
                .map_err(|(i, e)| invalid(format!("{field}.tools[{i}]"), e))?;
            let server = if grant.server == "*" {
                None
            } else {
                match next.server_by_name.get(grant.server.as_str()) {
                    Some(&id) => Some(id),
                    None => {
                        return Err(invalid(
                            format!("{field}.server"),
                            format!("unknown server {:?}", grant.server),
                        ))
                    }
                }
            };
            grants.push(ScopeGrant {
                server,
                grant: Grant {
                    scope: id,
                    methods,
                    tools,
                },
            });
        }
        incoming.push((id, grants));
    }
    // Which grant lists change: where the outgoing scopes' grants were, where the new are.
    let mut touched: BTreeSet<ServerId> = BTreeSet::new();
    let mut wildcard_touched = false;
    for &id in &outgoing {
        for grant in next.scope_grants[id].iter() {
            match grant.server {
                Some(server) => {
                    touched.insert(server);
                }
                None => wildcard_touched = true,
            }
        }
        next.scope_grants[id] = Arc::from([]);
    }
    let mut added: BTreeMap<ServerId, Vec<Grant>> = BTreeMap::new();
    let mut wildcard_added = Vec::new();
    for (id, grants) in incoming {
        for grant in &grants {
            match grant.server {
                Some(server) => added.entry(server).or_default().push(grant.grant.clone()),
                None => wildcard_added.push(grant.grant.clone()),
            }
        }
        next.scope_grants[id] = grants.into();
    }
    touched.extend(added.keys().copied());
    for server in touched {
        let mut grants: Vec<Grant> = next.server_grants[server]
            .iter()
            .filter(|g| !outgoing.contains(&g.scope))
            .cloned()
            .collect();
        grants.extend(added.remove(&server).unwrap_or_default());
        next.server_grants[server] = grants.into();
    }
    if wildcard_touched || !wildcard_added.is_empty() {
        let mut grants: Vec<Grant> = next
            .wildcard_grants
            .iter()
            .filter(|g| !outgoing.contains(&g.scope))
            .cloned()
            .collect();
        grants.extend(wildcard_added);
        next.wildcard_grants = grants.into();
    }
    Ok(removed_ids)
}

type GroupChanges = (Vec<Arc<str>>, Vec<Arc<str>>);

/// Adds, replaces and removes group mappings; several mappings of one group in a change are
/// one mapping to the union of their scopes. Returns whether any mapping changed.
fn apply_mappings(next: &mut Policy, changes: &Changes<'_>) -> Result<bool, SnapshotError> {
    let replaced: HashSet<&str> = changes.mappings.iter().map(|m| m.group.as_str()).collect();
    let removed = removed_keys(
        "removed_group_mappings",
        changes.removed_mappings,
        |group| next.group_scopes.contains_key(group),
        &replaced,
    )?;
    let mut new_sets: BTreeMap<&str, BTreeSet<ScopeId>> = BTreeMap::new();
    for (m, mapping) in changes.mappings.iter().enumerate() {
        if mapping.group.is_empty() {
            return Err(invalid(format!("group_mappings[{m}].group"), "empty group"));
        }
        let set = new_sets.entry(&mapping.group).or_default();
        for (i, name) in mapping.scopes.iter().enumerate() {
            match next.scope_ids.get(name.as_str()) {
                Some(&id) => {
                    set.insert(id);
                }
                None => {
                    return Err(invalid(
                        format!("group_mappings[{m}].scopes[{i}]"),
                        format!("unknown scope {name:?}"),
                    ))
                }
            }
        }
    }
    let changed = !new_sets.is_empty() || !removed.is_empty();
    // The inverse index, per scope whose group list changes: groups added, groups gone.
    let mut scope_group_changes: BTreeMap<ScopeId, GroupChanges> = BTreeMap::new();
    let updates = removed
        .iter()
        .map(|group| (*group, None))
        .chain(new_sets.into_iter().map(|(group, set)| (group, Some(set))));
    for (group, set) in updates {
        let key: Arc<str> = Arc::from(group);
        let old: BTreeSet<ScopeId> = next
            .group_scopes
            .get(group)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let new = set.unwrap_or_default();
        for &scope in old.difference(&new) {
            scope_group_changes
                .entry(scope)
                .or_default()
                .1
                .push(key.clone());
        }
        for &scope in new.difference(&old) {
            scope_group_changes
                .entry(scope)
                .or_default()
                .0
                .push(key.clone());
        }
        if new.is_empty() && !replaced.contains(group) {
            next.group_scopes.remove(group);
        } else {
            next.group_scopes
                .insert(key, new.into_iter().collect::<Vec<_>>().into());
        }
    }
    for (scope, (added, gone)) in scope_group_changes {
        let mut groups: Vec<Arc<str>> = next.scope_groups[scope]
            .iter()
            .filter(|g| !gone.contains(g))
            .cloned()
            .chain(added)
            .collect();
        groups.sort();
        groups.dedup();
        next.scope_groups[scope] = groups.into();
    }
    Ok(changed)
}

/// Frees the slots of removed scopes; a scope still mapped after the change is an error.
fn vacate_scopes(
    next: &mut Policy,
    names: &[String],
    ids: &[ScopeId],
) -> Result<(), SnapshotError> {
    for (i, &id) in ids.iter().enumerate() {
        if let Some(group) = next.scope_groups[id].first() {
            return Err(invalid(
                format!("removed_scopes[{i}]"),
                format!("{:?} is still mapped by group {group:?}", names[i]),
            ));
        }
        next.scope_names[id] = Arc::from("");
        next.scope_grants[id] = Arc::from([]);
        next.vacant_scopes.push(id);
    }
    Ok(())
}

/// Frees the slots of removed servers; a server still granted after the change is an error.
fn vacate_servers(
    next: &mut Policy,
    names: &[String],
    ids: &[ServerId],
) -> Result<(), SnapshotError> {
    for (i, &id) in ids.iter().enumerate() {
        if let Some(grant) = next.server_grants[id].first() {
            return Err(invalid(
                format!("removed_servers[{i}]"),
                format!(
                    "{:?} is still granted by scope {:?}",
                    names[i], next.scope_names[grant.scope]
                ),
            ));
        }
        next.servers[id] = Arc::new(Server::default());
        next.vacant_servers.push(id);
    }
    Ok(())
}

fn compile_api_keys(next: &Policy, specs: &[ApiKeySpec]) -> Result<Arc<[ApiKey]>, SnapshotError> {
    let mut api_keys: Vec<ApiKey> = Vec::with_capacity(specs.len());
    for (k, spec) in specs.iter().enumerate() {
        let field = format!("api_keys[{k}]");
        let sha256 = parse_sha256_hex(&spec.sha256).ok_or_else(|| {
            invalid(
                format!("{field}.sha256"),
                "expected 64 lowercase hex digits",
            )
        })?;
        if api_keys.iter().any(|other| other.sha256 == sha256) {
            return Err(invalid(format!("{field}.sha256"), "duplicate key hash"));
        }
        if spec.subject.is_empty() {
            return Err(invalid(format!("{field}.subject"), "empty subject"));
        }
        let mut scopes = IdSet::empty(next.scope_names.len());
        for (i, name) in spec.scopes.iter().enumerate() {
            match next.scope_ids.get(name.as_str()) {
                Some(&id) => scopes.insert(id),
                None => {
                    return Err(invalid(
                        format!("{field}.scopes[{i}]"),
                        format!("unknown scope {name:?}"),
                    ))
                }
            }
        }
        scopes.union_with(&next.scopes_for_groups(&spec.groups));
        api_keys.push(ApiKey {
            name: spec.name.clone(),
            sha256,
            subject: spec.subject.clone(),
            groups: spec.groups.clone().into_boxed_slice(),
            scopes,
            expires_at: spec.expires_at,
        });
    }
    Ok(api_keys.into())
}
