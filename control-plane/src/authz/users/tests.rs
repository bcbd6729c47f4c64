use serde_json::json;

use super::*;

fn file(users: serde_json::Value) -> String {
    json!({ "users": users }).to_string()
}

#[test]
fn a_users_file_gives_users_with_their_hashes() {
    let hash = hash_password("alice-password").unwrap();
    let read = read_users_file(
        &file(json!([
            {"username": "alice", "password_hash": hash, "groups": ["engineering"], "display_name": "Alice"},
            {"username": "ci.bot@example", "password_hash": hash, "disabled": true},
        ])),
        7,
    )
    .unwrap();
    assert_eq!(read.len(), 2);
    let (alice, stored) = &read[0];
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.groups, ["engineering"]);
    assert_eq!(alice.display_name.as_deref(), Some("Alice"));
    assert!(!alice.disabled);
    assert_eq!(alice.created_at, 7);
    assert!(verify_password(Some(stored), "alice-password"));
    assert!(read[1].0.disabled && read[1].0.groups.is_empty());
}

#[test]
fn mistakes_in_a_users_file_name_the_entry() {
    let hash = hash_password("x-password").unwrap();
    for (users, why) in [
        (
            json!([{"username": "a b", "password_hash": hash}]),
            "users[0].username",
        ),
        (
            json!([{"username": "a", "password_hash": hash}, {"username": "a", "password_hash": hash}]),
            "users[1].username: a is listed twice",
        ),
        (
            json!([{"username": "a", "password_hash": "hunter2"}]),
            "users[0].password_hash",
        ),
        (
            json!([{"username": "a", "password_hash": "$argon2id$broken"}]),
            "not an argon2 hash",
        ),
        (
            json!([{"username": "a", "password_hash": hash, "groups": ["bad\u{7}group"]}]),
            "users[0].groups",
        ),
        (
            json!([{"username": "a", "password_hash": hash, "display_name": "a\u{1}"}]),
            "display_name",
        ),
        (
            json!([{"username": "a", "password": "plain"}]),
            "unknown field `password`",
        ),
    ] {
        let err = read_users_file(&file(users.clone()), 0).unwrap_err();
        assert!(err.contains(why), "{users}: {err}");
    }
    assert!(read_users_file("[]", 0).is_err());
    assert!(read_users_file("{\"users\": [], \"more\": 1}", 0).is_err());
    assert_eq!(read_users_file("{\"users\": []}", 0).unwrap().len(), 0);
}

#[test]
fn passwords_verify_against_their_hash_only() {
    let hash = hash_password("correct horse").unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(!hash.contains("correct"));
    assert!(verify_password(Some(&hash), "correct horse"));
    assert!(!verify_password(Some(&hash), "correct horsE"));
    assert!(!verify_password(None, "correct horse"), "unknown user");
    assert!(!verify_password(Some("not a hash"), "x"));
    assert!(
        PasswordHash::new(DUMMY_HASH).is_ok(),
        "the dummy hash parses"
    );
}

#[test]
fn usernames_are_plain() {
    assert!(valid_username("alice"));
    assert!(valid_username("a.b-c_d@example.com"));
    assert!(!valid_username(""));
    assert!(!valid_username("a b"));
    assert!(!valid_username("<script>"));
    assert!(!valid_username(&"a".repeat(65)));
}
