//! Shipped Envoy configurations and the harness's own config pass `envoy --mode validate`.

use portcullis_e2e::envoy::{self, EnvoyConfig};
use portcullis_e2e::{paths, TestDir};

use crate::common::standard;

#[test]
fn shipped_envoy_configs_validate() {
    let configs = paths::shipped_envoy_configs();
    assert!(
        !configs.is_empty(),
        "no Envoy configuration is shipped in {}: envoy/*.yaml must hold at least one",
        paths::repo_root().join("envoy").display()
    );
    // Shipped configs name the filter by its repo-relative build path: it has to exist.
    paths::filter_wasm();
    let mut failures = Vec::new();
    for config in &configs {
        let (status, out) = envoy::validate(config);
        if !status.success() {
            failures.push(format!("{} ({status}):\n{out}", config.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "envoy --mode validate failed:\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn rendered_portcullis_config_validates() {
    let dir = TestDir::new("validate_rendered");
    let path = dir.join("portcullis.yaml");
    let cfg = EnvoyConfig::portcullis(&standard().build(), 9);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&cfg.render(&dir.join("access.log"))).unwrap(),
    )
    .unwrap();
    let (status, out) = envoy::validate(&path);
    assert!(status.success(), "{out}");
}
