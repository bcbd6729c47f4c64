//! Where a worker's policy comes from: fixed at configuration (static), or what the singleton
//! wrote to proxy-wasm shared data. In the shared case every request reads the small version
//! key (one host call) and only a changed version reads more: the deltas since the version the
//! worker has, applied to its policy (a change costs what it changed), or, when the worker is
//! new or too far behind, the base snapshot and every delta after it. The compiled policy and
//! its credential cache are replaced together.
//!
//! Shared data holds three keys, written by the singleton in this order:
//! - [`SNAPSHOT_KEY`]: the base snapshot, `<etag>\n<snapshot JSON>`;
//! - [`DELTAS_KEY`]: the deltas accepted since that base, one JSON object per line;
//! - [`VERSION_KEY`]: the ETag of the newest policy.
//!
//! A worker may read them while the singleton writes: every delta names its base and result,
//! so a worker applies only an unbroken chain and labels its policy with what it reached; a
//! newer version key makes it look again on its next request.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;

use policy::snapshot::SnapshotDelta;
use policy::Policy;

use crate::cache::CredentialCache;

/// Shared-data key of the base snapshot: its ETag, a newline, its JSON (written first).
pub const SNAPSHOT_KEY: &str = "portcullis.policy.snapshot";
/// Shared-data key of the deltas since the base, one per line (written second).
pub const DELTAS_KEY: &str = "portcullis.policy.deltas";
/// Shared-data key of the newest policy's ETag (written last).
pub const VERSION_KEY: &str = "portcullis.policy.version";

/// The base snapshot value: its ETag and its JSON.
pub fn base_value(etag: &str, snapshot: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(etag.len() + 1 + snapshot.len());
    value.extend_from_slice(etag.as_bytes());
    value.push(b'\n');
    value.extend_from_slice(snapshot);
    value
}

/// `base` advanced by `deltas`: every delta must follow the one before and the first must apply
/// to `base_etag`. Returns the policy and the ETag it reached.
pub fn apply_deltas(
    base: &Policy,
    base_etag: &str,
    deltas: &[SnapshotDelta],
) -> Result<(Policy, String), String> {
    let Some(first) = deltas.first() else {
        return Err("no delta".into());
    };
    if first.base != base_etag {
        return Err(format!(
            "the deltas start at {:?}, the policy is at {base_etag:?}",
            first.base
        ));
    }
    let mut policy = base.apply(first).map_err(|e| e.to_string())?;
    for delta in &deltas[1..] {
        policy = policy.apply(delta).map_err(|e| e.to_string())?;
    }
    let etag = deltas.last().map(|d| d.etag.clone()).unwrap_or_default();
    Ok((policy, etag))
}

