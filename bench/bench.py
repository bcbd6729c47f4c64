#!/usr/bin/env python3
"""Portcullis benchmark driver. Run it through `bash bench/run.sh`, which builds the inputs.

Starts one upstream Envoy (not measured), then one Envoy under test per configuration
(`--concurrency 1`, config rendered from bench/templates/), and drives each with wrk in
alternating rounds (A B C ..., then C B A ..., ROUNDS times). Per sample it records wrk's
requests/s, p50 and p99, and the Envoy-under-test's CPU time (utime + stime from
/proc/<pid>/stat) divided by the requests served. See docs/benchmarks.md.

Environment (all optional except the paths run.sh sets):
  ROUNDS=12 DURATION=5 WARMUP=2 STARTS=3 CONNECTIONS=16 THREADS=1
  CONFIGS="1 2 3 4 5 6 7 8 9 10 11"   subset to run
  BENCH_OUT=target/bench        where keys, rendered configs, logs and results go
  ENVOY_BIN, PORTCULLIS_BIN, NOOP_WASM, NOOP_READ_AUTH_WASM, NOOP_MIMIC_WASM, NOOP_MIMIC_MAP_WASM, FILTER_WASM
"""

from __future__ import annotations

import atexit
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Nominal canonical URL of the benchmark's MCP server (RFC 8707 resource, token `aud`). Nothing
# connects to it: every Envoy under test gets its own port, and one URL keeps the token bytes
# identical across configurations.
RESOURCE = "http://127.0.0.1:8000/bench/mcp"
RESOURCE_METADATA = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/bench/mcp"
ISSUER = "http://127.0.0.1:8000/bench-idp/{alg}"
REQUEST_PATH = "/bench/mcp"


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "").strip()
    return int(v) if v else default


def env_float(name: str, default: float) -> float:
    v = os.environ.get(name, "").strip()
    return float(v) if v else default


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Configurations


@dataclass
class Config:
    num: int
    name: str
    title: str
    kind: str  # none | wasm | portcullis | jwt_authn
    wasm_env: str | None = None  # env var naming the module
    alg: str = "RS256"  # which token the requests carry
    cache: bool = True  # portcullis token cache / jwt_authn jwt_cache_config
    auth: bool = False  # whether a request without a token must get 401

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
]


# ---------------------------------------------------------------------------------------------
# Processes: every process we start is tracked and stopped at exit, by its own pid.

_children: list[subprocess.Popen] = []


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def _stop_all() -> None:
    while _children:
        _stop(_children.pop())


atexit.register(_stop_all)


def _on_signal(signum, _frame):
    _stop_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def http_get(url: str, headers: dict | None = None, timeout: float = 2.0) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def start_envoy(envoy: str, config_path: Path, log_path: Path, admin_port: int,
                timeout: float = 60.0) -> tuple[subprocess.Popen, float]:
    """Starts Envoy and waits for admin /ready to say LIVE; returns (process, seconds)."""
    args = [envoy, "-c", str(config_path), "--concurrency", "1", "--disable-hot-restart",
            "--log-level", "warn"]
    logf = open(log_path, "ab")
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    logf.close()
    _children.append(p)
    url = f"http://127.0.0.1:{admin_port}/ready"
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"envoy exited with {p.returncode}; see {log_path}")
        try:
            status, body = http_get(url, timeout=0.5)
            if status == 200 and body.strip() == "LIVE":
                return p, time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.01)
    _stop(p)
    raise RuntimeError(f"envoy not ready after {timeout}s; see {log_path}")


def stop_envoy(p: subprocess.Popen) -> None:
    _stop(p)
    if p in _children:
        _children.remove(p)


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


# ---------------------------------------------------------------------------------------------
# Templates


def render(template: str, values: dict[str, str]) -> str:
    # Template comments document the placeholders; they are not part of the output.
    lines = (TEMPLATES / template).read_text().splitlines()
    text = "\n".join(ln for ln in lines if not ln.lstrip().startswith("#")) + "\n"
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", v)
    left = re.findall(r"\{\{[A-Z_]+\}\}", text)
    if left:
        raise ValueError(f"{template}: unfilled placeholders {sorted(set(left))}")
    return text


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
        snippet = render("filter-wasm.yaml", {
            "PLUGIN_NAME": lit("portcullis"),
            "VM_ID": lit("portcullis"),
            "WASM_PATH": lit(os.environ[cfg.wasm_env]),
            "CONFIGURATION": lit(json.dumps({"snapshot": snapshot}, separators=(",", ":"))),
        })
    elif cfg.kind == "jwt_authn":
        key = keys[cfg.alg]
        snippet = render("filter-jwt-authn.yaml", {
            "ISSUER": lit(key["issuer"]),
            "AUDIENCE": lit(RESOURCE),
            "JWKS": lit(json.dumps(key["jwks"], separators=(",", ":"))),
            "JWT_CACHE": "        jwt_cache_config: { jwt_cache_size: 4096 }" if cfg.cache else "",
        })
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
    url = f"http://127.0.0.1:{cfg.listen_port}{REQUEST_PATH}"
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--latency",
            "-s", str(HERE / "wrk-report.lua"), "-H", f"Authorization: Bearer {token}", url]
    before = cpu_ticks(cfg.proc.pid)
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    after = cpu_ticks(cfg.proc.pid)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()}")
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"no BENCH_JSON line in wrk output:\n{out.stdout}")
    r = json.loads(line[len("BENCH_JSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["cpu_s"] = (after - before) / CLK_TCK
    r["cpu_us_per_req"] = r["cpu_s"] * 1e6 / r["requests"] if r["requests"] else float("nan")
    r["errors"] = sum(r[k] for k in ("errors_connect", "errors_read", "errors_write",
                                     "errors_status", "errors_timeout"))
    return r


def sanity_check(cfg: Config, token: str) -> None:
    url = f"http://127.0.0.1:{cfg.listen_port}{REQUEST_PATH}"
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
    pat = re.compile(r"portcullis|token_cache|jwt_authn|wasm.*(fail|error)")
    return [ln for ln in body.splitlines() if pat.search(ln) and not ln.endswith(": 0")]


# ---------------------------------------------------------------------------------------------
# Report


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".0f", none="–"):
    return none if x is None else format(x, spec)


def summarize(configs: list[Config]) -> list[dict]:
    base = next((c for c in configs if c.num == 1 and c.samples), None)
    base_by_round = {s["round"]: s for s in base.samples} if base else {}
    rows = []
    for c in configs:
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
                if len(deltas) >= 4:
                    q = statistics.quantiles(deltas, n=4)
                    row["cpu_delta_iqr"] = [q[0], q[2]]
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
    wanted = {int(x) for x in os.environ.get("CONFIGS", "1 2 3 4 5 6 7 8 9 10 11").replace(",", " ").split()}
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
    up, _ = start_envoy(envoy, up_cfg, run_dir / "logs" / "upstream.log", up_admin)
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
                p, secs = start_envoy(envoy, cfg_path, log_path, c.admin_port)
                c.start_s.append(secs)
                if i < starts - 1:
                    stop_envoy(p)
                else:
                    c.proc = p
            sanity_check(c, keys[c.alg]["token"])
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            c.skip = f"failed: {e}"
            log(f"config {c.num} {c.name}: {c.skip}")
            if c.proc:
                stop_envoy(c.proc)
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
