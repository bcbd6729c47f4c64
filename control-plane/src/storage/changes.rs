//! What changed among the snapshot's inputs since the last rebuild, recorded by the write that
//! changed it. The rebuild re-reads just those rows, so its cost follows the change and not
//! the registry. A write that records nothing (another replica's, an API write outside the
//! registry) makes the rebuild read everything, as it always did.

use std::collections::BTreeSet;

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// The server row at this path (added, replaced or deleted).
    Server(String),
    /// The scope of this name.
    Scope(String),
    /// The mapping of this group.
    GroupMapping(String),
    /// The API keys (few: re-read whole).
    ApiKeys,
    /// Signing keys or revoked tokens: the issuers.
    Issuers,
}

/// Changes recorded since the last [`crate::storage::Db::take_changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Read everything (nothing more precise is known).
    pub everything: bool,
    pub servers: BTreeSet<String>,
    pub scopes: BTreeSet<String>,
    pub group_mappings: BTreeSet<String>,
    pub api_keys: bool,
    pub issuers: bool,
}

impl ChangeSet {
    pub fn everything() -> ChangeSet {
        ChangeSet {
            everything: true,
            ..ChangeSet::default()
        }
    }

    pub fn add(&mut self, change: Changed) {
        match change {
            Changed::Server(path) => {
                self.servers.insert(path);
            }
            Changed::Scope(name) => {
                self.scopes.insert(name);
            }
            Changed::GroupMapping(group) => {
                self.group_mappings.insert(group);
            }
            Changed::ApiKeys => self.api_keys = true,
            Changed::Issuers => self.issuers = true,
        }
    }

    pub fn merge(&mut self, other: ChangeSet) {
        self.everything |= other.everything;
        self.servers.extend(other.servers);
        self.scopes.extend(other.scopes);
        self.group_mappings.extend(other.group_mappings);
        self.api_keys |= other.api_keys;
        self.issuers |= other.issuers;
    }

    pub fn is_empty(&self) -> bool {
        *self == ChangeSet::default()
    }
}

/// The recorded changes and a counter of records (whether a request recorded anything).
#[derive(Debug, Default)]
pub(super) struct Recorded {
    pub generation: u64,
    pub changes: ChangeSet,
}
