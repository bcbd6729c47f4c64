#!/usr/bin/env python3
"""Control-plane read benchmark: requests/s, p50/p99 and server CPU per request of the
discovery documents and connect configs that `portcullis serve` answers, on SQLite.

Started by bench/control-plane/run.sh (which builds the release binary). One `portcullis serve`
(direct mode, a throwaway SQLite database, a fixture IdP on loopback) with SERVERS registered
servers; `wrk` against each endpoint in alternating rounds; medians. See docs/benchmarks.md,
"Control plane: metadata and connect-config reads (SQLite)".
"""
from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import benchlib  # noqa: E402  (bench/benchlib.py, found through the line above)
from benchlib import env_float, env_int, http, load1  # noqa: E402

ROUNDS = env_int("ROUNDS", 5)
DURATION = env_float("DURATION", 10)
WARMUP = env_float("WARMUP", 2)
CONNECTIONS = env_int("CONNECTIONS", 16)
THREADS = env_int("THREADS", 1)
SERVERS = env_int("SERVERS", 20)
ENDPOINTS = os.environ.get("ENDPOINTS", "a b c d e f").split()
PORTCULLIS = os.environ.get("PORTCULLIS_BIN", str(ROOT / "target" / "release" / "portcullis"))
OUT = Path(os.environ.get("BENCH_OUT", str(ROOT / "target" / "bench")))


