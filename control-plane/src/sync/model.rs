//! The registry as the current snapshot was compiled from it, kept between rebuilds. A
//! rebuild after recorded changes re-reads just those rows and recompiles the entries they
//! touch (a server's, the scopes granting on a server that came or went, the mappings naming
//! a scope that came or went), so it costs what changed. Without a precise record it reads
//! and compiles everything and compares entry by entry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use policy::keys::Jwks;
use policy::snapshot::SnapshotDelta;

use super::spec::SpecState;
use super::{read_keys, PublishError, Sources};
use crate::registry::{
    self, api_key_specs, issuer_specs, mapping_spec, scope_spec, server_spec, ApiKey, GroupMapping,
    RegistryContents, Scope, Server, SnapshotKeys,
};
use crate::storage::ChangeSet;

/// The registry rows, the snapshot compiled from them, and what the API and xDS read of it.
#[derive(Debug, Clone)]
pub struct Model {
    /// By path (the table's key).
    servers: BTreeMap<String, Server>,
    /// Server paths by name (what grants name).
    server_paths: HashMap<String, String>,
    scopes: BTreeMap<String, Scope>,
    mappings: BTreeMap<String, GroupMapping>,
    api_keys: Vec<ApiKey>,
    pub spec: SpecState,
    /// Every server, by path, as xDS routes them; a new `Arc` only when a server changed.
    pub server_list: Arc<[Server]>,
    /// The IdP's keys in the snapshot (for the API's own token checks).
    pub idp_jwks: Option<Jwks>,
}

