//! The filter's Envoy stats: allowed, denied by reason, token cache hits and misses (positive and
//! negative), verification time.

use std::time::Duration;

use portcullis_e2e::snapshot::{claims, rpc, GROUP_DEVS, MCP_PATH};
use portcullis_e2e::Request;
use serde_json::json;

use crate::common::{impostor_key, standard, token, Gate};

fn counter(gate: &Gate, name: &str) -> u64 {
    let full = format!("wasmcustom.portcullis.{name}");
    gate.envoy
        .stats("wasmcustom.portcullis")
        .into_iter()
        .find(|(k, _)| *k == full)
        .map_or(0, |(_, v)| v.trim().parse().unwrap_or(0))
}

#[test]
fn stats_count_decisions_and_cache_use() {
    let gate = Gate::start("stats", &standard().build());
    let alice = token("alice", &[GROUP_DEVS]);
    let forged = impostor_key().sign(&claims("mallory", &[GROUP_DEVS]));

    for _ in 0..3 {
        let resp = gate.envoy.send(Request::get(MCP_PATH).bearer(&alice));
        assert_eq!(resp.status, 200, "{}", resp.describe());
    }
    let resp = gate.envoy.send(Request::get(MCP_PATH));
    assert_eq!(resp.status, 401);
    // A flood of one bad token costs one verification: the rest come from the negative cache.
    for _ in 0..4 {
        let resp = gate.envoy.send(Request::get(MCP_PATH).bearer(&forged));
        assert_eq!(resp.status, 401, "{}", resp.describe());
    }
    let forbidden = rpc(
        1,
        "tools/call",
        json!({"name": "get-sum", "arguments": {"a": 1, "b": 2}}),
    );
    let resp = gate
        .envoy
        .send(Request::post(MCP_PATH).json(&forbidden).bearer(&alice));
    assert_eq!(resp.status, 403, "{}", resp.describe());

    // Counters reach Envoy on the filter's next tick (1 s).
    let expected = [
        ("allowed", 3),
        ("token_cache.miss", 2),
        ("token_cache.hit", 6),
        ("denied.missing_credentials", 1),
        ("denied.bad_signature", 4),
        ("denied.tool_not_allowed", 1),
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let actual: Vec<(&str, u64)> = expected
            .iter()
            .map(|(n, _)| (*n, counter(&gate, n)))
            .collect();
        if actual == expected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats: expected {expected:?}, got {actual:?}\n{:?}",
            gate.envoy.stats("wasmcustom")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let histogram = gate.envoy.stats("wasmcustom.portcullis.verify_us");
    assert!(
        !histogram.is_empty(),
        "no verify_us histogram: {:?}",
        gate.envoy.stats("wasmcustom")
    );
}
