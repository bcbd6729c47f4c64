//! Per-worker caches of verified and rejected credentials. A hit is one hash lookup and no
//! allocation; both are bounded and emptied when a new snapshot arrives.

use std::collections::HashMap;
use std::hash::Hash;
use std::rc::Rc;

use sha2::{Digest, Sha256};

use policy::{Identity, TokenError};

/// What a cached credential resolved to.
pub enum Cached {
    Valid(Rc<Identity>),
    Invalid(TokenError),
}

struct Entry {
    outcome: Cached,
    /// Unix seconds after which the entry must not be used.
    until: u64,
}

/// Bounded maps to outcomes. Verified credentials are keyed by the whole token (no collisions:
/// a hit grants access); refused ones by the token's SHA-256, so a flood of large junk tokens
/// costs 32 bytes an entry (and the caller never stores shape errors, see
/// `TokenError::is_worth_caching`). When full, expired entries go first, then an arbitrary
/// eighth (random eviction: `HashMap` iteration order is randomly seeded).
pub struct CredentialCache {
    valid: HashMap<Box<str>, Entry>,
    invalid: HashMap<[u8; 32], Entry>,
    valid_capacity: usize,
    invalid_capacity: usize,
    invalid_seconds: u64,
}

impl CredentialCache {
    pub fn new(valid_capacity: usize, invalid_capacity: usize, invalid_seconds: u64) -> Self {
        CredentialCache {
            valid: HashMap::new(),
            invalid: HashMap::new(),
            valid_capacity,
            invalid_capacity,
            invalid_seconds,
        }
    }

    /// The cached outcome and the unix second after which it must not be used; the caller
    /// compares that with the time.
    pub fn lookup(&self, credential: &str) -> Option<(&Cached, u64)> {
        let entry = match self.valid.get(credential) {
            Some(entry) => entry,
            None if self.invalid.is_empty() => return None,
            None => self.invalid.get(&digest(credential))?,
        };
        Some((&entry.outcome, entry.until))
    }

    #[cfg(test)]
    pub fn get(&self, credential: &str, now: u64) -> Option<&Cached> {
        self.lookup(credential)
            .and_then(|(outcome, until)| (now <= until).then_some(outcome))
    }

    pub fn insert_valid(&mut self, credential: &str, identity: Rc<Identity>, now: u64) {
        let until = identity.expires_at.unwrap_or(u64::MAX);
        if self.valid_capacity == 0 || until < now {
            return;
        }
        make_room(&mut self.valid, self.valid_capacity, now);
        self.valid.insert(
            credential.into(),
            Entry {
                outcome: Cached::Valid(identity),
                until,
            },
        );
    }

    pub fn insert_invalid(&mut self, credential: &str, error: TokenError, now: u64) {
        if self.invalid_capacity == 0 || self.invalid_seconds == 0 {
            return;
        }
        make_room(&mut self.invalid, self.invalid_capacity, now);
        let until = now.saturating_add(self.invalid_seconds);
        self.invalid.insert(
            digest(credential),
            Entry {
                outcome: Cached::Invalid(error),
                until,
            },
        );
    }

    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize) {
        (self.valid.len(), self.invalid.len())
    }
}

fn digest(credential: &str) -> [u8; 32] {
    Sha256::digest(credential.as_bytes()).into()
}

fn make_room<K: Hash + Eq + Clone>(map: &mut HashMap<K, Entry>, capacity: usize, now: u64) {
    if map.len() < capacity {
        return;
    }
    map.retain(|_, e| e.until >= now);
    if map.len() >= capacity {
        let excess = map.len() + 1 - capacity;
        let evict: Vec<K> = map.keys().take(excess.max(capacity / 8)).cloned().collect();
        for key in evict {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests;