/// The rows a change names, as storage holds them now (`None`: deleted), and the keys when the
/// issuers changed.
pub struct ChangedRows<'c> {
    servers: Vec<(&'c String, Option<Server>)>,
    scopes: Vec<(&'c String, Option<Scope>)>,
    mappings: Vec<(&'c String, Option<GroupMapping>)>,
    api_keys: Option<Vec<ApiKey>>,
    keys: Option<SnapshotKeys>,
}

fn storage(e: sqlx::Error) -> PublishError {
    PublishError::Compile(e.into())
}

impl Model {
    /// Everything, read from storage.
    pub async fn read_all(
        sources: &Sources,
    ) -> Result<(RegistryContents, SnapshotKeys), PublishError> {
        let contents = RegistryContents::read(&sources.db).await.map_err(storage)?;
        let keys = read_keys(sources).await?;
        Ok((contents, keys))
    }

    /// The model of everything [`Model::read_all`] read, compiled.
    pub fn compile_all(sources: &Sources, contents: RegistryContents, keys: SnapshotKeys) -> Model {
        let idp_jwks = keys.idp.clone();
        let snapshot = registry::compile_snapshot(&contents, &sources.settings, keys, 0);
        Model {
            servers: contents
                .servers
                .iter()
                .map(|s| (s.path.clone(), s.clone()))
                .collect(),
            server_paths: contents
                .servers
                .iter()
                .map(|s| (s.name.clone(), s.path.clone()))
                .collect(),
            scopes: contents
                .scopes
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
            mappings: contents
                .mappings
                .into_iter()
                .map(|m| (m.group.clone(), m))
                .collect(),
            api_keys: contents.api_keys,
            spec: SpecState::of(&snapshot),
            server_list: contents.servers,
            idp_jwks,
        }
    }

    /// Re-reads what `changes` names (for [`Model::apply`]).
    pub async fn read_changes<'c>(
        sources: &Sources,
        changes: &'c ChangeSet,
    ) -> Result<ChangedRows<'c>, PublishError> {
        let db = &sources.db;
        // Every read first: a failed one leaves the model as it was.
        let mut servers = Vec::with_capacity(changes.servers.len());
        for path in &changes.servers {
            servers.push((path, db.get_server(path).await.map_err(storage)?));
        }
        let mut scopes = Vec::with_capacity(changes.scopes.len());
        for name in &changes.scopes {
            scopes.push((name, db.get_scope(name).await.map_err(storage)?));
        }
        let mut mappings = Vec::with_capacity(changes.group_mappings.len());
        for group in &changes.group_mappings {
            mappings.push((group, db.get_group_mapping(group).await.map_err(storage)?));
        }
        let api_keys = match changes.api_keys {
            true => Some(db.list_api_keys().await.map_err(storage)?),
            false => None,
        };
        let keys = match changes.issuers {
            true => Some(read_keys(sources).await?),
            false => None,
        };
        Ok(ChangedRows {
            servers,
            scopes,
            mappings,
            api_keys,
            keys,
        })
    }

    /// Updates the rows and the snapshot with what was re-read; returns what changed in the
    /// snapshot.
    pub fn apply(&mut self, sources: &Sources, rows: ChangedRows<'_>) -> SnapshotDelta {
        let ChangedRows {
            servers,
            scopes,
            mappings,
            api_keys,
            keys,
        } = rows;
        let settings = &sources.settings;
        let mut delta = SnapshotDelta {
            format: 1,
            ..SnapshotDelta::default()
        };
        // Server names that came or went: the scopes granting on them change.
        let mut server_names = BTreeSet::new();
        let servers_changed = !servers.is_empty();
        for (path, row) in servers {
            let old = self.servers.remove(path.as_str());
            if let Some(old) = &old {
                if row.as_ref().is_none_or(|new| new.name != old.name) {
                    self.server_paths.remove(&old.name);
                    self.spec.set_server(&old.name, None, &mut delta);
                    server_names.insert(old.name.clone());
                }
            }
            if let Some(new) = row {
                if old.as_ref().is_none_or(|old| old.name != new.name) {
                    server_names.insert(new.name.clone());
                }
                self.server_paths.insert(new.name.clone(), new.path.clone());
                self.spec
                    .set_server(&new.name, Some(server_spec(&new, settings)), &mut delta);
                self.servers.insert(path.clone(), new);
            }
        }
        let mut scope_names: BTreeSet<String> = BTreeSet::new();
        let mut recompile_scopes: BTreeSet<String> = BTreeSet::new();
        for (name, row) in scopes {
            let existed = match row {
                Some(row) => self.scopes.insert(name.clone(), row).is_some(),
                None => self.scopes.remove(name.as_str()).is_some(),
            };
            if existed != self.scopes.contains_key(name.as_str()) {
                scope_names.insert(name.clone());
            }
            recompile_scopes.insert(name.clone());
        }
        if !server_names.is_empty() {
            for scope in self.scopes.values() {
                if scope
                    .grants
                    .iter()
                    .any(|g| server_names.contains(&g.server))
                {
                    recompile_scopes.insert(scope.name.clone());
                }
            }
        }
        let server_known = |name: &str| self.server_paths.contains_key(name);
        for name in &recompile_scopes {
            let spec = self.scopes.get(name).map(|s| scope_spec(s, server_known));
            self.spec.set_scope(name, spec, &mut delta);
        }
        let mut recompile_groups: BTreeSet<String> = BTreeSet::new();
        for (group, row) in mappings {
            match row {
                Some(row) => self.mappings.insert(group.clone(), row),
                None => self.mappings.remove(group.as_str()),
            };
            recompile_groups.insert(group.clone());
        }
        if !scope_names.is_empty() {
            for mapping in self.mappings.values() {
                if mapping.scopes.iter().any(|s| scope_names.contains(s)) {
                    recompile_groups.insert(mapping.group.clone());
                }
            }
        }
        let scope_known = |name: &str| self.scopes.contains_key(name);
        for group in &recompile_groups {
            let spec = self
                .mappings
                .get(group)
                .map(|m| mapping_spec(m, scope_known));
            self.spec.set_group_mapping(group, spec, &mut delta);
        }
        // The keys are few: recompiled whole when they or the scope names changed.
        let keys_changed = api_keys.is_some();
        if let Some(rows) = api_keys {
            self.api_keys = rows;
        }
        if keys_changed || !scope_names.is_empty() {
            let specs = api_key_specs(&self.api_keys, |name| self.scopes.contains_key(name));
            self.spec.set_api_keys(specs, &mut delta);
        }
        if let Some(keys) = keys {
            self.idp_jwks = keys.idp.clone();
            self.spec
                .set_issuers(issuer_specs(settings, keys), &mut delta);
        }
        if servers_changed {
            self.server_list = self.servers.values().cloned().collect();
        }
        delta
    }
}
