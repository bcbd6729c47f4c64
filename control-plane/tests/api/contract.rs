//! The OpenAPI document (`/api/openapi.json`) is the contract: these tests hold it to the
//! handlers' own types (query parameters and body fields are the fields their `Deserialize`
//! reads) and to what the server answers (every error an operation gives is documented for it,
//! as the API's JSON error). `scripts/schemathesis.sh` then tries it with generated requests
//! against a real server.

use axum::http::header;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::common::*;
use crate::sync::SYNC_TOKEN;

/// The field names a derived `Deserialize` of a struct reads (its `FIELDS`, renames applied):
/// asked of a deserializer that records them and stops.
fn fields_of<T: DeserializeOwned>() -> Vec<&'static str> {
    #[derive(Debug)]
    struct Stop(Option<&'static [&'static str]>);
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Stop {
            Stop(None)
        }
    }
    struct Recorder;
    impl<'de> serde::Deserializer<'de> for Recorder {
        type Error = Stop;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop(None))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            Err(Stop(Some(fields)))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    match T::deserialize(Recorder) {
        Err(Stop(Some(fields))) => {
            let mut v = fields.to_vec();
            v.sort_unstable();
            v
        }
        _ => panic!("{} is not a struct", std::any::type_name::<T>()),
    }
}

async fn document() -> Value {
    let t = app(&Backend::Sqlite).await;
    t.call("GET", "/api/openapi.json", None, None).await.ok(200)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn sorted_keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Every parameter of an operation (its path item's and its own).
fn parameters<'a>(doc: &'a Value, path: &str, method: &str) -> Vec<&'a Value> {
    let item = &doc["paths"][path];
    let mut all: Vec<&Value> = Vec::new();
    for list in [&item["parameters"], &item[method]["parameters"]] {
        all.extend(list.as_array().into_iter().flatten());
    }
    all
}

fn query_names<'a>(doc: &'a Value, path: &str, method: &str) -> Vec<&'a str> {
    let mut names: Vec<&str> = parameters(doc, path, method)
        .into_iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    names
}

fn json_body<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    let schema =
        &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    assert!(!schema.is_null(), "{method} {path} has no JSON body");
    let schema = resolve(doc, schema);
    assert_eq!(
        schema["additionalProperties"], false,
        "{method} {path}: the handlers refuse unknown fields; the schema must say so"
    );
    schema
}

#[tokio::test]
async fn parameters_and_bodies_are_the_handlers_types() {
    use portcullis::http::api::{access, audit, connect_config, keys, servers, sync};
    let doc = document().await;
    // Query parameters: exactly the fields of each handler's query type.
    for (path, fields) in [
        ("/api/servers", fields_of::<servers::ListQuery>()),
        (
            "/api/servers/{path}/connect-config",
            fields_of::<connect_config::ConnectQuery>(),
        ),
        (
            "/api/servers/{prefix}/{name}/connect-config",
            fields_of::<connect_config::ConnectQuery>(),
        ),
        ("/api/audit", fields_of::<audit::AuditParams>()),
        ("/v1/policy", fields_of::<sync::PolicyQuery>()),
    ] {
        assert_eq!(query_names(&doc, path, "get"), fields, "GET {path}");
    }
    // JSON bodies: exactly the fields of each handler's body type.
    let bodies = [
        (
            "/api/servers/register",
            "post",
            fields_of::<servers::ServerBody>(),
        ),
        (
            "/api/servers/{path}",
            "put",
            fields_of::<servers::ServerBody>(),
        ),
        (
            "/api/servers/{path}",
            "patch",
            fields_of::<servers::ServerPatch>(),
        ),
        (
            "/api/servers/{prefix}/{name}",
            "put",
            fields_of::<servers::ServerBody>(),
        ),
        (
            "/api/servers/{prefix}/{name}",
            "patch",
            fields_of::<servers::ServerPatch>(),
        ),
        ("/api/keys", "post", fields_of::<keys::NewKey>()),
        (
            "/api/users/{username}",
            "put",
            fields_of::<portcullis::http::api::users::PutUser>(),
        ),
        (
            "/api/oauth-clients",
            "post",
            fields_of::<portcullis::authz::server::NewClient>(),
        ),
        (
            "/api/oauth-clients/{client_id}/status",
            "put",
            fields_of::<portcullis::http::api::users::ClientStatus>(),
        ),
        // A metadata document: any JSON object, these are the members the server reads
        // (`authz::cimd::parse_document`); others are kept.
        (
            "/api/oauth-clients/cimd",
            "post",
            vec![
                "client_id",
                "client_name",
                "grant_types",
                "redirect_uris",
                "token_endpoint_auth_method",
            ],
        ),
        (
            "/api/scopes/{name}",
            "put",
            fields_of::<access::ScopeBody>(),
        ),
        (
            "/api/group-mappings/{group}",
            "put",
            fields_of::<access::MappingBody>(),
        ),
        (
            "/v1/audit",
            "post",
            fields_of::<portcullis::audit::AuditBatch>(),
        ),
    ];
    for (path, method, fields) in &bodies {
        if *path == "/api/oauth-clients/cimd" {
            // A metadata document keeps members it does not read (client_uri, logo_uri, ...).
            let schema =
                &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
            assert!(schema["additionalProperties"].is_null(), "{schema}");
            assert_eq!(&sorted_keys(&schema["properties"]), fields);
            continue;
        }
        let schema = json_body(&doc, path, method);
        assert_eq!(
            &sorted_keys(&schema["properties"]),
            fields,
            "{method} {path}"
        );
    }
    // Every operation with a body is in the list above.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("requestBody").is_some() {
                assert!(
                    bodies.iter().any(|(p, m, _)| p == path && m == method),
                    "{method} {path}: a body this test does not check"
                );
            }
        }
    }
    // The register form: the fields the form reader takes.
    let form = &doc["paths"]["/api/servers/register"]["post"]["requestBody"]["content"]
        ["application/x-www-form-urlencoded"]["schema"]["properties"];
    let mut form_fields = servers::FORM_FIELDS.to_vec();
    form_fields.sort_unstable();
    assert_eq!(sorted_keys(form), form_fields);
}

