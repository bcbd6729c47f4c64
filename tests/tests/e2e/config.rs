//! A bad plugin configuration never turns into a filter that lets requests through: Envoy
//! refuses to start, or the filter stays unconfigured and fails closed; either way the log says
//! `portcullis: invalid configuration: <reason>`.

use std::time::Duration;

use portcullis_e2e::envoy::{plugin_configuration, EnvoyConfig};
use portcullis_e2e::snapshot::{rpc, GROUP_DEVS, MCP_PATH};
use portcullis_e2e::{EchoUpstream, Envoy, Request, TestDir};
use serde_json::{json, Value};

use crate::common::{standard, token};

const MARK: &str = "portcullis: invalid configuration";

/// Starts Envoy with `configuration` and asserts it is refused; `reason` is checked against the
/// log line (case-insensitive, any of the alternatives).
fn assert_refused(name: &str, configuration: String, reason: &[&str]) {
    let dir = TestDir::new(name);
    let upstream = EchoUpstream::start();
    let mut cfg = EnvoyConfig::plain(upstream.port()).with_plugin_configuration(configuration);
    cfg.ready_timeout = Duration::from_secs(30);
    let log = match Envoy::try_start(&cfg, &dir) {
        Err(e) => e.log,
        Ok(envoy) => {
            // Envoy is up: the filter must fail closed.
            let resp = envoy.send(
                Request::post(MCP_PATH)
                    .json(&rpc(1, "tools/list", json!({})))
                    .bearer(&token("alice", &[GROUP_DEVS])),
            );
            assert!(
                !(200..300).contains(&resp.status),
                "{name}: Envoy with an invalid plugin configuration let a request through: {}",
                resp.describe()
            );
            let seen = upstream.requests();
            assert!(seen.is_empty(), "{name}: the upstream got {seen:?}");
            envoy.wait_for_log(MARK);
            envoy.log()
        }
    };
    let line = log
        .lines()
        .find(|l| l.contains(MARK))
        .unwrap_or_else(|| panic!("{name}: no `{MARK}` in the Envoy log:\n{log}"));
    let lower = line.to_ascii_lowercase();
    assert!(
        reason
            .iter()
            .any(|r| lower.contains(&r.to_ascii_lowercase())),
        "{name}: the log line should name the reason ({reason:?}): {line}"
    );
}

fn snapshot_with(f: impl FnOnce(&mut Value)) -> Value {
    standard().edit(f).build()
}

#[test]
fn unknown_snapshot_field_is_refused() {
    let snap = snapshot_with(|s| s["bogus_field"] = json!(1));
    assert_refused(
        "unknown_snapshot_field",
        plugin_configuration(&snap),
        &["bogus_field"],
    );
}

#[test]
fn unknown_plugin_configuration_field_is_refused() {
    let snap = standard().build();
    let config = json!({"snapshot": snap, "unexpected_option": true}).to_string();
    assert_refused("unknown_plugin_field", config, &["unexpected_option"]);
}

#[test]
fn bad_jwks_is_refused() {
    let snap = snapshot_with(|s| {
        s["issuers"][0]["jwks"] =
            json!({"keys": [{"kty": "RSA", "kid": "broken", "n": "!!!", "e": "AQAB"}]});
    });
    assert_refused(
        "bad_jwks",
        plugin_configuration(&snap),
        &["jwk", "key", "base64"],
    );
}

#[test]
fn unusable_configurations_are_refused() {
    assert_refused("not_json", "this is not json".into(), &["json", "expected"]);
    let snap = snapshot_with(|s| s["format"] = json!(2));
    assert_refused("format_2", plugin_configuration(&snap), &["format"]);
    let snap = snapshot_with(|s| s["issuers"][0]["algorithms"] = json!(["none"]));
    assert_refused(
        "alg_none",
        plugin_configuration(&snap),
        &["none", "algorithm"],
    );
}

/// `envoy --mode validate` instantiates the module and runs its configuration step: a bad
/// snapshot fails validation with the filter's own message.
#[test]
fn validate_mode_checks_the_plugin_configuration() {
    let dir = TestDir::new("validate_plugin_configuration");
    let snap = snapshot_with(|s| s["bogus_field"] = json!(1));
    let cfg = EnvoyConfig::plain(9).with_plugin_configuration(plugin_configuration(&snap));
    let path = dir.join("bad.yaml");
    let rendered = cfg.render(&dir.join("access.log"));
    std::fs::write(&path, serde_json::to_string_pretty(&rendered).unwrap()).unwrap();
    let (status, out) = portcullis_e2e::envoy::validate(&path);
    assert!(
        !status.success(),
        "validate accepted a bad snapshot:\n{out}"
    );
    assert!(out.contains(MARK) && out.contains("bogus_field"), "{out}");
}