def say(msg: str) -> None:
    print(f"[cp-bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Setup


def start_idp(logdir: Path) -> tuple[subprocess.Popen, int, Path]:
    log = logdir / "idp.log"
    with open(log, "w") as logf:
        p = benchlib.spawn([sys.executable, str(HERE / "idp_fixture.py")],
                           stdout=subprocess.PIPE, stderr=logf, stdin=subprocess.DEVNULL,
                           text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("PORT "):
        raise RuntimeError(f"fixture IdP did not start: {line!r}")
    return p, int(line.split()[1]), log


def idp_hits(log: Path) -> int:
    return sum(1 for ln in log.read_text().splitlines() if ln.startswith("IDP_HIT"))


def start_portcullis(data_dir: Path, port: int, token: str, issuer: str,
                     logdir: Path) -> subprocess.Popen:
    return benchlib.start_portcullis(PORTCULLIS, port, {
        "PORTCULLIS_DATA_DIR": str(data_dir),
        "PORTCULLIS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PORTCULLIS_ADMIN_TOKEN": token,
        "PORTCULLIS_AUTH_MODE": "direct",
        "PORTCULLIS_IDP_ISSUER": issuer,
        # Longer than the whole run, so every request after the first is a cache hit (the
        # IdP's hit count is printed at the end to show it).
        "PORTCULLIS_IDP_METADATA_TTL_SECONDS": "86400",
        "PORTCULLIS_IDP_EXPECT_DCR": "true",
        "IDE_OAUTH_CLIENT_ID": "portcullis-bench",
    }, logdir / "portcullis.log")


def keep_log(src: Path, dst: Path) -> tuple[int, int]:
    """The server logs one line per request (RUST_LOG=info, as in production): keeps its first
    40 lines and every WARN/ERROR line; returns (lines, bytes) of the whole log."""
    n, size, kept = 0, 0, []
    with open(src, errors="replace") as f:
        for ln in f:
            n += 1
            size += len(ln)
            if n <= 40 or "WARN" in ln or "ERROR" in ln:
                kept.append(ln)
    dst.write_text("".join(kept[:2000]))
    return n, size


def register(base: str, token: str, n: int) -> None:
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for i in range(1, n + 1):
        body = json.dumps({
            "name": f"Bench {i:02d}",
            "path": f"/bench-{i:02d}",
            "proxy_pass_url": f"http://127.0.0.1:9/bench-{i:02d}",
            "description": f"benchmark server {i}",
            "tags": ["bench", f"group-{i % 4}"],
        }).encode()
        status, _, resp = http("POST", f"{base}/api/servers/register", auth, body)
        if status != 201:
            raise RuntimeError(f"registering /bench-{i:02d}: {status} {resp[:300]!r}")


# ---------------------------------------------------------------------------------------------
# Endpoints


def endpoints(token: str, target: str) -> dict[str, dict]:
    bearer = {"Authorization": f"Bearer {token}"}
    all_eps = {
        "a": {"name": "protected-resource metadata",
              "path": f"/.well-known/oauth-protected-resource{target}/mcp", "headers": {}},
        "b": {"name": "authorization-server metadata (IdP mirror)",
              "path": "/.well-known/oauth-authorization-server", "headers": {}},
        "c": {"name": "connect-config, `ide=claude-code`",
              "path": f"/api/servers{target}/connect-config?ide=claude-code", "headers": bearer},
        "d": {"name": "connect-config, all assistants",
              "path": f"/api/servers{target}/connect-config", "headers": bearer},
        "e": {"name": "`/healthz` (floor)", "path": "/healthz", "headers": {}},
        "f": {"name": "`/readyz` (`SELECT 1`: one database round trip)", "path": "/readyz",
              "headers": {}},
    }
    return {k: all_eps[k] for k in ENDPOINTS}


def check(base: str, key: str, ep: dict, issuer: str, target: str) -> int:
    """The endpoint answers 200 with the document we mean to measure; returns its body size."""
    status, _, body = http("GET", base + ep["path"], ep["headers"])
    if status != 200:
        raise RuntimeError(f"GET {ep['path']}: {status} {body[:300]!r}")
    doc = json.loads(body)
    if key == "a":
        assert doc["resource"] == f"{base}{target}/mcp", doc
        assert doc["authorization_servers"] == [issuer], doc
    elif key == "b":
        assert doc["issuer"] == issuer and "registration_endpoint" in doc, doc
    elif key in ("c", "d"):
        assert doc.get("idp") is not None, f"connect-config without IdP capabilities: {doc}"
        codes = [w.get("code") for w in doc.get("warnings", []) if isinstance(w, dict)]
        assert "idp_metadata_unavailable" not in codes, doc
        want = 1 if key == "c" else None
        if want is not None:
            assert len(doc["rendered"]) == 1, list(doc["rendered"])
        else:
            assert len(doc["rendered"]) > 1, list(doc["rendered"])
    if ep["headers"]:
        s, _, _ = http("GET", base + ep["path"])
        if s != 401:
            raise RuntimeError(f"GET {ep['path']} without a credential: {s}, expected 401")
    return len(body)


def run_wrk(base: str, ep: dict, pid: int, seconds: float) -> dict:
    la0 = load1()
    r, (cpu_s,) = benchlib.run_wrk(base + ep["path"], seconds, THREADS, CONNECTIONS,
                                   ep["headers"], (pid,))
    r["cpu_s"] = cpu_s
    r["cpu_us_per_req"] = r["cpu_s"] * 1e6 / r["requests"] if r["requests"] else float("nan")
    r["load1_before"], r["load1_after"] = la0, load1()
    return r


def med(xs: list[float]) -> float:
    return benchlib.median(xs, empty=float("nan"))


def fmt(x: float, nd: int = 0) -> str:
    if x != x:  # NaN
        return "–"
    return f"{x:,.{nd}f}".replace(",", "") if nd else f"{round(x)}"


def main() -> int:
    if shutil.which("wrk") is None:
        say("wrk is not installed (apt-get install wrk)")
        return 1
    if not Path(PORTCULLIS).is_file():
        say(f"no portcullis binary at {PORTCULLIS}")
        return 1
    run_dir = OUT / "control-plane"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    meta = benchlib.machine(["control-plane", "policy"])
    say(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}")

    with tempfile.TemporaryDirectory(prefix="portcullis-cp-bench-") as tmp:
        tmp = Path(tmp)
        _, idp_port, idp_log = start_idp(run_dir)
        issuer = f"http://127.0.0.1:{idp_port}"
        port = benchlib.free_port()
        token = secrets.token_hex(24)
        server = start_portcullis(tmp / "data", port, token, issuer, tmp)
        base = f"http://127.0.0.1:{port}"
        say(f"portcullis serve (pid {server.pid}) on {base}, fixture IdP {issuer}, "
            f"SQLite in {tmp / 'data'}")
        register(base, token, SERVERS)
        target = f"/bench-{SERVERS:02d}"
        eps = endpoints(token, target)
        sizes = {k: check(base, k, ep, issuer, target) for k, ep in eps.items()}
        say(f"{SERVERS} servers registered; every endpoint answers 200 (bodies: "
            + ", ".join(f"{k} {v} B" for k, v in sizes.items()) + ")")
        hits_after_check = idp_hits(idp_log)

        if WARMUP > 0:
            for k, ep in eps.items():
                run_wrk(base, ep, server.pid, WARMUP)

        samples: dict[str, list[dict]] = {k: [] for k in eps}
        all_samples = []
        order = list(eps)
        for rnd in range(ROUNDS):
            for k in (order if rnd % 2 == 0 else list(reversed(order))):
                r = run_wrk(base, eps[k], server.pid, DURATION)
                r.update({"round": rnd, "endpoint": k})
                all_samples.append(r)
                samples[k].append(r)
                say(f"round {rnd + 1}/{ROUNDS} {k}: {r['rps']:.0f} req/s, p99 {r['p99_us']} µs, "
                    f"{r['cpu_us_per_req']:.1f} CPU µs/req, errors {r['errors']}, "
                    f"load {r['load1_before']:.2f}")
        if server.poll() is not None:
            raise RuntimeError("portcullis serve exited during the run")
        hits_end = idp_hits(idp_log)
        _, _, metrics = http("GET", f"{base}/metrics")
        rss_kb = next((int(ln.split()[1]) for ln in
                       Path(f"/proc/{server.pid}/status").read_text().splitlines()
                       if ln.startswith("VmRSS:")), 0)
        benchlib.stop_all()
        log_lines, log_bytes = keep_log(tmp / "portcullis.log", run_dir / "portcullis.log")
    load_end = os.getloadavg()

    with open(run_dir / "samples.jsonl", "w") as f:
        for r in all_samples:
            f.write(json.dumps(r) + "\n")

    # Medians over the kept samples; CPU also as the paired difference with /healthz.
    floor = {r["round"]: r for r in samples.get("e", []) if r["errors"] == 0}
    rows = []
    for k, ep in eps.items():
        kept = [r for r in samples[k] if r["errors"] == 0]
        deltas = [r["cpu_us_per_req"] - floor[r["round"]]["cpu_us_per_req"]
                  for r in kept if r["round"] in floor]
        rows.append({
            "key": k, "name": ep["name"], "path": ep["path"], "bytes": sizes[k],
            "kept": len(kept), "dropped": len(samples[k]) - len(kept),
            "rps": med([r["rps"] for r in kept]),
            "p50": med([r["p50_us"] for r in kept]),
            "p99": med([r["p99_us"] for r in kept]),
            "cpu": med([r["cpu_us_per_req"] for r in kept]),
            "dcpu": med(deltas) if k != "e" else 0.0,
            "load": med([r["load1_before"] for r in kept]),
        })

    profile = "release" if "/release/" in str(Path(PORTCULLIS).resolve()) else PORTCULLIS
    lines = [
        f"`ROUNDS={ROUNDS} DURATION={DURATION:g} bash bench/control-plane/run.sh` — "
        f"{started:%Y-%m-%d %H:%M} UTC, commit `{meta['commit']}`, {meta['cpus']} × "
        f"{meta['cpu_model'] or 'CPU'} (shared); load average {load_start[0]:.2f} at the start, "
        f"{load_end[0]:.2f} at the end. `portcullis serve` ({profile}), SQLite, direct mode, "
        f"{SERVERS} servers, `wrk -t{THREADS} -c{CONNECTIONS} -d{DURATION:g}s`, "
        f"{ROUNDS} alternating rounds, medians.",
        "",
        "| | endpoint | body B | req/s | p50 µs | p99 µs | server CPU µs/req | Δ vs `/healthz` | load 1 min | samples kept/dropped |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d = "–" if r["key"] == "e" else f"{r['dcpu']:+.1f}"
        lines.append(
            f"| {r['key']} | {r['name']}: `GET {r['path']}` | {r['bytes']} | {fmt(r['rps'])} | "
            f"{fmt(r['p50'])} | {fmt(r['p99'])} | {r['cpu']:.1f} | {d} | {r['load']:.2f} | "
            f"{r['kept']}/{r['dropped']} |")
    lines += [
        "",
        f"Fixture IdP requests: {hits_after_check} before the rounds (first fetches), "
        f"{hits_end - hits_after_check} during warm-up and rounds. Server RSS at the end: "
        f"{rss_kb / 1024:.1f} MiB. Server log (`RUST_LOG={os.environ.get('RUST_LOG', 'info')}`): "
        f"{log_lines} lines, {log_bytes / 1e6:.0f} MB.",
    ]
    route_counts = [ln for ln in metrics.decode(errors="replace").splitlines()
                    if ln.startswith("portcullis_http_requests_total") and 'method="GET"' in ln]
    table = "\n".join(lines) + "\n"
    print(table)
    (OUT / "control-plane.md").write_text(table)
    (run_dir / "metrics-requests.txt").write_text("\n".join(route_counts) + "\n")
    (run_dir / "results.json").write_text(json.dumps({
        "started": started.isoformat(), "rounds": ROUNDS, "duration_s": DURATION,
        "connections": CONNECTIONS, "threads": THREADS, "servers": SERVERS,
        "load_start": load_start, "load_end": load_end, "machine": meta, "rows": rows,
        "idp_hits_before_rounds": hits_after_check,
        "idp_hits_during_rounds": hits_end - hits_after_check, "rss_kb": rss_kb,
        "log_lines": log_lines, "log_bytes": log_bytes}, indent=2))
    say(f"wrote {OUT / 'control-plane.md'} and {run_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