/// What a worker loads from shared data: the policy it has (with its ETag) advanced by the
/// deltas after it when the log holds them, else the base snapshot (`read_base`) advanced by
/// the deltas after the base. Returns the policy and the ETag it reached.
pub fn advance(
    current: Option<(&Policy, &str)>,
    log: &[u8],
    read_base: impl FnOnce() -> Option<Vec<u8>>,
) -> Result<(Policy, String), String> {
    let deltas = SnapshotDelta::parse_lines(log).map_err(|e| format!("deltas: {e}"))?;
    if let Some((policy, etag)) = current {
        if let Some(start) = deltas.iter().position(|d| d.base == etag) {
            return apply_deltas(policy, etag, &deltas[start..]);
        }
    }
    let Some(value) = read_base() else {
        return Err("the version key is set but the snapshot key is empty".into());
    };
    let Some(newline) = value.iter().position(|&b| b == b'\n') else {
        return Err("the snapshot key holds no ETag line".into());
    };
    let base_etag = String::from_utf8_lossy(&value[..newline]).into_owned();
    let base = Policy::from_json(&value[newline + 1..]).map_err(|e| e.to_string())?;
    match deltas.iter().position(|d| d.base == base_etag) {
        Some(start) => apply_deltas(&base, &base_etag, &deltas[start..]),
        // No delta after this base (yet, or the log belongs to a newer base being written).
        None => Ok((base, base_etag)),
    }
}

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
        let log = hostcalls::get_shared_data(DELTAS_KEY)
            .ok()
            .and_then(|(value, _)| value)
            .unwrap_or_default();
        let version_text = String::from_utf8_lossy(&version).into_owned();
        let current = self.current.borrow().clone();
        let compiled = advance(
            current
                .as_deref()
                .map(|l| (&l.policy, l.version_text.as_str())),
            &log,
            || {
                hostcalls::get_shared_data(SNAPSHOT_KEY)
                    .ok()
                    .and_then(|(value, _)| value)
            },
        );
        match compiled {
            Ok((policy, reached)) => {
                log::info!(
                    "portcullis: policy version {} loaded from shared data ({} issuers, {} servers)",
                    policy.version,
                    policy.issuers.len(),
                    policy.server_count()
                );
                let mut loaded = Loaded::new(policy);
                // Labelled with the ETag it reached: if the singleton wrote more between the
                // reads, the version key differs and the next request loads once more.
                loaded.version_text = reached;
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

    fn delta(base: &str, etag: &str, version: u64, scopes: &[&str]) -> String {
        let delta = SnapshotDelta {
            format: 1,
            base: base.into(),
            etag: etag.into(),
            version,
            group_mappings: vec![policy::snapshot::GroupMappingSpec {
                group: "eng".into(),
                scopes: scopes.iter().map(ToString::to_string).collect(),
            }],
            ..SnapshotDelta::default()
        };
        serde_json::to_string(&delta).unwrap() + "\n"
    }

    const BASE: &str = r#"{"format": 1, "version": 1, "scopes": [{"name": "a"}, {"name": "b"}]}"#;

    fn mapped(policy: &Policy) -> Vec<String> {
        policy
            .scopes_for_groups(&["eng"])
            .iter()
            .map(|id| policy.scope_names[id].to_string())
            .collect()
    }

    #[test]
    fn a_new_worker_loads_the_base_and_every_delta_after_it() {
        let log = delta("\"1-x\"", "\"2-y\"", 2, &["a"]) + &delta("\"2-y\"", "\"3-z\"", 3, &["b"]);
        let base = || Some(base_value("\"1-x\"", BASE.as_bytes()));
        let (policy, reached) = advance(None, log.as_bytes(), base).unwrap();
        assert_eq!((policy.version, reached.as_str()), (3, "\"3-z\""));
        assert_eq!(mapped(&policy), ["b"]);
        // Nothing logged yet: the base alone.
        let (policy, reached) = advance(None, b"", base).unwrap();
        assert_eq!((policy.version, reached.as_str()), (1, "\"1-x\""));
    }

    #[test]
    fn a_worker_applies_only_the_deltas_after_its_own_version() {
        let base = Policy::from_json(BASE.as_bytes()).unwrap();
        let (at_two, _) = advance(
            Some((&base, "\"1-x\"")),
            delta("\"1-x\"", "\"2-y\"", 2, &["a"]).as_bytes(),
            || panic!("the base is not read"),
        )
        .unwrap();
        let log =
            delta("\"1-x\"", "\"2-y\"", 2, &["a"]) + &delta("\"2-y\"", "\"3-z\"", 3, &["a", "b"]);
        let (policy, reached) = advance(Some((&at_two, "\"2-y\"")), log.as_bytes(), || {
            panic!("the base is not read")
        })
        .unwrap();
        assert_eq!((policy.version, reached.as_str()), (3, "\"3-z\""));
        assert_eq!(mapped(&policy), ["a", "b"]);
        // A version the log does not continue (a new base was written): the base is read.
        let (policy, _) = advance(Some((&at_two, "\"9-q\"")), log.as_bytes(), || {
            Some(base_value("\"1-x\"", BASE.as_bytes()))
        })
        .unwrap();
        assert_eq!(policy.version, 3);
    }

    #[test]
    fn broken_or_bad_deltas_are_refused() {
        let base = || Some(base_value("\"1-x\"", BASE.as_bytes()));
        // A gap in the chain.
        let log = delta("\"1-x\"", "\"2-y\"", 2, &["a"]) + &delta("\"7-q\"", "\"8-r\"", 8, &["b"]);
        assert!(advance(None, log.as_bytes(), base)
            .unwrap_err()
            .contains("does not follow"));
        // A delta that does not fit: an unknown scope.
        let log = delta("\"1-x\"", "\"2-y\"", 2, &["ghost"]);
        let error = advance(None, log.as_bytes(), base).unwrap_err();
        assert!(error.contains("unknown scope"), "{error}");
        // Not JSON, and a base without its ETag line.
        assert!(advance(None, b"{nope\n", base)
            .unwrap_err()
            .starts_with("deltas:"));
        let error = advance(None, b"", || Some(BASE.as_bytes().to_vec())).unwrap_err();
        assert!(error.contains("no ETag line"), "{error}");
        assert!(advance(None, b"", || None).unwrap_err().contains("empty"));
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
