"""Per-request latency through Envoy with a seeded registry of N servers (`N`, default 10000):
one Envoy with the Portcullis filter, one from the same bootstrap without it, both on the
control plane's xDS routes; 200 `GET`s on one connection per path, p50 and max. Tells Envoy's
routing from the filter. Run it like bench/sync/run.sh runs bench.py (it builds nothing):

    source .venv/portcullis-env; export ENVOY_BIN PORTCULLIS_NODE_DIR
    PORTCULLIS_BIN=target/release/portcullis \
    FILTER_WASM=target/wasm32-wasip1/release/portcullis_filter.wasm \
    N=10000 python3 bench/sync/route_latency.py
"""
import importlib.util
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
_spec = importlib.util.spec_from_file_location("sync_bench", str(Path(__file__).resolve().parent / "bench.py"))
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)
import benchlib

def timed(url, headers, n):
    client_lat = []
    for _ in range(n):
        t = time.monotonic()
        status, _, _ = benchlib.http("GET", url, headers, timeout=10)
        client_lat.append((time.monotonic() - t) * 1e3)
    return status, statistics.median(client_lat), max(client_lat)

def main():
    envoy_bin = os.environ["ENVOY_BIN"]
    portcullis = os.environ["PORTCULLIS_BIN"]
    wasm = str(Path(os.environ["FILTER_WASM"]).resolve())
    run_dir = Path(os.environ.get("BENCH_OUT", "target/bench")) / "route-latency"
    run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="route-exp-") as tmp:
        tmp = Path(tmp)
        token = B.make_token(portcullis, tmp / "keys")
        admin, sync_token = secrets.token_hex(24), secrets.token_hex(24)
        up_port, up_admin = benchlib.free_ports(2)
        up_cfg = run_dir / "upstream.yaml"
        up_cfg.write_text(benchlib.render(B.UPSTREAM_TEMPLATE, {"ADMIN_PORT": str(up_admin), "LISTEN_PORT": str(up_port)}))
        B.start_envoy(envoy_bin, up_cfg, up_admin, run_dir / "upstream.log", 1)
        cp_port, xds_port, on_listen, on_admin, off_listen, off_admin = benchlib.free_ports(6)
        base = f"http://127.0.0.1:{cp_port}"
        cp_args = (portcullis, tmp / "data", cp_port, xds_port, f"http://127.0.0.1:{on_listen}", admin, sync_token, tmp / "keys" / "jwks.json")
        cp = B.start_portcullis(*cp_args, run_dir / "cp.log")
        B.set_up_registry(base, admin, up_port)
        n = int(os.environ.get("N", "10000"))
        if n:
            benchlib.stop(cp)
            print("seeded", B.seed_registry(tmp / "data" / "portcullis.db", n), flush=True)
            cp = B.start_portcullis(*cp_args, run_dir / "cp2.log")
        env_on = B.launch_envoy(envoy_bin, run_dir, True, cp_port, xds_port, sync_token, wasm, token, (on_listen, on_admin))
        # The same Envoy without the filter.
        text = B.render_bootstrap(True, "portcullis-bench-nofilter", off_admin, off_listen, cp_port, xds_port, sync_token, wasm)
        text, k = re.subn(r"          - name: envoy\.filters\.http\.wasm\n(?:              .*\n|            .*\n)+?(?=          - name: envoy\.filters\.http\.router)", "", text)
        assert k == 1, k
        cfg = run_dir / "envoy-nofilter.yaml"
        cfg.write_text(text)
        B.start_envoy(envoy_bin, cfg, off_admin, run_dir / "envoy-nofilter.log", 2)
        B.wait_for("no-filter envoy routes", lambda: benchlib.http("GET", f"http://127.0.0.1:{off_listen}/bench/mcp", {}, timeout=2)[0] not in (0, 404, 503), 60 + n / 100)
        auth = {"Authorization": f"Bearer {token}"}
        for name, port in (("with filter", on_listen), ("without filter", off_listen)):
            for path, hdrs in (("/bench/mcp", auth), ("/seed-00005/mcp", auth), ("/nothing/here", {})):
                status, p50, mx = timed(f"http://127.0.0.1:{port}{path}", hdrs, 200)
                print(f"{n} servers, {name}: GET {path} -> {status}: p50 {p50:.2f} ms, max {mx:.2f} ms", flush=True)
        benchlib.stop(cp)
    return 0

if __name__ == "__main__":
    sys.exit(main())