/// Each (method, path template) and a concrete URI for it.
fn operations(doc: &Value) -> Vec<(String, String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path
            .replace("{path}", "github")
            .replace("{prefix}/{name}", "team/docs")
            .replace("{name}", "x")
            .replace("{group}", "g")
            .replace("{username}", "alice")
            .replace("{client_id}", "pc_example")
            .replace("{issuer_path}", "realms/acme");
        for method in item.as_object().unwrap().keys() {
            if method != "parameters" {
                ops.push((method.clone(), path.clone(), uri.clone()));
            }
        }
    }
    ops
}

fn documented(doc: &Value, path: &str, method: &str, status: u16) -> bool {
    let responses = &doc["paths"][path][method]["responses"];
    let answer = &responses[status.to_string()];
    if answer.is_null() {
        return false;
    }
    if status >= 400 {
        assert_eq!(
            answer["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
            "{method} {path} {status}"
        );
    }
    true
}

/// The errors the extractors give — a wrong content type, an array body, a body over the limit,
/// a query value of the wrong type, a parameter that is not UTF-8 — for every operation that
/// can give them: each is JSON and documented for that operation.
#[tokio::test]
async fn every_error_the_extractors_give_is_documented() {
    let t = app_with(&Backend::Sqlite, |c| {
        c.sync_token_sha256 = Some(portcullis::config::sha256(SYNC_TOKEN.as_bytes()));
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/team/docs", &[]).await;
    let doc = t.call("GET", "/api/openapi.json", None, None).await.ok(200);
    let mut checked = 0;
    for (method, path, uri) in operations(&doc) {
        let token = if path.starts_with("/v1/") {
            SYNC_TOKEN
        } else {
            ADMIN_TOKEN
        };
        let op = &doc["paths"][&path][&method];
        let mut cases: Vec<(u16, String, Option<&str>, Vec<u8>)> = Vec::new();
        if op.get("requestBody").is_some() {
            let limit = t.config.max_body_bytes.max(8 * 1024 * 1024) + 1;
            cases.push((415, uri.clone(), Some("text/plain"), b"{}".to_vec()));
            cases.push((
                415,
                uri.clone(),
                Some("application/vnd.api+json"),
                b"{}".to_vec(),
            ));
            cases.push((400, uri.clone(), Some("application/json"), b"[]".to_vec()));
            cases.push((
                413,
                uri.clone(),
                Some("application/json"),
                vec![b' '; limit],
            ));
        }
        for p in parameters(&doc, &path, &method) {
            if p["in"] != "query" {
                continue;
            }
            let name = p["name"].as_str().unwrap();
            cases.push((400, format!("{uri}?{name}=%FF"), None, Vec::new()));
            if p["schema"]["type"] == "integer" {
                cases.push((400, format!("{uri}?{name}=x"), None, Vec::new()));
            }
        }
        cases.push((400, format!("{uri}?no_such_parameter=1"), None, Vec::new()));
        for (want, uri, content_type, body) in cases {
            // Parameters are read by the operations that take them; the others ignore them.
            let takes_query = !parameters(&doc, &path, &method)
                .iter()
                .all(|p| p["in"] != "query");
            if uri.contains("no_such_parameter") && !takes_query {
                continue;
            }
            let mut b = axum::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"));
            if let Some(ct) = content_type {
                b = b.header(header::CONTENT_TYPE, ct);
            }
            let a = t.send(b.body(axum::body::Body::from(body)).unwrap()).await;
            assert_eq!(
                a.status.as_u16(),
                want,
                "{method} {uri} ({content_type:?}): {}",
                a.text
            );
            a.error(want);
            assert!(
                documented(&doc, &path, &method, want),
                "{method} {path} answers {want} ({}), undocumented",
                a.text
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "{checked}");
}

/// Every error status in the document is the JSON error, and every operation that needs a
/// credential documents 401.
#[tokio::test]
async fn documented_errors_are_json_errors() {
    let doc = document().await;
    for (method, path, _) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        for status in op["responses"].as_object().unwrap().keys() {
            let status: u16 = status.parse().unwrap();
            documented(&doc, &path, &method, status);
        }
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            assert!(documented(&doc, &path, &method, 401), "{method} {path}");
        }
    }
}
