//! The operator examples in `examples/` (plain Envoy, Istio, Envoy Gateway) stay well-formed.
//!
//! There is no Kubernetes here, so nothing is applied to a cluster. What this checks instead:
//! every `.yaml`/`.yml`/`.json` file parses (all documents of a multi-document file); every
//! Kubernetes object has `apiVersion`, `kind`, `metadata.name` and the fields its kind needs;
//! every Portcullis plugin configuration (in an Envoy `PluginConfig`, a `WasmPlugin`'s
//! `pluginConfig`, an `EnvoyExtensionPolicy`'s `wasm[].config`, also inside YAML carried in a
//! string such as a Secret's bootstrap fragment) has one of the three documented shapes, with the
//! fields the filter accepts (`"hold"` is `"request"` or `"body"`); within one example directory,
//! the filters and the sync singleton share a `vm_id` (a WasmPlugin's is the empty one: istiod
//! sets none; an EnvoyExtensionPolicy's is the one Envoy Gateway generates); every HTTP filter
//! that holds the whole request (`"hold": "request"`, the default) gets
//! `allow_on_headers_stop_iteration: true` one way or another, and a WasmPlugin or
//! EnvoyExtensionPolicy filter, which cannot, says `"hold": "body"` unless an EnvoyPatchPolicy
//! sets it; every Envoy HTTP filter has `failure_policy: FAIL_RELOAD` and nothing fails open (no
//! `fail_open: true`, WasmPlugin `failStrategy: FAIL_OPEN` or EnvoyExtensionPolicy
//! `failOpen: true`); the READMEs' relative links lead to files that exist. The shipped
//! `envoy/*.yaml` get the same checks.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// One thing wrong with an example, and where.
#[derive(Debug, Clone, PartialEq)]
struct Problem {
    at: String,
    what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

fn problem(at: &str, what: impl Into<String>) -> Problem {
    Problem {
        at: at.to_owned(),
        what: what.into(),
    }
}

/// The role a Portcullis plugin configuration gives the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `{"snapshot": {...}}`: HTTP filter with an inline policy.
    StaticFilter,
    /// `{"shared_snapshot": true, "audit": bool}`: HTTP filter reading the singleton's data.
    DynamicFilter,
    /// `{"sync": {"cluster": ..., ...}}`: the bootstrap singleton.
    Singleton,
}

/// What the HTTP filter holds while it decides a body (the plugin's `"hold"`; the filter's
/// `config::Hold`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Hold {
    /// Everything, headers included (the default): needs `allow_on_headers_stop_iteration`.
    #[default]
    Request,
    /// The body only: the headers go on once the credential is checked.
    Body,
}

/// A plugin configuration the filter would accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plugin {
    role: Role,
    /// Meaningful for the two filter roles; the singleton has none.
    hold: Hold,
}

/// How one HTTP filter of an example is declared, for the checks over the real examples.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FilterFound {
    at: String,
    /// `Envoy` for a wasm `PluginConfig` written out (plain Envoy, EnvoyFilter), else the CRD kind.
    declared_by: String,
    role: Role,
    hold: Hold,
    /// Whether the Envoy config sets `allow_on_headers_stop_iteration: true` itself (a
    /// patch from an EnvoyPatchPolicy is counted in `patched_filters`).
    stop_iteration: bool,
}

/// What a walk over one example directory found, for the checks that span files.
#[derive(Debug, Default)]
struct Findings {
    problems: Vec<Problem>,
    /// Kubernetes kinds seen, for the listing and the "did the checks run" guard.
    kinds: Vec<String>,
    /// `vm_id`s of dynamic HTTP filters, explicit or derived from an EnvoyExtensionPolicy.
    filter_vm_ids: Vec<(String, String)>,
    /// `vm_id`s of sync singletons.
    singleton_vm_ids: Vec<(String, String)>,
    /// HTTP filters that Envoy Gateway generates with `"hold": "request"`, by filter name: they
    /// need an EnvoyPatchPolicy to get `allow_on_headers_stop_iteration`.
    generated_filters: Vec<(String, String)>,
    /// Every HTTP filter seen, however declared.
    filters: Vec<FilterFound>,
    /// Filter names an EnvoyPatchPolicy sets `allow_on_headers_stop_iteration: true` on.
    patched_filters: BTreeSet<String>,
}

// ---------------------------------------------------------------------------------------------
// Files and parsing

fn examples_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
}

