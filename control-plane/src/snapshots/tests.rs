use serde_json::json;

use super::{content_hash, etag};

#[test]
fn hash_ignores_the_version_and_changes_with_content() {
    let mut a = json!({"format": 1, "version": 3, "servers": [{"name": "a"}]});
    let mut b = json!({"format": 1, "version": 9, "servers": [{"name": "a"}]});
    let mut c = json!({"format": 1, "version": 3, "servers": [{"name": "b"}]});
    let (ha, hb, hc) = (
        content_hash(&mut a),
        content_hash(&mut b),
        content_hash(&mut c),
    );
    assert_eq!(ha, hb);
    assert_ne!(ha, hc);
    assert_eq!(ha.len(), 64);
    assert!(
        a.get("version").is_none(),
        "the version is removed before hashing"
    );
}

#[test]
fn etag_is_quoted_version_and_hash_prefix() {
    assert_eq!(etag(7, "0123456789abcdef0123"), "\"7-0123456789abcdef\"");
}
