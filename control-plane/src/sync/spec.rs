//! The snapshot as the control plane holds it between changes: every entry keyed as a delta
//! names it, shared (`Arc`) between consecutive versions, with a hash per entry. The content
//! hash is the wrapping sum of the entries' hashes, so a change updates it in what it
//! changed; the whole snapshot is written only when a filter asks for it.

use std::collections::BTreeMap;
use std::sync::Arc;

use policy::snapshot::{
    ApiKeySpec, GroupMappingSpec, IssuerSpec, ScopeSpec, ServerSpec, SettingsSpec, Snapshot,
    SnapshotDelta,
};
use serde::ser::{SerializeStruct as _, Serializer};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// One entry with the hash of what it holds.
#[derive(Debug)]
struct Entry<T> {
    spec: Arc<T>,
    hash: [u64; 4],
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            spec: self.spec.clone(),
            hash: self.hash,
        }
    }
}

/// The sections of a snapshot, as tags in the entry hashes.
#[derive(Clone, Copy)]
enum Section {
    Issuers = 1,
    Server,
    Scope,
    GroupMapping,
    ApiKeys,
    Settings,
}

fn entry<T: Serialize>(section: Section, spec: T) -> Entry<T> {
    let mut hasher = Sha256::new();
    hasher.update([section as u8]);
    // Serialising a spec cannot fail (no maps with non-string keys); an empty one would
    // still hash by its section.
    hasher.update(serde_json::to_vec(&spec).unwrap_or_default());
    let digest = hasher.finalize();
    let mut hash = [0u64; 4];
    for (lane, bytes) in hash.iter_mut().zip(digest.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(bytes);
        *lane = u64::from_le_bytes(word);
    }
    Entry {
        spec: Arc::new(spec),
        hash,
    }
}

/// A snapshot's content, keyed. Cloning it copies the key maps, not the entries.
#[derive(Debug, Clone)]
pub struct SpecState {
    issuers: Entry<Vec<IssuerSpec>>,
    servers: BTreeMap<String, Entry<ServerSpec>>,
    scopes: BTreeMap<String, Entry<ScopeSpec>>,
    group_mappings: BTreeMap<String, Entry<GroupMappingSpec>>,
    api_keys: Entry<Vec<ApiKeySpec>>,
    settings: Entry<SettingsSpec>,
    /// Wrapping sum of every entry's hash, lane by lane.
    sum: [u64; 4],
}

fn add(sum: &mut [u64; 4], hash: &[u64; 4]) {
    for (s, h) in sum.iter_mut().zip(hash) {
        *s = s.wrapping_add(*h);
    }
}

fn subtract(sum: &mut [u64; 4], hash: &[u64; 4]) {
    for (s, h) in sum.iter_mut().zip(hash) {
        *s = s.wrapping_sub(*h);
    }
}

/// Replaces (or, `None`, removes) the entry at `key`; `Some` with what the delta must carry
/// when that changed anything (`Ok(spec)`: set it, `Err(key)`: remove it).
fn put<T: Serialize + Clone>(
    map: &mut BTreeMap<String, Entry<T>>,
    sum: &mut [u64; 4],
    section: Section,
    key: &str,
    spec: Option<T>,
) -> Option<Result<T, String>> {
    match spec {
        Some(spec) => {
            let new = entry(section, spec);
            if let Some(old) = map.get(key) {
                if old.hash == new.hash {
                    return None;
                }
                subtract(sum, &old.hash);
            }
            add(sum, &new.hash);
            let spec = (*new.spec).clone();
            map.insert(key.to_owned(), new);
            Some(Ok(spec))
        }
        None => {
            let old = map.remove(key)?;
            subtract(sum, &old.hash);
            Some(Err(key.to_owned()))
        }
    }
}

/// Replaces a section kept whole; `Some` with what the delta must carry when that changed it.
fn replace<T: Serialize + Clone>(
    current: &mut Entry<T>,
    sum: &mut [u64; 4],
    section: Section,
    value: T,
) -> Option<T> {
    let new = entry(section, value);
    if new.hash == current.hash {
        return None;
    }
    subtract(sum, &current.hash);
    add(sum, &new.hash);
    let changed = (*new.spec).clone();
    *current = new;
    Some(changed)
}

/// Notes what [`put`] changed in a delta's list of entries set and list of keys removed (an
/// entry set, then removed in the same delta, is only removed; and the other way round).
fn record<T>(
    change: Option<Result<T, String>>,
    key: &str,
    set: &mut Vec<T>,
    removed: &mut Vec<String>,
    key_of: impl Fn(&T) -> &String,
) {
    match change {
        Some(Ok(spec)) => {
            removed.retain(|k| k != key);
            set.retain(|s| key_of(s) != key);
            set.push(spec);
        }
        Some(Err(key)) => {
            set.retain(|s| *key_of(s) != key);
            removed.push(key);
        }
        None => {}
    }
}

impl SpecState {
    /// The content of `snapshot` (its version is not content). Several mappings of one group
    /// become one, as a delta keys them.
    pub fn of(snapshot: &Snapshot) -> SpecState {
        let mut state = SpecState {
            issuers: entry(Section::Issuers, snapshot.issuers.clone()),
            servers: BTreeMap::new(),
            scopes: BTreeMap::new(),
            group_mappings: BTreeMap::new(),
            api_keys: entry(Section::ApiKeys, snapshot.api_keys.clone()),
            settings: entry(Section::Settings, snapshot.settings.clone()),
            sum: [0; 4],
        };
        for hash in [state.issuers.hash, state.api_keys.hash, state.settings.hash] {
            add(&mut state.sum, &hash);
        }
        let sum = &mut state.sum;
        for server in &snapshot.servers {
            let spec = Some(server.clone());
            put(&mut state.servers, sum, Section::Server, &server.name, spec);
        }
        for scope in &snapshot.scopes {
            put(
                &mut state.scopes,
                sum,
                Section::Scope,
                &scope.name,
                Some(scope.clone()),
            );
        }
        let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for m in &snapshot.group_mappings {
            groups
                .entry(&m.group)
                .or_default()
                .extend(m.scopes.iter().cloned());
        }
        let several = groups.len() < snapshot.group_mappings.len();
        for (group, mut scopes) in groups {
            if several {
                scopes.sort();
                scopes.dedup();
            }
            let mapping = GroupMappingSpec {
                group: group.to_owned(),
                scopes,
            };
            let section = Section::GroupMapping;
            put(
                &mut state.group_mappings,
                sum,
                section,
                group,
                Some(mapping),
            );
        }
        state
    }