fn files_with_extensions(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn config_files(dir: &Path) -> Vec<PathBuf> {
    files_with_extensions(dir, &["yaml", "yml", "json"])
}

/// All documents of a YAML (multi-document) or JSON file; empty YAML documents are skipped.
fn parse_documents(name: &str, text: &str) -> Result<Vec<Value>, Problem> {
    if name.ends_with(".json") {
        return serde_json::from_str(text)
            .map(|doc| vec![doc])
            .map_err(|e| problem(name, format!("not valid JSON: {e}")));
    }
    let mut documents = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| {
            problem(
                name,
                format!("document {} is not valid YAML: {e}", index + 1),
            )
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

// ---------------------------------------------------------------------------------------------
// Small accessors

fn get<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn non_empty_str<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(value, path)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn non_empty_array<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Vec<Value>> {
    get(value, path)
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
}

fn require_str(doc: &Value, path: &[&str], at: &str, out: &mut Vec<Problem>) {
    if non_empty_str(doc, path).is_none() {
        out.push(problem(
            at,
            format!("`{}` is missing or empty", path.join(".")),
        ));
    }
}

fn require_array(doc: &Value, path: &[&str], at: &str, out: &mut Vec<Problem>) {
    if non_empty_array(doc, path).is_none() {
        out.push(problem(
            at,
            format!("`{}` must be a non-empty list", path.join(".")),
        ));
    }
}

fn require_object(doc: &Value, path: &[&str], at: &str, out: &mut Vec<Problem>) {
    if !get(doc, path).is_some_and(Value::is_object) {
        out.push(problem(
            at,
            format!("`{}` must be an object", path.join(".")),
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Portcullis plugin configuration

const SYNC_KEYS: [&str; 6] = [
    "cluster",
    "authority",
    "token",
    "poll_seconds",
    "audit_buffer_events",
    "audit_batch_events",
];

/// Checks a plugin configuration against the three documented shapes as the filter's parser
/// (`filter/src/config.rs`) does: it refuses unknown fields, so they are refused here too, and
/// `"audit"`/`"hold"` belong to the two filter roles only.
fn check_plugin_config(config: &Value, at: &str) -> Result<Plugin, Vec<Problem>> {
    let Some(fields) = config.as_object() else {
        return Err(vec![problem(
            at,
            "plugin configuration is not a JSON object",
        )]);
    };
    let roles: Vec<&str> = ["snapshot", "shared_snapshot", "sync"]
        .into_iter()
        .filter(|k| fields.contains_key(*k))
        .collect();
    let role = match roles.as_slice() {
        ["snapshot"] => Role::StaticFilter,
        ["shared_snapshot"] => Role::DynamicFilter,
        ["sync"] => Role::Singleton,
        [] => {
            return Err(vec![problem(
                at,
                "plugin configuration has none of `snapshot`, `shared_snapshot`, `sync`",
            )])
        }
        several => {
            return Err(vec![problem(
                at,
                format!("plugin configuration mixes roles: {several:?}"),
            )])
        }
    };
    let allowed: &[&str] = match role {
        Role::StaticFilter => &["snapshot", "audit", "hold"],
        Role::DynamicFilter => &["shared_snapshot", "audit", "hold"],
        Role::Singleton => &["sync"],
    };
    let mut problems: Vec<Problem> = fields
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| problem(at, format!("unknown plugin configuration field `{k}`")))
        .collect();
    if fields.get("audit").is_some_and(|a| !a.is_boolean()) {
        problems.push(problem(at, "`audit` must be a boolean"));
    }
    let hold = match fields.get("hold") {
        None => Hold::Request,
        Some(Value::String(h)) if h == "request" => Hold::Request,
        Some(Value::String(h)) if h == "body" => Hold::Body,
        Some(other) => {
            problems.push(problem(
                at,
                format!("`hold` must be \"request\" or \"body\", not {other}"),
            ));
            Hold::Request
        }
    };
    match role {
        Role::StaticFilter => {
            if !get(config, &["snapshot", "format"]).is_some_and(Value::is_u64) {
                problems.push(problem(
                    at,
                    "`snapshot` must be a policy snapshot object with a numeric `format`",
                ));
            }
        }
        Role::DynamicFilter => {
            if fields.get("shared_snapshot") != Some(&Value::Bool(true)) {
                problems.push(problem(at, "`shared_snapshot` must be `true`"));
            }
        }
        Role::Singleton => problems.extend(check_sync(&fields["sync"], at)),
    }
    if problems.is_empty() {
        Ok(Plugin { role, hold })
    } else {
        Err(problems)
    }
}

fn check_sync(sync: &Value, at: &str) -> Vec<Problem> {
    let Some(fields) = sync.as_object() else {
        return vec![problem(at, "`sync` must be an object")];
    };
    let mut problems: Vec<Problem> = fields
        .keys()
        .filter(|k| !SYNC_KEYS.contains(&k.as_str()))
        .map(|k| problem(at, format!("unknown `sync` field `{k}`")))
        .collect();
    if non_empty_str(sync, &["cluster"]).is_none() {
        problems.push(problem(
            at,
            "`sync.cluster` (the Envoy cluster of the control plane) is missing or empty",
        ));
    }
    for key in ["authority", "token"] {
        if fields.get(key).is_some_and(|v| !v.is_string()) {
            problems.push(problem(at, format!("`sync.{key}` must be a string")));
        }
    }
    for key in ["poll_seconds", "audit_buffer_events", "audit_batch_events"] {
        if fields
            .get(key)
            .is_some_and(|v| v.as_u64().is_none_or(|n| n == 0))
        {
            problems.push(problem(
                at,
                format!("`sync.{key}` must be a positive integer"),
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Envoy configuration found anywhere in a document

/// Walks a value for Envoy wasm `PluginConfig`s (objects with `vm_config` and `configuration`)
/// and for YAML carried in strings, which it walks in turn.
fn walk_envoy_config(value: &Value, at: &str, findings: &mut Findings) {
    match value {
        Value::Object(fields) => {
            if fields.contains_key("vm_config") && fields.contains_key("configuration") {
                check_envoy_plugin_config(fields, at, findings);
            }
            for (key, child) in fields {
                walk_envoy_config(child, &format!("{at}.{key}"), findings);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                walk_envoy_config(child, &format!("{at}[{index}]"), findings);
            }
        }
        Value::String(text) if text.contains('\n') => {
            // A bootstrap fragment in a Secret, an EnvoyProxy `Merge` value, ...: a multi-line
            // string that is itself a YAML mapping.
            if let Ok(embedded @ Value::Object(_)) = serde_norway::from_str::<Value>(text) {
                walk_envoy_config(&embedded, &format!("{at} (embedded YAML)"), findings);
            }
        }
        _ => {}
    }
}

fn check_envoy_plugin_config(plugin: &Map<String, Value>, at: &str, findings: &mut Findings) {
    let configuration = &plugin["configuration"];
    let Some(text) = non_empty_str(configuration, &["value"]).filter(|_| {
        non_empty_str(configuration, &["@type"])
            .is_some_and(|t| t.ends_with("google.protobuf.StringValue"))
    }) else {
        findings.problems.push(problem(
            at,
            "`configuration` must be a google.protobuf.StringValue with the JSON plugin configuration in `value`",
        ));
        return;
    };
    let config: Value = match serde_json::from_str(text) {
        Ok(config) => config,
        Err(e) => {
            findings.problems.push(problem(
                at,
                format!("`configuration.value` is not JSON: {e}"),
            ));
            return;
        }
    };
    let Plugin { role, hold } =
        match check_plugin_config(&config, &format!("{at}.configuration.value")) {
            Ok(plugin) => plugin,
            Err(problems) => {
                findings.problems.extend(problems);
                return;
            }
        };
    let vm_config = &plugin["vm_config"];
    // Envoy takes a missing `vm_id` as the empty one, and shared data is keyed by it as given:
    // an empty `vm_id` is a key like any other (a WasmPlugin's filter has no other).
    let vm_id = match vm_config.get("vm_id") {
        None => "",
        Some(Value::String(id)) => id.as_str(),
        Some(other) => {
            findings.problems.push(problem(
                at,
                format!("`vm_config.vm_id` must be a string, not {other}"),
            ));
            return;
        }
    };
    if get(vm_config, &["code"]).is_none() {
        findings
            .problems
            .push(problem(at, "`vm_config.code` (the module) is missing"));
    }
    match role {
        Role::Singleton => findings
            .singleton_vm_ids
            .push((at.to_owned(), vm_id.to_owned())),
        Role::StaticFilter | Role::DynamicFilter => {
            let stop_iteration =
                plugin.get("allow_on_headers_stop_iteration") == Some(&Value::Bool(true));
            if hold == Hold::Request && !stop_iteration {
                findings.problems.push(problem(
                    at,
                    "HTTP filter holding the whole request (`\"hold\": \"request\"`, the default) without `allow_on_headers_stop_iteration: true`: every POST would hang; set it, or `\"hold\": \"body\"`",
                ));
            }
            check_failure_policy(plugin, at, findings);
            if role == Role::DynamicFilter {
                findings
                    .filter_vm_ids
                    .push((at.to_owned(), vm_id.to_owned()));
            }
            findings.filters.push(FilterFound {
                at: at.to_owned(),
                declared_by: "Envoy".to_owned(),
                role,
                hold,
                stop_iteration,
            });
        }
    }
}

/// An HTTP filter fails closed and comes back: `failure_policy: FAIL_RELOAD` (a crashed VM is
/// reloaded; requests get 503 while it reloads), never `fail_open: true` or `FAIL_OPEN`.
fn check_failure_policy(plugin: &Map<String, Value>, at: &str, findings: &mut Findings) {
    if plugin.get("fail_open") == Some(&Value::Bool(true)) {
        findings.problems.push(problem(
            at,
            "HTTP filter with `fail_open: true`: a crashed filter would let every request through unchecked",
        ));
    }
    match plugin.get("failure_policy").and_then(Value::as_str) {
        Some("FAIL_RELOAD") => {}
        Some(other) => findings.problems.push(problem(
            at,
            format!("HTTP filter with `failure_policy: {other}`; use FAIL_RELOAD"),
        )),
        None => findings.problems.push(problem(
            at,
            "HTTP filter without `failure_policy: FAIL_RELOAD`: a crashed VM would stay dead (503 for everyone on its worker)",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes objects

fn is_kubernetes_object(doc: &Value) -> bool {
    ["apiVersion", "kind", "metadata"]
        .iter()
        .any(|k| doc.get(k).is_some())
}

/// Checks one document: Kubernetes object fields when it is one, Envoy/Portcullis config
/// wherever it appears.
fn check_document(doc: &Value, at: &str, findings: &mut Findings) {
    if is_kubernetes_object(doc) {
        check_kubernetes_object(doc, at, findings);
    }
    walk_envoy_config(doc, at, findings);
}

fn check_kubernetes_object(doc: &Value, at: &str, findings: &mut Findings) {
    let mut problems = Vec::new();
    require_str(doc, &["apiVersion"], at, &mut problems);
    require_str(doc, &["kind"], at, &mut problems);
    require_str(doc, &["metadata", "name"], at, &mut problems);
    let api_version = non_empty_str(doc, &["apiVersion"]).unwrap_or_default();
    let kind = non_empty_str(doc, &["kind"]).unwrap_or_default();
    let at = &format!(
        "{at} ({kind} {})",
        non_empty_str(doc, &["metadata", "name"]).unwrap_or("?")
    );
    if !kind.is_empty() {
        findings.kinds.push(kind.to_owned());
    }
    match kind {
        "WasmPlugin" => {
            require_str(doc, &["spec", "url"], at, &mut problems);
            if non_empty_str(doc, &["spec", "failStrategy"]) == Some("FAIL_OPEN") {
                problems.push(problem(
                    at,
                    "`spec.failStrategy: FAIL_OPEN`: a crashed filter would let every request through unchecked",
                ));
            }
            if get(doc, &["spec", "phase"]).is_none() && get(doc, &["spec", "match"]).is_none() {
                problems.push(problem(at, "`spec.phase` or `spec.match` is required"));
            }
            match get(doc, &["spec", "pluginConfig"]) {
                // istiod hands Envoy this Struct as its JSON text (integers stay integers), so
                // it is checked as the JSON it is.
                Some(config) => {
                    match check_plugin_config(config, &format!("{at} spec.pluginConfig")) {
                        Ok(plugin) => check_wasm_plugin_filter(plugin, at, findings, &mut problems),
                        Err(found) => problems.extend(found),
                    }
                }
                None => problems.push(problem(at, "`spec.pluginConfig` is missing")),
            }
        }
        "EnvoyExtensionPolicy" => check_envoy_extension_policy(doc, at, findings, &mut problems),
        "EnvoyPatchPolicy" => check_envoy_patch_policy(doc, at, findings, &mut problems),
        "ServiceEntry" => {
            require_array(doc, &["spec", "hosts"], at, &mut problems);
            require_array(doc, &["spec", "ports"], at, &mut problems);
            for (index, port) in non_empty_array(doc, &["spec", "ports"])
                .into_iter()
                .flatten()
                .enumerate()
            {
                if !port.get("number").is_some_and(Value::is_u64) {
                    problems.push(problem(
                        at,
                        format!("`spec.ports[{index}].number` must be a port number"),
                    ));
                }
                require_str(
                    port,
                    &["name"],
                    &format!("{at} spec.ports[{index}]"),
                    &mut problems,
                );
            }
        }
        "EnvoyFilter" => {
            require_array(doc, &["spec", "configPatches"], at, &mut problems);
            for (index, patch) in non_empty_array(doc, &["spec", "configPatches"])
                .into_iter()
                .flatten()
                .enumerate()
            {
                let at = &format!("{at} spec.configPatches[{index}]");
                require_str(patch, &["applyTo"], at, &mut problems);
                require_str(patch, &["patch", "operation"], at, &mut problems);
            }
        }
        "DestinationRule" => require_str(doc, &["spec", "host"], at, &mut problems),
        "VirtualService" => {
            require_array(doc, &["spec", "hosts"], at, &mut problems);
            if ["http", "tcp", "tls"]
                .iter()
                .all(|k| non_empty_array(doc, &["spec", k]).is_none())
            {
                problems.push(problem(
                    at,
                    "`spec.http`, `spec.tcp` or `spec.tls` routes are required",
                ));
            }
        }
        "Gateway" if api_version.starts_with("networking.istio.io/") => {
            require_array(doc, &["spec", "servers"], at, &mut problems);
        }
        "Gateway" => {
            require_str(doc, &["spec", "gatewayClassName"], at, &mut problems);
            require_array(doc, &["spec", "listeners"], at, &mut problems);
        }
        "HTTPRoute" => {
            require_array(doc, &["spec", "parentRefs"], at, &mut problems);
            require_array(doc, &["spec", "rules"], at, &mut problems);
        }
        "ReferenceGrant" => {
            require_array(doc, &["spec", "from"], at, &mut problems);
            require_array(doc, &["spec", "to"], at, &mut problems);
        }
        "ClientTrafficPolicy" => require_target(doc, at, &mut problems),
        "EnvoyProxy" => check_envoy_proxy(doc, at, &mut problems),
        "Secret" | "ConfigMap" => require_any(
            doc,
            &["data", "stringData", "binaryData"],
            at,
            &mut problems,
        ),
        "Deployment" => require_array(
            doc,
            &["spec", "template", "spec", "containers"],
            at,
            &mut problems,
        ),
        _ => {}
    }
    findings.problems.extend(problems);
}

/// A WasmPlugin's filter: istiod writes no `allow_on_headers_stop_iteration` and no `vm_id`
/// (`buildWasmConfig`/`buildVMConfig` in istio/istio `pilot/pkg/model/extensions.go`), so the
/// filter must hold the body only, and runs with the empty `vm_id`.
fn check_wasm_plugin_filter(
    plugin: Plugin,
    at: &str,
    findings: &mut Findings,
    problems: &mut Vec<Problem>,
) {
    match plugin.role {
        Role::Singleton => problems.push(problem(
            at,
            "a WasmPlugin is an HTTP filter; the sync singleton goes into the bootstrap",
        )),
        Role::StaticFilter | Role::DynamicFilter => {
            if plugin.hold != Hold::Body {
                problems.push(problem(
                    at,
                    "a WasmPlugin cannot set `allow_on_headers_stop_iteration`, so its filter must say `\"hold\": \"body\"` (every POST would hang)",
                ));
            }
            if plugin.role == Role::DynamicFilter {
                findings.filter_vm_ids.push((at.to_owned(), String::new()));
            }
            findings.filters.push(FilterFound {
                at: at.to_owned(),
                declared_by: "WasmPlugin".to_owned(),
                role: plugin.role,
                hold: plugin.hold,
                stop_iteration: false,
            });
        }
    }
}

fn require_any(doc: &Value, keys: &[&str], at: &str, problems: &mut Vec<Problem>) {
    if keys.iter().all(|k| doc.get(k).is_none()) {
        problems.push(problem(at, format!("one of {keys:?} is required")));
    }
}

fn require_target(doc: &Value, at: &str, problems: &mut Vec<Problem>) {
    let has_refs = non_empty_array(doc, &["spec", "targetRefs"]).is_some();
    let has_ref = get(doc, &["spec", "targetRef"]).is_some_and(Value::is_object);
    if !has_refs && !has_ref {
        problems.push(problem(
            at,
            "`spec.targetRefs` or `spec.targetRef` is required",
        ));
    }
}

fn check_envoy_extension_policy(
    doc: &Value,
    at: &str,
    findings: &mut Findings,
    problems: &mut Vec<Problem>,
) {
    require_target(doc, at, problems);
    require_array(doc, &["spec", "wasm"], at, problems);
    let namespace = non_empty_str(doc, &["metadata", "namespace"]).unwrap_or("default");
    let name = non_empty_str(doc, &["metadata", "name"]).unwrap_or_default();
    for (index, wasm) in non_empty_array(doc, &["spec", "wasm"])
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = &format!("{at} spec.wasm[{index}]");
        if wasm.get("failOpen") == Some(&Value::Bool(true)) {
            problems.push(problem(
                at,
                "`failOpen: true`: a crashed filter would let every request through unchecked",
            ));
        }
        match non_empty_str(wasm, &["code", "type"]) {
            Some("Image") => require_str(wasm, &["code", "image", "url"], at, problems),
            Some("HTTP") => require_str(wasm, &["code", "http", "url"], at, problems),
            Some(other) => problems.push(problem(
                at,
                format!("unknown `code.type` {other:?} (HTTP or Image)"),
            )),
            None => problems.push(problem(
                at,
                "`code` with a `type` (HTTP or Image) is required",
            )),
        }
        let Some(config) = wasm.get("config") else {
            problems.push(problem(
                at,
                "`config` (the Portcullis plugin configuration) is missing",
            ));
            continue;
        };
        match check_plugin_config(config, &format!("{at}.config")) {
            Ok(Plugin {
                role: Role::Singleton,
                ..
            }) => problems.push(problem(
                at,
                "an EnvoyExtensionPolicy adds HTTP filters; the sync singleton goes into the EnvoyProxy bootstrap",
            )),
            Ok(Plugin { role, hold }) => {
                // Envoy Gateway names the VM and the filter after the policy
                // (irConfigNameForWasm and wasmFilterName in Envoy Gateway 1.9).
                let vm_id = format!("envoyextensionpolicy/{namespace}/{name}/wasm/{index}");
                let filter = format!("envoy.filters.http.wasm/{vm_id}");
                if role == Role::DynamicFilter {
                    findings.filter_vm_ids.push((at.clone(), vm_id));
                }
                // Holding the whole request needs `allow_on_headers_stop_iteration`, which only
                // an EnvoyPatchPolicy can add; holding the body needs nothing.
                if hold == Hold::Request {
                    findings.generated_filters.push((at.clone(), filter));
                }
                findings.filters.push(FilterFound {
                    at: at.clone(),
                    declared_by: "EnvoyExtensionPolicy".to_owned(),
                    role,
                    hold,
                    stop_iteration: false,
                });
            }
            Err(found) => problems.extend(found),
        }
    }
}

fn check_envoy_patch_policy(
    doc: &Value,
    at: &str,
    findings: &mut Findings,
    problems: &mut Vec<Problem>,
) {
    require_target(doc, at, problems);
    require_str(doc, &["spec", "type"], at, problems);
    require_array(doc, &["spec", "jsonPatches"], at, problems);
    for (index, patch) in non_empty_array(doc, &["spec", "jsonPatches"])
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = &format!("{at} spec.jsonPatches[{index}]");
        require_str(patch, &["type"], at, problems);
        require_str(patch, &["name"], at, problems);
        require_str(patch, &["operation", "op"], at, problems);
        let sets_stop_iteration = non_empty_str(patch, &["operation", "path"])
            .is_some_and(|p| p.ends_with("/allow_on_headers_stop_iteration"))
            && get(patch, &["operation", "value"]) == Some(&Value::Bool(true));
        if let (true, Some(json_path)) = (
            sets_stop_iteration,
            non_empty_str(patch, &["operation", "jsonPath"]),
        ) {
            // The filter name is the quoted string in `[?(@.name=='...')]`.
            if let Some(filter) = json_path.split('\'').nth(1) {
                findings.patched_filters.insert(filter.to_owned());
            }
        }
    }
}

fn check_envoy_proxy(doc: &Value, at: &str, problems: &mut Vec<Problem>) {
    require_object(doc, &["spec"], at, problems);
    let Some(bootstrap) = get(doc, &["spec", "bootstrap"]) else {
        return;
    };
    match non_empty_str(bootstrap, &["type"]).unwrap_or("Replace") {
        "JSONPatch" => {
            require_array(bootstrap, &["jsonPatches"], at, problems);
            for (index, patch) in non_empty_array(bootstrap, &["jsonPatches"])
                .into_iter()
                .flatten()
                .enumerate()
            {
                let at = &format!("{at} spec.bootstrap.jsonPatches[{index}]");
                require_str(patch, &["op"], at, problems);
                require_str(patch, &["path"], at, problems);
            }
        }
        "Merge" | "Replace" => require_str(bootstrap, &["value"], at, problems),
        other => problems.push(problem(
            at,
            format!("unknown `spec.bootstrap.type` {other:?}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks across the files of one example directory

fn check_directory_consistency(findings: &mut Findings) {
    let singleton_ids: BTreeSet<&str> = findings
        .singleton_vm_ids
        .iter()
        .map(|(_, id)| id.as_str())
        .collect();
    let mut problems = Vec::new();
    if !singleton_ids.is_empty() {
        for (at, vm_id) in &findings.filter_vm_ids {
            if !singleton_ids.contains(vm_id.as_str()) {
                problems.push(problem(
                    at,
                    format!(
                        "the filter's vm_id {vm_id:?} is not the sync singleton's ({singleton_ids:?}): it would never see a snapshot"
                    ),
                ));
            }
        }
    }
    for (at, filter) in &findings.generated_filters {
        if !findings.patched_filters.contains(filter) {
            problems.push(problem(
                at,
                format!(
                    "the filter holds the whole request (`\"hold\": \"request\"`, the default) but no EnvoyPatchPolicy sets `allow_on_headers_stop_iteration: true` on {filter:?}: every POST would hang; say `\"hold\": \"body\"` or add the patch"
                ),
            ));
        }
    }
    findings.problems.extend(problems);
}

/// Checks a set of config files that belong together (one example directory), then the
/// checks that span them. Returns a line per file for the listing.
fn check_files(files: &[PathBuf], root: &Path) -> (Vec<String>, Findings) {
    let mut findings = Findings::default();
    let mut listing = Vec::new();
    for file in files {
        let name = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let documents = std::fs::read_to_string(file)
            .map_err(|e| problem(&name, format!("unreadable: {e}")))
            .and_then(|text| parse_documents(&name, &text));
        match documents {
            Ok(documents) => {
                let kinds_before = findings.kinds.len();
                for (index, document) in documents.iter().enumerate() {
                    check_document(document, &format!("{name} #{}", index + 1), &mut findings);
                }
                listing.push(format!(
                    "{name}: {} document(s) {:?}",
                    documents.len(),
                    &findings.kinds[kinds_before..]
                ));
            }
            Err(found) => {
                listing.push(format!("{name}: PARSE ERROR"));
                findings.problems.push(found);
            }
        }
    }
    check_directory_consistency(&mut findings);
    (listing, findings)
}

/// The files of each example: every top-level directory of `examples/` (with everything below
/// it) is one, the files directly in `examples/` another.
fn example_groups(root: &Path) -> Vec<Vec<PathBuf>> {
    let mut groups: std::collections::BTreeMap<PathBuf, Vec<PathBuf>> = Default::default();
    for file in config_files(root) {
        let group = file
            .strip_prefix(root)
            .ok()
            .and_then(|relative| relative.components().next())
            .map(|first| root.join(first))
            .filter(|first| first.is_dir())
            .unwrap_or_else(|| root.to_path_buf());
        groups.entry(group).or_default().push(file);
    }
    groups.into_values().collect()
}

// ---------------------------------------------------------------------------------------------
// The tests over the real examples

/// `envoy/demo.yaml` (static filter) and `envoy/bootstrap-xds.yaml` (dynamic filter and
/// singleton), each on its own: the same plugin, filter and failure-policy checks as the examples.
#[test]
fn shipped_envoy_configs_pass_the_same_checks() {
    let root = examples_root().join("..").join("envoy");
    let files = config_files(&root);
    assert!(files.len() >= 2, "envoy/*.yaml: {files:?}");
    let mut plugins = 0;
    for file in files {
        let (listing, findings) = check_files(std::slice::from_ref(&file), &root);
        assert!(
            findings.problems.is_empty(),
            "{}:\n  {}",
            file.display(),
            findings
                .problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
        println!("{}", listing.join("\n"));
        plugins += findings.filter_vm_ids.len() + findings.singleton_vm_ids.len();
    }
    assert!(
        plugins >= 2,
        "the checks found no Portcullis plugin in envoy/"
    );
}

#[test]
fn every_example_file_parses_and_has_the_fields_it_needs() {
    let root = examples_root();
    let files = config_files(&root);
    assert!(
        !files.is_empty(),
        "no .yaml/.yml/.json files under {}: did examples/ move?",
        root.display()
    );
    let mut listing = Vec::new();
    let mut problems = Vec::new();
    let mut kinds = BTreeSet::new();
    let (mut dynamic_filters, mut singletons) = (0, 0);
    for group in example_groups(&root) {
        let (group_listing, findings) = check_files(&group, &root);
        listing.extend(group_listing);
        problems.extend(findings.problems);
        kinds.extend(findings.kinds);
        dynamic_filters += findings.filter_vm_ids.len();
        singletons += findings.singleton_vm_ids.len();
    }
    println!("example files checked:\n  {}", listing.join("\n  "));
    assert!(
        problems.is_empty(),
        "{} problem(s) in examples/:\n  {}\nfiles seen:\n  {}",
        problems.len(),
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  "),
        listing.join("\n  ")
    );
    // The kind-specific and cross-file checks must have had something to check.
    assert!(
        dynamic_filters >= 2 && singletons >= 2,
        "expected the Istio and Envoy Gateway examples to carry a dynamic filter and a sync singleton each; found {dynamic_filters} filter(s), {singletons} singleton(s)"
    );
    for kind in [
        "WasmPlugin",
        "EnvoyFilter",
        "ServiceEntry",
        "EnvoyExtensionPolicy",
        "EnvoyProxy",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} among the examples (kinds seen: {kinds:?}); files seen:\n  {}",
            listing.join("\n  ")
        );
    }
}

/// The findings of one example directory (`istio`, `envoy-gateway`), its problems included.
fn example_findings(directory: &str) -> Findings {
    let root = examples_root();
    let files = config_files(&root.join(directory));
    assert!(!files.is_empty(), "no config files in examples/{directory}");
    check_files(&files, &root).1
}

fn describe(filters: &[FilterFound]) -> String {
    filters
        .iter()
        .map(|f| {
            format!(
                "{}: {} {:?}, hold {:?}, allow_on_headers_stop_iteration {}",
                f.at, f.declared_by, f.role, f.hold, f.stop_iteration
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// The meshes' own CRDs are the primary way in: a WasmPlugin and an EnvoyExtensionPolicy, each
/// holding the body and reading the singleton's snapshot, with no patch for
/// `allow_on_headers_stop_iteration`; Istio's EnvoyFilter stays as the hold-request alternative.
#[test]
fn the_mesh_examples_use_their_own_crds_with_hold_body() {
    let istio = example_findings("istio");
    assert!(istio.problems.is_empty(), "{:?}", istio.problems);
    let wasm_plugins: Vec<&FilterFound> = istio
        .filters
        .iter()
        .filter(|f| f.declared_by == "WasmPlugin")
        .collect();
    assert!(
        wasm_plugins.len() == 1
            && wasm_plugins[0].role == Role::DynamicFilter
            && wasm_plugins[0].hold == Hold::Body,
        "expected one WasmPlugin with the dynamic filter and \"hold\": \"body\":\n  {}",
        describe(&istio.filters)
    );
    assert!(
        istio.filters.iter().any(|f| f.declared_by == "Envoy"
            && f.role == Role::DynamicFilter
            && f.hold == Hold::Request
            && f.stop_iteration),
        "expected the EnvoyFilter alternative holding the whole request with allow_on_headers_stop_iteration:\n  {}",
        describe(&istio.filters)
    );
    assert_eq!(
        istio
            .singleton_vm_ids
            .iter()
            .map(|(_, id)| id.as_str())
            .collect::<Vec<_>>(),
        vec![""],
        "the Istio singleton must run with the WasmPlugin's (empty) vm_id"
    );

    let envoy_gateway = example_findings("envoy-gateway");
    assert!(
        envoy_gateway.problems.is_empty(),
        "{:?}",
        envoy_gateway.problems
    );
    assert!(
        envoy_gateway.filters.len() == 1
            && envoy_gateway.filters[0].declared_by == "EnvoyExtensionPolicy"
            && envoy_gateway.filters[0].role == Role::DynamicFilter
            && envoy_gateway.filters[0].hold == Hold::Body,
        "expected one EnvoyExtensionPolicy filter with \"hold\": \"body\":\n  {}",
        describe(&envoy_gateway.filters)
    );
    assert!(
        envoy_gateway.patched_filters.is_empty(),
        "the Envoy Gateway example should need no EnvoyPatchPolicy for allow_on_headers_stop_iteration: {:?}",
        envoy_gateway.patched_filters
    );
}

#[test]
fn example_readmes_link_to_files_that_exist() {
    let root = examples_root();
    let readmes = files_with_extensions(&root, &["md"]);
    assert!(
        readmes.len() >= 4,
        "expected the READMEs of examples/, envoy/, istio/ and envoy-gateway/, found {readmes:?}"
    );
    let mut broken = Vec::new();
    for readme in &readmes {
        let text = std::fs::read_to_string(readme).expect("README is readable");
        let base = readme.parent().unwrap_or(&root);
        for target in relative_links(&text) {
            if !base.join(&target).exists() {
                broken.push(format!("{}: {target}", readme.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to missing files:\n  {}",
        broken.join("\n  ")
    );
}

/// Targets of Markdown links `[text](target)` that point into the repository.
fn relative_links(markdown: &str) -> Vec<String> {
    markdown
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|target| {
            target
                .split('#')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .filter(|target| {
            !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:")
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The checker catches what it should: small hand-made documents, good and bad.

fn yaml(text: &str) -> Value {
    let documents = parse_documents("test.yaml", text).expect("test YAML parses");
    assert_eq!(documents.len(), 1, "one document expected");
    documents.into_iter().next().unwrap_or_default()
}

fn problems_in(text: &str) -> Vec<String> {
    let mut findings = Findings::default();
    for (index, document) in parse_documents("test.yaml", text)
        .expect("test YAML parses")
        .iter()
        .enumerate()
    {
        check_document(
            document,
            &format!("test.yaml #{}", index + 1),
            &mut findings,
        );
    }
    check_directory_consistency(&mut findings);
    findings.problems.iter().map(ToString::to_string).collect()
}

fn assert_one_problem_mentioning(text: &str, needle: &str) {
    let problems = problems_in(text);
    assert!(
        problems.len() == 1 && problems[0].contains(needle),
        "expected one problem mentioning {needle:?}, got {problems:#?}"
    );
}

const GOOD_WASM_PLUGIN: &str = "
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata: {name: portcullis}
spec:
  url: oci://registry.example.com/portcullis:1
  phase: AUTHN
  pluginConfig: {shared_snapshot: true, audit: true, hold: body}
";

#[test]
fn a_complete_wasm_plugin_passes() {
    assert_eq!(problems_in(GOOD_WASM_PLUGIN), Vec::<String>::new());
}

#[test]
fn a_wasm_plugin_must_hold_the_body() {
    for config in [
        "{shared_snapshot: true, audit: true}",
        "{shared_snapshot: true, hold: request}",
        "{snapshot: {format: 1}}",
    ] {
        let bad =
            GOOD_WASM_PLUGIN.replace("{shared_snapshot: true, audit: true, hold: body}", config);
        assert_one_problem_mentioning(&bad, "must say `\"hold\": \"body\"`");
    }
    let static_policy = GOOD_WASM_PLUGIN.replace(
        "{shared_snapshot: true, audit: true, hold: body}",
        "{snapshot: {format: 1}, hold: body}",
    );
    assert_eq!(problems_in(&static_policy), Vec::<String>::new());
    let singleton = GOOD_WASM_PLUGIN.replace(
        "{shared_snapshot: true, audit: true, hold: body}",
        "{sync: {cluster: c}}",
    );
    assert_one_problem_mentioning(&singleton, "goes into the bootstrap");
}

#[test]
fn a_wasm_plugin_shares_the_empty_vm_id_with_the_singleton() {
    let empty = SINGLETON_SECRET.replace("vm_id: portcullis", "vm_id: \"\"");
    assert_eq!(
        problems_in(&format!("{empty}---{GOOD_WASM_PLUGIN}")),
        Vec::<String>::new()
    );
    // A missing `vm_id` is the empty one to Envoy.
    let missing = SINGLETON_SECRET.replace("            vm_id: portcullis\n", "");
    assert_eq!(
        problems_in(&format!("{missing}---{GOOD_WASM_PLUGIN}")),
        Vec::<String>::new()
    );
    // istiod gives the WasmPlugin's filter no `vm_id`: a named singleton is out of its reach.
    assert_one_problem_mentioning(
        &format!("{SINGLETON_SECRET}---{GOOD_WASM_PLUGIN}"),
        "is not the sync singleton's",
    );
}

#[test]
fn a_wasm_plugin_without_url_is_caught() {
    let bad = GOOD_WASM_PLUGIN.replace("  url: oci://registry.example.com/portcullis:1\n", "");
    assert_one_problem_mentioning(&bad, "`spec.url` is missing");
}

#[test]
fn a_wasm_plugin_without_phase_or_match_is_caught() {
    let bad = GOOD_WASM_PLUGIN.replace("  phase: AUTHN\n", "");
    assert_one_problem_mentioning(&bad, "`spec.phase` or `spec.match`");
}

#[test]
fn a_kubernetes_object_without_api_version_is_caught() {
    let bad = GOOD_WASM_PLUGIN.replace("apiVersion: extensions.istio.io/v1alpha1\n", "");
    assert_one_problem_mentioning(&bad, "`apiVersion` is missing");
}

#[test]
fn a_kubernetes_object_without_a_name_is_caught() {
    let bad = GOOD_WASM_PLUGIN.replace("metadata: {name: portcullis}", "metadata: {namespace: x}");
    assert_one_problem_mentioning(&bad, "`metadata.name` is missing");
}

#[test]
fn an_envoy_extension_policy_without_code_or_target_is_caught() {
    let bad = "
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata: {name: portcullis, namespace: mcp}
spec:
  wasm:
  - name: portcullis
    config: {shared_snapshot: true}
";
    let problems = problems_in(bad);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`spec.targetRefs` or `spec.targetRef`"))
            && problems.iter().any(|p| p.contains("`code` with a `type`")),
        "{problems:#?}"
    );
}

#[test]
fn an_envoy_extension_policy_needs_the_stop_iteration_patch() {
    let policy = "
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata: {name: portcullis, namespace: mcp}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: mcp}]
  wasm:
  - code: {type: HTTP, http: {url: 'https://example.com/p.wasm'}}
    config: {shared_snapshot: true}
";
    assert_one_problem_mentioning(policy, "allow_on_headers_stop_iteration");
    let patched = format!(
        "{policy}---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyPatchPolicy
metadata: {{name: hold, namespace: mcp}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: Gateway, name: mcp}}
  type: JSONPatch
  jsonPatches:
  - type: type.googleapis.com/envoy.config.listener.v3.Listener
    name: mcp/mcp/https
    operation:
      op: add
      jsonPath: \"..http_filters[?(@.name=='envoy.filters.http.wasm/envoyextensionpolicy/mcp/portcullis/wasm/0')]\"
      path: /typed_config/config/allow_on_headers_stop_iteration
      value: true
"
    );
    assert_eq!(problems_in(&patched), Vec::<String>::new());
}

#[test]
fn an_envoy_extension_policy_holding_the_body_needs_no_patch() {
    let policy = "
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata: {name: portcullis, namespace: mcp}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: mcp}]
  wasm:
  - code: {type: HTTP, http: {url: 'https://example.com/p.wasm'}}
    config: {shared_snapshot: true, hold: body}
";
    assert_eq!(problems_in(policy), Vec::<String>::new());
    let request = policy.replace("hold: body", "hold: request");
    assert_one_problem_mentioning(&request, "no EnvoyPatchPolicy sets");
    let singleton = policy.replace(
        "{shared_snapshot: true, hold: body}",
        "{sync: {cluster: c}}",
    );
    assert_one_problem_mentioning(&singleton, "EnvoyProxy bootstrap");
}

#[test]
fn a_service_entry_without_ports_is_caught() {
    let bad = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: portcullis}
spec:
  hosts: [portcullis.example.com]
";
    assert_one_problem_mentioning(bad, "`spec.ports` must be a non-empty list");
}

#[test]
fn an_envoy_filter_without_config_patches_is_caught() {
    let bad = "
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: portcullis}
spec:
  workloadSelector: {labels: {istio: ingressgateway}}
";
    assert_one_problem_mentioning(bad, "`spec.configPatches` must be a non-empty list");
}

#[test]
fn plugin_configurations_must_have_one_documented_shape() {
    let cases = [
        (
            r#"{"shared_snapshot": true, "audit": false}"#,
            Ok((Role::DynamicFilter, Hold::Request)),
        ),
        (
            r#"{"snapshot": {"format": 1}}"#,
            Ok((Role::StaticFilter, Hold::Request)),
        ),
        (
            r#"{"sync": {"cluster": "outbound|8080||portcullis.portcullis.svc.cluster.local", "poll_seconds": 30}}"#,
            Ok((Role::Singleton, Hold::Request)),
        ),
        // What istiod hands Envoy for a WasmPlugin's `pluginConfig` (the Struct as JSON, keys
        // sorted), and what Envoy Gateway hands it for `config`.
        (
            r#"{"audit":true,"hold":"body","shared_snapshot":true}"#,
            Ok((Role::DynamicFilter, Hold::Body)),
        ),
        (
            r#"{"shared_snapshot": true, "hold": "request"}"#,
            Ok((Role::DynamicFilter, Hold::Request)),
        ),
        (
            r#"{"snapshot": {"format": 1}, "audit": true, "hold": "body"}"#,
            Ok((Role::StaticFilter, Hold::Body)),
        ),
        (
            r#"{"shared_snapshot": true, "hold": "Body"}"#,
            Err("`hold` must be \"request\" or \"body\""),
        ),
        (
            r#"{"shared_snapshot": true, "hold": "headers"}"#,
            Err("`hold` must be"),
        ),
        (
            r#"{"shared_snapshot": true, "hold": true}"#,
            Err("`hold` must be"),
        ),
        (
            r#"{"sync": {"cluster": "c"}, "hold": "body"}"#,
            Err("unknown plugin configuration field `hold`"),
        ),
        (r#"{}"#, Err("none of")),
        (
            r#"{"shared_snapshot": true, "sync": {"cluster": "c"}}"#,
            Err("mixes roles"),
        ),
        (r#"{"shared_snapshot": false}"#, Err("must be `true`")),
        (
            r#"{"shared_snapshot": true, "audit": "yes"}"#,
            Err("`audit` must be a boolean"),
        ),
        (
            r#"{"shared_snapshot": true, "shared": true}"#,
            Err("unknown plugin configuration field `shared`"),
        ),
        (r#"{"sync": {"token": "t"}}"#, Err("`sync.cluster`")),
        (
            r#"{"sync": {"cluster": "c", "poll_secs": 5}}"#,
            Err("unknown `sync` field `poll_secs`"),
        ),
        (
            r#"{"sync": {"cluster": "c", "poll_seconds": 0}}"#,
            Err("positive integer"),
        ),
        (r#"{"snapshot": "inline"}"#, Err("policy snapshot object")),
        (r#"["shared_snapshot"]"#, Err("not a JSON object")),
    ];
    for (config, expected) in cases {
        let value: Value = serde_json::from_str(config).expect("case is JSON");
        match (check_plugin_config(&value, "case"), expected) {
            (Ok(plugin), Ok(want)) => assert_eq!((plugin.role, plugin.hold), want, "{config}"),
            (Err(problems), Err(needle)) => assert!(
                problems.iter().any(|p| p.what.contains(needle)),
                "{config}: expected a problem mentioning {needle:?}, got {problems:#?}"
            ),
            (got, want) => panic!("{config}: expected {want:?}, got {got:?}"),
        }
    }
}

const SINGLETON_SECRET: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: bootstrap}
stringData:
  custom_bootstrap.yaml: |
    bootstrap_extensions:
    - name: envoy.bootstrap.wasm
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.wasm.v3.WasmService
        singleton: true
        config:
          vm_config:
            vm_id: portcullis
            code: {local: {filename: /etc/portcullis/wasm/portcullis_filter.wasm}}
          configuration:
            "@type": type.googleapis.com/google.protobuf.StringValue
            value: '{"sync": {"cluster": "outbound|80||portcullis.example.com"}}'
"#;

fn http_filter(vm_id: &str, allow_stop_iteration: bool, config: &str) -> String {
    format!(
        r#"---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: filter}}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    patch:
      operation: INSERT_FIRST
      value:
        typed_config:
          config:
            allow_on_headers_stop_iteration: {allow_stop_iteration}
            failure_policy: FAIL_RELOAD
            vm_config:
              vm_id: {vm_id}
              code: {{local: {{filename: /etc/portcullis/wasm/portcullis_filter.wasm}}}}
            configuration:
              "@type": type.googleapis.com/google.protobuf.StringValue
              value: '{config}'
"#
    )
}

#[test]
fn a_filter_and_singleton_sharing_a_vm_id_pass() {
    let text = format!(
        "{SINGLETON_SECRET}{}",
        http_filter("portcullis", true, r#"{"shared_snapshot": true}"#)
    );
    assert_eq!(problems_in(&text), Vec::<String>::new());
}

#[test]
fn a_filter_on_another_vm_than_the_singleton_is_caught() {
    let text = format!(
        "{SINGLETON_SECRET}{}",
        http_filter("other", true, r#"{"shared_snapshot": true}"#)
    );
    assert_one_problem_mentioning(&text, "is not the sync singleton's");
}

#[test]
fn a_filter_without_stop_iteration_is_caught() {
    for config in [
        r#"{"shared_snapshot": true}"#,
        r#"{"shared_snapshot": true, "hold": "request"}"#,
    ] {
        let text = format!(
            "{SINGLETON_SECRET}{}",
            http_filter("portcullis", false, config)
        );
        assert_one_problem_mentioning(&text, "allow_on_headers_stop_iteration");
    }
}

#[test]
fn a_filter_holding_the_body_needs_no_stop_iteration() {
    for allow_stop_iteration in [false, true] {
        let text = format!(
            "{SINGLETON_SECRET}{}",
            http_filter(
                "portcullis",
                allow_stop_iteration,
                r#"{"shared_snapshot": true, "hold": "body"}"#
            )
        );
        assert_eq!(problems_in(&text), Vec::<String>::new());
    }
    let text = format!(
        "{SINGLETON_SECRET}{}",
        http_filter(
            "portcullis",
            true,
            r#"{"shared_snapshot": true, "hold": "request"}"#
        )
    );
    assert_eq!(problems_in(&text), Vec::<String>::new());
}

#[test]
fn a_filter_without_fail_reload_is_caught() {
    let good = http_filter("portcullis", true, r#"{"shared_snapshot": true}"#);
    let text = format!(
        "{SINGLETON_SECRET}{}",
        good.replace("            failure_policy: FAIL_RELOAD\n", "")
    );
    assert_one_problem_mentioning(&text, "without `failure_policy: FAIL_RELOAD`");
    let text = format!(
        "{SINGLETON_SECRET}{}",
        good.replace("FAIL_RELOAD", "FAIL_CLOSED")
    );
    assert_one_problem_mentioning(&text, "`failure_policy: FAIL_CLOSED`; use FAIL_RELOAD");
}

#[test]
fn a_filter_that_fails_open_is_caught() {
    let good = http_filter("portcullis", true, r#"{"shared_snapshot": true}"#);
    let text = format!(
        "{SINGLETON_SECRET}{}",
        good.replace(
            "            failure_policy: FAIL_RELOAD\n",
            "            failure_policy: FAIL_RELOAD\n            fail_open: true\n"
        )
    );
    assert_one_problem_mentioning(&text, "`fail_open: true`");
    let text = format!(
        "{SINGLETON_SECRET}{}",
        good.replace("FAIL_RELOAD", "FAIL_OPEN")
    );
    assert_one_problem_mentioning(&text, "`failure_policy: FAIL_OPEN`");
    let plugin = format!("{GOOD_WASM_PLUGIN}  failStrategy: FAIL_OPEN\n");
    assert_one_problem_mentioning(&plugin, "`spec.failStrategy: FAIL_OPEN`");
    let reload = format!("{GOOD_WASM_PLUGIN}  failStrategy: FAIL_RELOAD\n");
    assert_eq!(problems_in(&reload), Vec::<String>::new());
}

#[test]
fn an_envoy_extension_policy_that_fails_open_is_caught() {
    let policy = "
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyExtensionPolicy
metadata: {name: portcullis, namespace: mcp}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: mcp}]
  wasm:
  - code: {type: HTTP, http: {url: 'https://example.com/p.wasm'}}
    config: {shared_snapshot: true}
    failOpen: true
";
    let problems = problems_in(policy);
    assert!(
        problems.iter().any(|p| p.contains("`failOpen: true`")),
        "{problems:#?}"
    );
}

#[test]
fn a_bad_singleton_inside_embedded_yaml_is_caught() {
    let bad = SINGLETON_SECRET.replace(
        r#""cluster": "outbound|80||portcullis.example.com""#,
        r#""clustr": "x""#,
    );
    let problems = problems_in(&bad);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("embedded YAML") && p.contains("unknown `sync` field `clustr`")),
        "{problems:#?}"
    );
}

#[test]
fn a_yaml_syntax_error_names_the_file() {
    let err = parse_documents("istio/broken.yaml", "kind: A\n---\nspec: [unclosed\n")
        .expect_err("broken YAML is refused");
    assert_eq!(err.at, "istio/broken.yaml");
    assert!(err.what.contains("document 2"), "{err}");
    let err = parse_documents("x.json", "{\"a\": }").expect_err("broken JSON is refused");
    assert!(err.what.contains("not valid JSON"), "{err}");
}

#[test]
fn multi_document_files_yield_every_document() {
    let documents = parse_documents("x.yaml", "a: 1\n---\n---\nb: 2\n").expect("parses");
    assert_eq!(documents, vec![yaml("a: 1"), yaml("b: 2")]);
}

#[test]
fn relative_links_skip_urls_and_anchors() {
    let markdown = "[a](a.yaml) [b](https://x.io/y) [c](../c.md#part) [d](#anchor) [e](mailto:x@y)";
    assert_eq!(relative_links(markdown), vec!["a.yaml", "../c.md"]);
}
