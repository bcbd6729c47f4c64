#!/usr/bin/env python3
"""Portcullis benchmark driver. Run it through `bash bench/run.sh`, which builds the inputs.

Starts one upstream Envoy (not measured), then one Envoy under test per configuration
(`--concurrency 1`, config rendered from bench/templates/), and drives each with wrk in
alternating rounds (A B C ..., then C B A ..., ROUNDS times). Per sample it records wrk's
requests/s, p50 and p99, and the Envoy-under-test's CPU time (utime + stime from
/proc/<pid>/stat) divided by the requests served. See docs/benchmarks.md.

Environment (all optional except the paths run.sh sets):
  ROUNDS=12 DURATION=5 WARMUP=2 STARTS=3 CONNECTIONS=16 THREADS=1
  CONFIGS="1 … 18"                   subset to run (12-18: the POST tools/call workload)
  BENCH_OUT=target/bench        where keys, rendered configs, logs and results go
  ENVOY_BIN, PORTCULLIS_BIN, NOOP_WASM, NOOP_READ_AUTH_WASM, NOOP_MIMIC_WASM, NOOP_MIMIC_MAP_WASM,
  NOOP_READ_BODY_WASM, NOOP_MAP_READ_BODY_WASM, NOOP_MAP_PARSE_BODY_WASM, FILTER_WASM
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib  # noqa: E402  (bench/benchlib.py, found through the line above)
from benchlib import env_float, env_int, free_ports, median  # noqa: E402

TEMPLATES = HERE / "templates"

# Nominal canonical URL of the benchmark's MCP server (RFC 8707 resource, token `aud`). Nothing
# connects to it: every Envoy under test gets its own port, and one URL keeps the token bytes
# identical across configurations.
RESOURCE = "http://127.0.0.1:8000/bench/mcp"
RESOURCE_METADATA = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/bench/mcp"
ISSUER = "http://127.0.0.1:8000/bench-idp/{alg}"
REQUEST_PATH = "/bench/mcp"
# The POST workload: an allowed tools/call, as an MCP client sends it.
POST_BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"message": "hello"}}},
                       separators=(",", ":"))
# A call the rules refuse (sanity check: every filter that decides by the body must say 403).
FORBIDDEN_BODY = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                             "params": {"name": "get-sum", "arguments": {"a": 1, "b": 2}}},
                            separators=(",", ":"))


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Configurations


@dataclass
class Config:
    num: int
    name: str
    title: str
    kind: str  # none | wasm | portcullis | jwt_authn | native_mcp
    wasm_env: str | None = None  # env var naming the module
    alg: str = "RS256"  # which token the requests carry
    cache: bool = True  # portcullis token cache / jwt_authn jwt_cache_config
    auth: bool = False  # whether a request without a token must get 401
    workload: str = "get"  # get: GET /bench/mcp; post: POST tools/call (allowed)
    hold: str = "request"  # the Portcullis plugin's "hold" (request | body)

    # filled at run time
    skip: str | None = None
    proc: subprocess.Popen | None = None
    listen_port: int = 0
    admin_port: int = 0
    start_s: list[float] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    stats: list[str] = field(default_factory=list)


CONFIGS = [
    Config(1, "no-filter", "Envoy, no HTTP filter", "none"),
    Config(2, "noop-wasm", "no-op Rust wasm filter", "wasm", "NOOP_WASM"),
    Config(3, "noop-read-auth", "no-op wasm, reads `authorization`", "wasm", "NOOP_READ_AUTH_WASM"),
    Config(4, "portcullis-rs256-cache", "Portcullis, RS256, warm token cache", "portcullis",
           "FILTER_WASM", "RS256", True, True),
    Config(5, "portcullis-rs256-nocache", "Portcullis, RS256, cache off", "portcullis",
           "FILTER_WASM", "RS256", False, True),
    Config(6, "portcullis-es256-nocache", "Portcullis, ES256, cache off", "portcullis",
           "FILTER_WASM", "ES256", False, True),
    Config(7, "portcullis-eddsa-nocache", "Portcullis, EdDSA, cache off", "portcullis",
           "FILTER_WASM", "EdDSA", False, True),
    Config(8, "jwt-authn-cache", "Envoy `jwt_authn`, RS256, `jwt_cache_config`", "jwt_authn",
           None, "RS256", True, True),
    Config(9, "jwt-authn-nocache", "Envoy `jwt_authn`, RS256, no cache", "jwt_authn",
           None, "RS256", False, True),
    Config(10, "noop-mimic", "no-op wasm making Portcullis's warm-path host calls", "wasm",
           "NOOP_MIMIC_WASM"),
    Config(11, "noop-mimic-map", "no-op wasm, same header changes in one whole-map call", "wasm",
           "NOOP_MIMIC_MAP_WASM"),
    # POST tools/call (allowed, warm caches), compared with config 12.
    Config(12, "post-no-filter", "POST: Envoy, no HTTP filter", "none", workload="post"),
    Config(13, "post-noop-read-body", "POST: no-op wasm holding the headers, reading the body",
           "wasm", "NOOP_READ_BODY_WASM", workload="post"),
    Config(14, "post-portcullis", "POST: Portcullis, RS256, warm cache", "portcullis",
           "FILTER_WASM", "RS256", True, True, workload="post"),
    Config(15, "post-portcullis-hold-body", "POST: Portcullis, `\"hold\": \"body\"`",
           "portcullis", "FILTER_WASM", "RS256", True, True, workload="post", hold="body"),
    Config(16, "post-native-mcp-rbac", "POST: `jwt_authn` (cache) + MCP filter + RBAC",
           "native_mcp", None, "RS256", True, True, workload="post"),
    Config(17, "post-noop-map-read-body", "POST: no-op wasm, whole-map header rewrite + body read",
           "wasm", "NOOP_MAP_READ_BODY_WASM", workload="post"),
    Config(18, "post-noop-map-parse-body", "POST: config 17 + `policy::parse_body` of the body",
           "wasm", "NOOP_MAP_PARSE_BODY_WASM", workload="post"),
]

ALL_CONFIGS = " ".join(str(c.num) for c in CONFIGS)


# ---------------------------------------------------------------------------------------------
# HTTP (processes are started and stopped through benchlib, which stops them all at exit)


def http_get(url: str, headers: dict | None = None, timeout: float = 2.0) -> tuple[int, str]:
    status, _, body = benchlib.http("GET", url, headers, timeout=timeout)
    return status, body.decode(errors="replace")


# ---------------------------------------------------------------------------------------------
# Templates


def render(template: str, values: dict[str, str]) -> str:
    return benchlib.render(TEMPLATES / template, values)


def lit(value) -> str:
    """A JSON literal, which is also a valid YAML flow scalar/collection."""
    return json.dumps(value)


def http_filters_yaml(cfg: Config, keys: dict) -> str:
    if cfg.kind == "none":
        return ""
    if cfg.kind == "wasm":
        snippet = render("filter-wasm.yaml", {
            "PLUGIN_NAME": lit(cfg.name),
            "VM_ID": lit(cfg.name),
            "WASM_PATH": lit(os.environ[cfg.wasm_env]),
            "CONFIGURATION": lit(""),
            "ALLOW_STOP": "true",
        })
    elif cfg.kind == "portcullis":
        key = keys[cfg.alg]
        snapshot = json.loads(render("snapshot.json", {
            "ISSUER": lit(key["issuer"]),
            "JWKS": lit(key["jwks"]),
            "ALG": lit(cfg.alg),
            "AUDIENCE": lit(RESOURCE),
            "RESOURCE": lit(RESOURCE),
            "RESOURCE_METADATA": lit(RESOURCE_METADATA),
            "TOKEN_CACHE_ENTRIES": lit(4096 if cfg.cache else 0),
        }))
        plugin = {"snapshot": snapshot, "hold": cfg.hold}
        snippet = render("filter-wasm.yaml", {
            "PLUGIN_NAME": lit("portcullis"),
            "VM_ID": lit("portcullis"),
            "WASM_PATH": lit(os.environ[cfg.wasm_env]),
            "CONFIGURATION": lit(json.dumps(plugin, separators=(",", ":"))),
            "ALLOW_STOP": "true" if cfg.hold == "request" else "false",
        })
    elif cfg.kind in ("jwt_authn", "native_mcp"):
        key = keys[cfg.alg]
        values = {
            "ISSUER": lit(key["issuer"]),
            "AUDIENCE": lit(RESOURCE),
            "JWKS": lit(json.dumps(key["jwks"], separators=(",", ":"))),
        }
        if cfg.kind == "jwt_authn":
            values["JWT_CACHE"] = ("        jwt_cache_config: { jwt_cache_size: 4096 }"
                                   if cfg.cache else "")
            snippet = render("filter-jwt-authn.yaml", values)
        else:
            snippet = render("filter-native-mcp.yaml", values)
    else:
        raise ValueError(cfg.kind)
    return textwrap.indent(snippet.strip("\n"), " " * 10)


def render_envoy(cfg: Config, keys: dict, upstream_port: int) -> str:
    filters = http_filters_yaml(cfg, keys)
    return render("envoy.yaml", {
        "ADMIN_PORT": str(cfg.admin_port),
        "LISTEN_PORT": str(cfg.listen_port),
        "UPSTREAM_PORT": str(upstream_port),
        "HTTP_FILTERS": filters,
    })


# ---------------------------------------------------------------------------------------------
# Keys and tokens (made with `portcullis dev keygen` / `dev token`: demo tools, not the AS)


def make_keys(portcullis: str, out: Path) -> dict:
    keys = {}
    for alg in ("RS256", "ES256", "EdDSA"):
        d = out / "keys" / alg.lower()
        kid = f"bench-{alg.lower()}"
        subprocess.run([portcullis, "dev", "keygen", "--alg", alg, "--kid", kid, "--out", str(d),
                        "--force"], check=True, stderr=subprocess.DEVNULL)
        issuer = ISSUER.format(alg=alg.lower())
        token = subprocess.run(
            [portcullis, "dev", "token", "--key", str(d / "signing-key.pem"), "--alg", alg,
             "--kid", kid, "--iss", issuer, "--aud", RESOURCE, "--sub", "bench-user",
             "--groups", "bench", "--ttl", "86400"],
            check=True, capture_output=True, text=True).stdout.strip()
        keys[alg] = {"issuer": issuer, "jwks": json.loads((d / "jwks.json").read_text()),
                     "token": token}
    return keys


# ---------------------------------------------------------------------------------------------
# Load


def run_wrk(cfg: Config, token: str, seconds: float, threads: int, conns: int) -> dict:
    r, (cpu_s,) = benchlib.run_wrk(f"http://127.0.0.1:{cfg.listen_port}{REQUEST_PATH}", seconds,
                                   threads, conns, {"Authorization": f"Bearer {token}"},
                                   (cfg.proc.pid,),
                                   post_body=POST_BODY if cfg.workload == "post" else None)
    r["cpu_s"] = cpu_s
    r["cpu_us_per_req"] = r["cpu_s"] * 1e6 / r["requests"] if r["requests"] else float("nan")
    return r


def sanity_check(cfg: Config, token: str) -> None:
    url = f"http://127.0.0.1:{cfg.listen_port}{REQUEST_PATH}"
    if cfg.workload == "post":
        json_headers = {"Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream"}
        auth = dict(json_headers, Authorization=f"Bearer {token}")
        status, _, body = benchlib.http("POST", url, auth, POST_BODY.encode())
        if status != 200:
            raise RuntimeError(f"POST tools/call echo with the token: {status} {body[:300]!r}")
        status, _, _ = benchlib.http("POST", url, json_headers, POST_BODY.encode())
        want = 401 if cfg.auth else 200
        if status != want:
            raise RuntimeError(f"POST without a token: {status}, expected {want}")
        # The same rules: a tool outside the grant is refused by every deciding configuration.
        status, _, _ = benchlib.http("POST", url, auth, FORBIDDEN_BODY.encode())
        want = 403 if cfg.auth else 200
        if status != want:
            raise RuntimeError(f"POST tools/call get-sum: {status}, expected {want}")
        return
    status, body = http_get(url, {"Authorization": f"Bearer {token}"})
    if status != 200:
        raise RuntimeError(f"GET {REQUEST_PATH} with the token: {status} {body[:300]!r}")
    status, _ = http_get(url)
    want = 401 if cfg.auth else 200
    if status != want:
        raise RuntimeError(f"GET {REQUEST_PATH} without a token: {status}, expected {want}")


def collect_stats(cfg: Config) -> list[str]:
    try:
        _, body = http_get(f"http://127.0.0.1:{cfg.admin_port}/stats", timeout=5)
    except OSError:
        return []
    pat = re.compile(r"portcullis|token_cache|jwt_authn|rbac|mcp\.|wasm.*(fail|error)")
    return [ln for ln in body.splitlines() if pat.search(ln) and not ln.endswith(": 0")]


# ---------------------------------------------------------------------------------------------
# Report


def fmt(x, spec=".0f", none="–"):
    return none if x is None else format(x, spec)


def summarize(configs: list[Config]) -> list[dict]:
    """Medians per configuration; deltas and ratios against the no-filter configuration of the
    same workload (1 for GET, 12 for POST), paired by round."""
    bases = {c.workload: c for c in configs if c.kind == "none" and c.samples}
    rows = []
    for c in configs:
        base = bases.get(c.workload)
        base_by_round = {s["round"]: s for s in base.samples} if base else {}
        row = {"num": c.num, "name": c.name, "title": c.title, "skip": c.skip,
               "start_s": median(c.start_s), "samples": len(c.samples)}
        good = [s for s in c.samples if s["errors"] == 0]
        row["bad_samples"] = len(c.samples) - len(good)
        if good:
            row["rps"] = median([s["rps"] for s in good])
            row["p50_us"] = median([s["p50_us"] for s in good])
            row["p99_us"] = median([s["p99_us"] for s in good])
            row["cpu_us_per_req"] = median([s["cpu_us_per_req"] for s in good])
            if base and c is not base:
                pairs = [(s, base_by_round[s["round"]]) for s in good
                         if s["round"] in base_by_round]
                deltas = [s["cpu_us_per_req"] - b["cpu_us_per_req"] for s, b in pairs]
                row["cpu_delta_us"] = median(deltas)
                quartiles = benchlib.iqr(deltas)
                if quartiles:
                    row["cpu_delta_iqr"] = quartiles
                row["rps_ratio"] = median([s["rps"] / b["rps"] for s, b in pairs if b["rps"]])
            elif c is base:
                row["cpu_delta_us"] = 0.0
                row["rps_ratio"] = 1.0
        row["stats"] = c.stats
        rows.append(row)
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    out = []
    out.append(f"Run {meta['date']}: {meta['rounds']} rounds × {meta['duration']} s per sample, "
               f"wrk -t{meta['threads']} -c{meta['connections']}, {meta['nproc']} CPUs, "
               f"load average at start {meta['loadavg']}.")
    out.append("")
    out.append("Deltas and ratios are against the no-filter configuration of the same workload "
               "(1 for GET, 12 for POST), paired by round.")
    out.append("")
    out.append("| # | configuration | req/s | × no-filter | p50 µs | p99 µs | CPU µs/req "
               "| Δ CPU µs/req [IQR] | start s |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["skip"]:
            out.append(f"| {r['num']} | {r['title']} | skipped: {r['skip']} "
                       "| | | | | | |")
            continue
        bad = f" ({r['bad_samples']} samples with errors dropped)" if r["bad_samples"] else ""
        iqr = ""
        if r.get("cpu_delta_iqr"):
            lo, hi = r["cpu_delta_iqr"]
            iqr = f" [{lo:+.1f}, {hi:+.1f}]"
        out.append(
            f"| {r['num']} | {r['title']}{bad} | {fmt(r.get('rps'))} "
            f"| {fmt(r.get('rps_ratio'), '.2f')} | {fmt(r.get('p50_us'))} "
            f"| {fmt(r.get('p99_us'))} | {fmt(r.get('cpu_us_per_req'), '.1f')} "
            f"| {fmt(r.get('cpu_delta_us'), '+.1f')}{iqr} | {fmt(r.get('start_s'), '.2f')} |")
    out.append("")
    out.append("Modules: " + ", ".join(f"`{k}` {v} bytes" for k, v in meta["modules"].items()))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------


def main() -> int:
    rounds = env_int("ROUNDS", 12)
    duration = env_float("DURATION", 5)
    warmup = env_float("WARMUP", 2)
    starts = max(1, env_int("STARTS", 3))
    conns = env_int("CONNECTIONS", 16)
    threads = env_int("THREADS", 1)
    wanted = {int(x) for x in os.environ.get("CONFIGS", ALL_CONFIGS).replace(",", " ").split()}
    out = Path(os.environ.get("BENCH_OUT", "target/bench")).resolve()
    envoy = os.environ["ENVOY_BIN"]
    portcullis = os.environ["PORTCULLIS_BIN"]
    run_dir = out / "run"
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    for f in (run_dir / "logs").glob("*.log"):
        f.unlink()

    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    configs = [c for c in CONFIGS if c.num in wanted]
    modules = {}
    for c in configs:
        if c.wasm_env:
            path = os.environ.get(c.wasm_env, "")
            if not path or not Path(path).is_file():
                c.skip = f"module not built ({c.wasm_env}={path or 'unset'})"
                log(f"config {c.num} {c.name}: SKIPPED, {c.skip}")
            else:
                modules[Path(path).name] = Path(path).stat().st_size

    log("making demo keys and tokens")
    keys = make_keys(portcullis, run_dir)

    # Upstream.
    up_port, up_admin = free_ports(2)
    up_cfg = run_dir / "upstream.yaml"
    up_cfg.write_text(render("upstream.yaml", {"ADMIN_PORT": str(up_admin),
                                               "LISTEN_PORT": str(up_port)}))
    up, _ = benchlib.start_envoy(envoy, up_cfg, up_admin, run_dir / "logs" / "upstream.log")
    log(f"upstream on 127.0.0.1:{up_port}")

    # Envoys under test: measure start time STARTS times, keep the last one running.
    for c in configs:
        if c.skip:
            continue
        c.listen_port, c.admin_port = free_ports(2)
        cfg_path = run_dir / f"envoy-{c.num}-{c.name}.yaml"
        cfg_path.write_text(render_envoy(c, keys, up_port))
        log_path = run_dir / "logs" / f"envoy-{c.num}-{c.name}.log"
        try:
            for i in range(starts):
                p, secs = benchlib.start_envoy(envoy, cfg_path, c.admin_port, log_path)
                c.start_s.append(secs)
                if i < starts - 1:
                    benchlib.stop(p)
                else:
                    c.proc = p
            sanity_check(c, keys[c.alg]["token"])
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            c.skip = f"failed: {e}"
            log(f"config {c.num} {c.name}: {c.skip}")
            if c.proc:
                benchlib.stop(c.proc)
                c.proc = None
            continue
        log(f"config {c.num} {c.name}: ready in {median(c.start_s):.2f}s "
            f"(127.0.0.1:{c.listen_port})")

    active = [c for c in configs if not c.skip]
    if warmup > 0:
        for c in active:
            run_wrk(c, keys[c.alg]["token"], warmup, threads, conns)
        log(f"warmed up ({warmup:g}s each)")

    results_path = run_dir / "samples.jsonl"
    with open(results_path, "w") as rf:
        for r in range(rounds):
            order = active if r % 2 == 0 else list(reversed(active))
            for c in order:
                s = run_wrk(c, keys[c.alg]["token"], duration, threads, conns)
                s.update(round=r, config=c.num, name=c.name)
                c.samples.append(s)
                rf.write(json.dumps(s) + "\n")
                flag = f" ERRORS={s['errors']}" if s["errors"] else ""
                log(f"round {r + 1}/{rounds} config {c.num} {c.name}: {s['rps']:.0f} req/s, "
                    f"p50 {s['p50_us']} µs, p99 {s['p99_us']} µs, "
                    f"{s['cpu_us_per_req']:.1f} CPU µs/req{flag}")

    for c in active:
        c.stats = collect_stats(c)

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "rounds": rounds, "duration": duration, "warmup": warmup, "starts": starts,
        "connections": conns, "threads": threads, "nproc": os.cpu_count(),
        "loadavg": loadavg,
        "machine": platform.machine(), "modules": modules,
        "envoy": subprocess.run([envoy, "--version"], capture_output=True,
                                text=True).stdout.strip().split("version: ")[-1],
    }
    rows = summarize(configs)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    md = markdown(rows, meta)
    (out / "results.md").write_text(md)
    print(md)
    for r in rows:
        if r["stats"]:
            print(f"stats, config {r['num']} {r['name']}:")
            for ln in r["stats"]:
                print(f"  {ln}")
    log(f"wrote {out / 'results.md'}, {out / 'results.json'}, {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