    /// The content hash: lowercase hex SHA-256 of the sum of the entries' hashes.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"portcullis policy content v2");
        for lane in self.sum {
            hasher.update(lane.to_le_bytes());
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Each `set_*` replaces (or removes) one entry and, when that changed the content, adds
    /// the change to `delta`.
    pub fn set_server(&mut self, name: &str, spec: Option<ServerSpec>, delta: &mut SnapshotDelta) {
        let change = put(
            &mut self.servers,
            &mut self.sum,
            Section::Server,
            name,
            spec,
        );
        let (set, removed) = (&mut delta.servers, &mut delta.removed_servers);
        record(change, name, set, removed, |s| &s.name);
    }

    pub fn set_scope(&mut self, name: &str, spec: Option<ScopeSpec>, delta: &mut SnapshotDelta) {
        let change = put(&mut self.scopes, &mut self.sum, Section::Scope, name, spec);
        let (set, removed) = (&mut delta.scopes, &mut delta.removed_scopes);
        record(change, name, set, removed, |s| &s.name);
    }

    pub fn set_group_mapping(
        &mut self,
        group: &str,
        spec: Option<GroupMappingSpec>,
        delta: &mut SnapshotDelta,
    ) {
        let section = Section::GroupMapping;
        let change = put(
            &mut self.group_mappings,
            &mut self.sum,
            section,
            group,
            spec,
        );
        let (set, removed) = (&mut delta.group_mappings, &mut delta.removed_group_mappings);
        record(change, group, set, removed, |m| &m.group);
    }

    pub fn set_issuers(&mut self, issuers: Vec<IssuerSpec>, delta: &mut SnapshotDelta) {
        let section = Section::Issuers;
        if let Some(issuers) = replace(&mut self.issuers, &mut self.sum, section, issuers) {
            delta.issuers = Some(issuers);
        }
    }

    pub fn set_api_keys(&mut self, keys: Vec<ApiKeySpec>, delta: &mut SnapshotDelta) {
        if let Some(keys) = replace(&mut self.api_keys, &mut self.sum, Section::ApiKeys, keys) {
            delta.api_keys = Some(keys);
        }
    }

    /// What turns `old` into `self`, entry by entry (by hash).
    pub fn delta_from(&self, old: &SpecState) -> SnapshotDelta {
        let mut delta = SnapshotDelta {
            format: 1,
            ..SnapshotDelta::default()
        };
        if self.issuers.hash != old.issuers.hash {
            delta.issuers = Some((*self.issuers.spec).clone());
        }
        if self.api_keys.hash != old.api_keys.hash {
            delta.api_keys = Some((*self.api_keys.spec).clone());
        }
        if self.settings.hash != old.settings.hash {
            delta.settings = Some((*self.settings.spec).clone());
        }
        let (set, removed) = keyed_delta(&old.servers, &self.servers);
        (delta.servers, delta.removed_servers) = (set, removed);
        let (set, removed) = keyed_delta(&old.scopes, &self.scopes);
        (delta.scopes, delta.removed_scopes) = (set, removed);
        let (set, removed) = keyed_delta(&old.group_mappings, &self.group_mappings);
        (delta.group_mappings, delta.removed_group_mappings) = (set, removed);
        delta
    }

    /// The whole snapshot as JSON with `version`: what `Policy::from_json` reads.
    pub fn to_json(&self, version: u64) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&Whole {
            state: self,
            version,
        })
    }
}

fn keyed_delta<T: Clone>(
    old: &BTreeMap<String, Entry<T>>,
    new: &BTreeMap<String, Entry<T>>,
) -> (Vec<T>, Vec<String>) {
    let set = new
        .iter()
        .filter(|(key, e)| old.get(*key).is_none_or(|o| o.hash != e.hash))
        .map(|(_, e)| (*e.spec).clone())
        .collect();
    let removed = old
        .keys()
        .filter(|key| !new.contains_key(*key))
        .cloned()
        .collect();
    (set, removed)
}

/// Serialises as [`Snapshot`] does, field for field, from the keyed entries.
struct Whole<'a> {
    state: &'a SpecState,
    version: u64,
}

struct Values<'a, T>(&'a BTreeMap<String, Entry<T>>);

impl<T: Serialize> Serialize for Values<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.values().map(|e| &*e.spec))
    }
}

impl Serialize for Whole<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.state;
        let mut s = serializer.serialize_struct("Snapshot", 8)?;
        s.serialize_field("format", &1u32)?;
        s.serialize_field("version", &self.version)?;
        s.serialize_field("issuers", &*state.issuers.spec)?;
        s.serialize_field("servers", &Values(&state.servers))?;
        s.serialize_field("group_mappings", &Values(&state.group_mappings))?;
        s.serialize_field("scopes", &Values(&state.scopes))?;
        s.serialize_field("api_keys", &*state.api_keys.spec)?;
        s.serialize_field("settings", &*state.settings.spec)?;
        s.end()
    }
}
