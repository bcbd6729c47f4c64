//! Where a worker's policy comes from: fixed at configuration (static), or the snapshot the
//! singleton wrote to proxy-wasm shared data. In the shared case every request reads the small
//! version key (one host call) and only a changed version reads and compiles the snapshot;
//! the compiled policy and its credential cache are replaced together.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;

use policy::Policy;

use crate::cache::CredentialCache;

/// Shared-data key of the snapshot JSON (written first).
pub const SNAPSHOT_KEY: &str = "portcullis.policy.snapshot";
/// Shared-data key of the snapshot's version as decimal text (written second).
pub const VERSION_KEY: &str = "portcullis.policy.version";

/// A compiled policy with the credential cache that belongs to it.
pub struct Loaded {
    pub policy: Policy,
    pub cache: RefCell<CredentialCache>,
    /// `policy.version` as decimal text, compared with the version key.
    pub version_text: String,
}

impl Loaded {
    pub fn new(policy: Policy) -> Loaded {
        let settings = &policy.settings;
        let cache = CredentialCache::new(
            settings.token_cache_entries,
            settings.negative_cache_entries,
            settings.negative_cache_seconds,
        );
        Loaded {
            version_text: policy.version.to_string(),
            cache: RefCell::new(cache),
            policy,
        }
    }
}

/// What a worker does with the version key it just read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionCheck {
    /// Nothing new: keep deciding with what is loaded (possibly nothing).
    Keep,
    /// A version this worker has not loaded or refused: read and compile the snapshot.
    Load,
}

/// Compares the version key with the loaded version and the last version this worker failed to
/// compile (not retried until the key changes again).
pub fn check_version(
    read: Option<&[u8]>,
    loaded: Option<&str>,
    refused: Option<&[u8]>,
) -> VersionCheck {
    match read {
        None => VersionCheck::Keep,
        Some(read) if loaded.is_some_and(|l| l.as_bytes() == read) => VersionCheck::Keep,
        Some(read) if refused == Some(read) => VersionCheck::Keep,
        Some(_) => VersionCheck::Load,
    }
}

/// The policy of one worker.
pub struct PolicySlot {
    current: RefCell<Option<Rc<Loaded>>>,
    /// Whether the policy comes from shared data.
    shared: bool,
    refused: RefCell<Option<Vec<u8>>>,
}

impl PolicySlot {
    /// A policy fixed for the worker's lifetime (static configuration).
    pub fn fixed(policy: Policy) -> PolicySlot {
        PolicySlot {
            current: RefCell::new(Some(Rc::new(Loaded::new(policy)))),
            shared: false,
            refused: RefCell::new(None),
        }
    }

    /// A policy the singleton delivers through shared data.
    pub fn shared() -> PolicySlot {
        PolicySlot {
            current: RefCell::new(None),
            shared: true,
            refused: RefCell::new(None),
        }
    }

    /// The policy to decide the current request with. Static: no host call.
    pub fn current(&self) -> Option<Rc<Loaded>> {
        if self.shared {
            self.refresh();
        }
        self.current.borrow().clone()
    }

    fn refresh(&self) {
        let read = hostcalls::get_shared_data(VERSION_KEY)
            .ok()
            .and_then(|(value, _)| value);
        let check = check_version(
            read.as_deref(),
            self.current
                .borrow()
                .as_deref()
                .map(|l| l.version_text.as_str()),
            self.refused.borrow().as_deref(),
        );
        if let (VersionCheck::Load, Some(version)) = (check, read) {
            self.load(version);
        }
    }

    fn load(&self, version: Vec<u8>) {
        let snapshot = hostcalls::get_shared_data(SNAPSHOT_KEY)
            .ok()
            .and_then(|(value, _)| value);
        let version_text = String::from_utf8_lossy(&version).into_owned();
        let compiled = match snapshot {
            Some(bytes) => Policy::from_json(&bytes).map_err(|e| e.to_string()),
            None => Err("the version key is set but the snapshot key is empty".into()),
        };
        match compiled {
            Ok(policy) => {
                log::info!(
                    "portcullis: policy version {} loaded from shared data ({} issuers, {} servers)",
                    policy.version,
                    policy.issuers.len(),
                    policy.server_count()
                );
                let mut loaded = Loaded::new(policy);
                // Labelled with the key that was read: if the singleton wrote a newer snapshot
                // between the two reads, the next request compiles once more, never misses it.
                loaded.version_text = version_text;
                *self.current.borrow_mut() = Some(Rc::new(loaded));
                *self.refused.borrow_mut() = None;
            }
            Err(error) => {
                log::error!(
                    "portcullis: cannot compile shared policy version {version_text}, keeping the previous one: {error}"
                );
                *self.refused.borrow_mut() = Some(version);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_delivered_keeps_nothing() {
        assert_eq!(check_version(None, None, None), VersionCheck::Keep);
    }

    #[test]
    fn first_version_loads() {
        assert_eq!(check_version(Some(b"1"), None, None), VersionCheck::Load);
    }

    #[test]
    fn same_version_keeps_and_a_new_one_loads() {
        assert_eq!(
            check_version(Some(b"7"), Some("7"), None),
            VersionCheck::Keep
        );
        assert_eq!(
            check_version(Some(b"8"), Some("7"), None),
            VersionCheck::Load
        );
        // Any change counts, including a lower number (a control plane restored from backup).
        assert_eq!(
            check_version(Some(b"6"), Some("7"), None),
            VersionCheck::Load
        );
        // Text comparison: no parsing, "07" is a different key value.
        assert_eq!(
            check_version(Some(b"07"), Some("7"), None),
            VersionCheck::Load
        );
    }

    #[test]
    fn a_refused_version_is_not_retried_until_the_key_changes() {
        assert_eq!(
            check_version(Some(b"8"), Some("7"), Some(b"8")),
            VersionCheck::Keep
        );
        assert_eq!(
            check_version(Some(b"8"), None, Some(b"8")),
            VersionCheck::Keep
        );
        assert_eq!(
            check_version(Some(b"9"), Some("7"), Some(b"8")),
            VersionCheck::Load
        );
    }

    #[test]
    fn a_deleted_key_keeps_the_last_policy() {
        assert_eq!(check_version(None, Some("7"), None), VersionCheck::Keep);
    }

    #[test]
    fn fixed_slot_holds_its_policy_and_a_shared_one_starts_empty() {
        // (`current()` itself is exercised end to end: unit tests have no host to call.)
        let policy = Policy::from_json(br#"{"format": 1, "version": 3}"#).unwrap();
        let slot = PolicySlot::fixed(policy);
        assert!(!slot.shared);
        let loaded = slot.current.borrow().clone().expect("fixed policy");
        assert_eq!(loaded.version_text, "3");
        let shared = PolicySlot::shared();
        assert!(shared.shared && shared.current.borrow().is_none());
    }
}
