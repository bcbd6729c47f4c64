//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the fuzz targets' own
//! bodies, so every input the fuzzers kept is checked by the normal test command without
//! cargo-fuzz or a nightly toolchain. See docs/fuzzing.md.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

#[path = "../../fuzz/src/lib.rs"]
mod harness;

/// Runs `target` on every file of `fuzz/corpus/<name>/` and fails naming each file that panics.
fn replay(name: &str, target: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            failures.push(file.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {name} corpus files panicked (see the messages above): {failures:#?}",
        failures.len(),
        files.len()
    );
}

#[test]
fn jwt_corpus() {
    replay("jwt", harness::jwt);
}

#[test]
fn jwt_structured_corpus() {
    replay("jwt_structured", harness::jwt_structured);
}

#[test]
fn jsonrpc_corpus() {
    replay("jsonrpc", harness::jsonrpc);
}

#[test]
fn snapshot_corpus() {
    replay("snapshot", harness::snapshot);
}

#[test]
fn delta_corpus() {
    replay("delta", harness::delta);
}

#[test]
fn request_corpus() {
    replay("request", harness::request);
}

/// The hand-made seeds that should verify do, so the fuzzers start past the signature checks
/// (a changed snapshot rule or a stale seed would otherwise quietly make the corpora shallow).
#[test]
fn valid_seeds_verify() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let policy = harness::policy();
    for seed in ["rs256", "ps256", "es256", "eddsa", "hs256"] {
        let file = corpus.join(format!("jwt/seed-{seed}-valid"));
        let token = std::fs::read_to_string(&file).expect("seed file");
        if let Err(e) = policy.verify_jwt(&token, harness::NOW) {
            panic!("{}: {e}", file.display());
        }
    }
    for seed in ["hs-valid", "hs-nokid"] {
        let file = corpus.join(format!("jwt_structured/seed-{seed}"));
        let (token, now) = harness::assemble_jwt(&std::fs::read(&file).expect("seed file"))
            .expect("a non-empty seed");
        if let Err(e) = policy.verify_jwt(&token, now) {
            panic!("{}: {e}", file.display());
        }
    }
}

/// The hand-made request seeds that should pass do (with the identity headers stripped), so the
/// request fuzzer starts with inputs that reach the body check; every other seed is answered
/// locally.
#[test]
fn request_seeds_pass_or_not() {
    let passing = [
        ("seed-authorization-and-apikey", "forwarded"),
        ("seed-discovery-get", "discovery"),
        ("seed-discovery-under-server", "discovery"),
        ("seed-get-apikey-eos", "forwarded"),
        ("seed-identity-spoof", "forwarded"),
        ("seed-non-utf8-other-header", "forwarded"),
        ("seed-origin-allowed", "forwarded"),
        ("seed-patch-open-stream-no-body", "forwarded"),
        ("seed-path-query", "forwarded"),
        ("seed-post-admin-batch", "forwarded"),
        ("seed-post-apikey-echo", "forwarded"),
        ("seed-post-apikey-echo-1byte-chunks", "forwarded"),
        ("seed-post-jwt-hs256-files", "forwarded"),
        ("seed-post-jwt-rs256", "forwarded"),
        ("seed-post-mcp-headers-match", "forwarded"),
    ];
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/request");
    for entry in std::fs::read_dir(&corpus).expect("request corpus") {
        let file = entry.expect("corpus entry").path();
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        if !name.starts_with("seed-") {
            continue;
        }
        let outcome = harness::request_outcome(&std::fs::read(&file).expect("seed file"));
        match passing.iter().find(|(seed, _)| *seed == name) {
            Some((_, expected)) => assert_eq!(outcome, *expected, "{name}"),
            None => assert!(
                !matches!(outcome, "forwarded" | "discovery"),
                "{name} was not refused"
            ),
        }
    }
}
