//! `/api/keys`: minted once, stored hashed, in the snapshot, revoked by DELETE.

use serde_json::json;

use crate::common::*;

both_backends!(
    api_keys_are_minted_hashed_and_revoked,
    bad_api_key_requests_change_nothing
);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn api_keys_are_minted_hashed_and_revoked(b: Backend) {
    let t = app(&b).await;
    t.admin(
        "PUT",
        "/api/scopes/ci",
        Some(json!({"grants": [{"server": "*", "methods": ["tools/list"]}]})),
    )
    .await
    .ok(201);
    let created = t
        .admin(
            "POST",
            "/api/keys",
            Some(json!({"name": "ci-bot", "groups": ["ci"], "scopes": ["ci"]})),
        )
        .await
        .ok(201);
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("pck_") && key.len() >= 40, "{key}");
    assert_eq!(created["subject"], "api-key:ci-bot");
    assert!(created.get("sha256").is_none());

    // Listed without the key or its hash.
    let list = t.admin("GET", "/api/keys", None).await;
    let listed = list.ok(200);
    assert_eq!(listed["keys"][0]["name"], "ci-bot");
    assert!(
        !list.text.contains(&key) && !list.text.contains("sha256"),
        "{}",
        list.text
    );

    // In the snapshot as its SHA-256, and it verifies with the filter's code.
    let published = t.state.publisher.rebuild().await.unwrap();
    let body = published.body().await.unwrap();
    let snapshot: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        !String::from_utf8_lossy(&body).contains(&key),
        "never the key itself"
    );
    assert_eq!(snapshot["api_keys"][0]["name"], "ci-bot");
    let identity = published
        .policy
        .verify_api_key(&key, now())
        .expect("the key verifies");
    assert_eq!(identity.subject, "api-key:ci-bot");
    assert!(published
        .policy
        .verify_api_key("pck_not-the-key", now())
        .is_err());

    // Revoked: gone from the next snapshot.
    t.admin("DELETE", "/api/keys/ci-bot", None).await.ok(204);
    t.admin("DELETE", "/api/keys/ci-bot", None).await.error(404);
    let published = t.state.publisher.rebuild().await.unwrap();
    assert!(published.policy.verify_api_key(&key, now()).is_err());
    assert_eq!(
        t.admin("GET", "/api/keys", None).await.ok(200)["keys"],
        json!([])
    );
}

async fn bad_api_key_requests_change_nothing(b: Backend) {
    let t = app(&b).await;
    t.admin("POST", "/api/keys", Some(json!({"name": "ok"})))
        .await
        .ok(201);
    let past = now() as i64 - 10;
    for (body, status, mention) in [
        (json!({"name": "ok"}), 409, "ci"),
        (json!({"name": "x", "scopes": ["nope"]}), 422, "scopes"),
        (json!({"name": "x", "expires_at": past}), 422, "expires_at"),
        (json!({"name": "has space"}), 422, "name"),
        (json!({"name": "x", "subject": "a\nb"}), 422, "subject"),
        (json!({"name": "x", "key": "chosen-by-me"}), 400, "key"),
    ] {
        let msg = t
            .admin("POST", "/api/keys", Some(body.clone()))
            .await
            .error(status);
        if status != 409 {
            assert!(msg.contains(mention), "{body}: {msg}");
        }
    }
    t.call(
        "POST",
        "/api/keys",
        Some(&token("eve", &["eng"])),
        Some(json!({"name": "y"})),
    )
    .await
    .error(403);
    t.call("GET", "/api/keys", None, None).await.error(401);
    let keys = t.admin("GET", "/api/keys", None).await.ok(200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
}
