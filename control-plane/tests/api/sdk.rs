//! The official MCP TypeScript SDK discovers our metadata: two servers on one host each get
//! their own `resource`, and the authorization-server metadata is found at the issuer's
//! path-inserted location on our host.

use std::path::PathBuf;

use axum::Json;
use serde_json::{json, Value};

use crate::common::*;

fn node_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PORTCULLIS_NODE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/node"),
        PathBuf::from,
    );
    let sdk = dir.join("node_modules/@modelcontextprotocol/sdk/dist/esm/client/auth.js");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if sdk.is_file() && node_ok {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "node or the MCP SDK is missing ({}); run scripts/setup.sh",
            sdk.display()
        );
    }
    eprintln!("\n!!! SKIPPING the MCP SDK discovery test: node or {} is missing (bash scripts/setup.sh) !!!\n", sdk.display());
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_sdk_discovers_two_servers_on_one_host() {
    let Some(node_dir) = node_dir() else { return };

    // Our listener first: the public URL and the issuer live on it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{origin}/realms/acme");

    // The IdP's discovery document is served elsewhere; we mirror it on our host.
    let idp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp_addr = idp.local_addr().unwrap();
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
        "response_types_supported": ["code"],
    });
    let served = doc.clone();
    let idp_app = axum::Router::new().route(
        "/discovery",
        axum::routing::get(move || {
            let d = served.clone();
            async move { Json(d) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(idp, idp_app).await;
    });

    let (origin2, issuer2) = (origin.clone(), issuer.clone());
    let t = app_with(&Backend::Sqlite, move |c| {
        c.public_url = Some(origin2);
        let idp = c.idp.as_mut().unwrap();
        idp.issuer = issuer2;
        idp.discovery_url = format!("http://{idp_addr}/discovery");
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/team/docs", &[("append_mcp_path", "false")])
        .await;
    let app = t.app.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let github = format!("{origin}/github/mcp");
    let docs = format!("{origin}/team/docs");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/discover.mjs");
    let args = vec![issuer.clone(), github.clone(), docs.clone()];
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .args(args)
            .env("PORTCULLIS_NODE_DIR", node_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["prm"][&github]["resource"], github);
    assert_eq!(v["prm"][&docs]["resource"], docs);
    for url in [&github, &docs] {
        assert_eq!(v["prm"][url]["authorization_servers"], json!([issuer]));
    }
    assert_eq!(v["as"]["issuer"], issuer);
    assert_eq!(
        v["as"]["authorization_endpoint"],
        doc["authorization_endpoint"]
    );
    assert_eq!(v["as"]["code_challenge_methods_supported"], json!(["S256"]));
}
