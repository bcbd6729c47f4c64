use policy::snapshot::{ServerSpec, Snapshot};
use sha2::Digest as _;

use super::{content_hash, etag};

fn snapshot(version: u64, server: &str) -> Snapshot {
    let mut s: Snapshot = serde_json::from_str(r#"{"format": 1, "version": 0}"#).unwrap();
    s.version = version;
    s.servers.push(ServerSpec {
        name: server.into(),
        path_prefix: format!("/{server}"),
        resource: format!("https://gw/{server}/mcp"),
        resource_metadata: format!("https://gw/.well-known/oauth-protected-resource/{server}/mcp"),
        scopes_supported: Vec::new(),
    });
    s
}

#[test]
fn hash_ignores_the_version_and_changes_with_content() {
    let (mut a, mut b, mut c) = (snapshot(3, "a"), snapshot(9, "a"), snapshot(3, "b"));
    let (ha, hb, hc) = (
        content_hash(&mut a).unwrap().0,
        content_hash(&mut b).unwrap().0,
        content_hash(&mut c).unwrap().0,
    );
    assert_eq!(ha, hb);
    assert_ne!(ha, hc);
    assert_eq!(ha.len(), 64);
    assert_eq!((a.version, b.version), (3, 9), "the version is kept");
    // The hash is of the bytes as written (with version 0): nothing but the snapshot's content.
    let mut zero = snapshot(0, "a");
    let written = serde_json::to_vec(&zero).unwrap();
    assert_eq!(
        content_hash(&mut zero).unwrap().0,
        super::hex(&sha2::Sha256::digest(&written))
    );
}

#[test]
fn etag_is_quoted_version_and_hash_prefix() {
    assert_eq!(etag(7, "0123456789abcdef0123"), "\"7-0123456789abcdef\"");
}

#[test]
fn body_with_version_is_the_snapshot_as_written() {
    for version in [0, 7, 12_345, u64::MAX] {
        let mut s = snapshot(0, "a");
        let unversioned = serde_json::to_vec(&s).unwrap();
        s.version = version;
        assert_eq!(
            super::with_version(unversioned, &s).unwrap(),
            serde_json::to_vec(&s).unwrap(),
            "version {version}"
        );
    }
    // Bytes that do not start as written are written again, not patched.
    let s = snapshot(4, "a");
    assert_eq!(
        super::with_version(b"{}".to_vec(), &s).unwrap(),
        serde_json::to_vec(&s).unwrap()
    );
}
