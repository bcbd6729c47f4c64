"""What the three benchmark drivers share: bench/bench.py (Envoy filters),
bench/control-plane/bench.py (control-plane reads) and bench/sync/bench.py (policy sync and
audit). Python 3 standard library only.

Importing this module registers the clean-up: every process started through spawn() is stopped
by its own pid at exit and on SIGINT/SIGTERM, never by name.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
REPORT_LUA = BENCH_DIR / "wrk-report.lua"
POST_LUA = BENCH_DIR / "wrk-post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# Environment knobs


def env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "").strip()
    return int(v) if v else default


def env_float(name: str, default: float) -> float:
    v = os.environ.get(name, "").strip()
    return float(v) if v else default


# ---------------------------------------------------------------------------------------------
# Processes: every process we start is tracked and stopped at exit, by its own pid.

_children: list[subprocess.Popen] = []


def spawn(args: list[str], **popen_kwargs) -> subprocess.Popen:
    """subprocess.Popen, with the process tracked for stop_all()."""
    p = subprocess.Popen(args, **popen_kwargs)
    _children.append(p)
    return p


def stop(p: subprocess.Popen) -> None:
    """Stops one process (SIGTERM, then SIGKILL after 10 s) and forgets it."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in _children:
        _children.remove(p)


def stop_all() -> None:
    """Stops every tracked process, the last started first."""
    while _children:
        stop(_children[-1])


def _on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, all threads, in clock ticks (CLK_TCK a second)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


# ---------------------------------------------------------------------------------------------
# Loopback networking


def free_ports(n: int) -> list[int]:
    """n distinct free ports on 127.0.0.1 (all sockets held until every port is picked)."""
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


def free_port() -> int:
    return free_ports(1)[0]


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxies


def http(method: str, url: str, headers: dict | None = None, body: bytes | None = None,
         timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """One request; error statuses are returned, not raised. Never through a proxy from the
    environment: everything the benchmarks talk to is on loopback."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def wait_for(what: str, check, timeout: float, interval: float = 0.05):
    """Calls check() until it returns something truthy; raises after timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except OSError as e:
            last_error = e
        time.sleep(interval)
    why = f" ({last_error})" if last_error else ""
    raise RuntimeError(f"{what}: not within {timeout:g} s{why}")


# ---------------------------------------------------------------------------------------------
# The parts under test


def render(template: Path, values: dict[str, str]) -> str:
    """A bench/templates file with its {{NAME}} placeholders filled in. Template comments
    document the placeholders; they are not part of the output."""
    lines = template.read_text().splitlines()
    text = "\n".join(ln for ln in lines if not ln.lstrip().startswith("#")) + "\n"
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", v)
    left = re.findall(r"\{\{[A-Z_]+\}\}", text)
    if left:
        raise ValueError(f"{template.name}: unfilled placeholders {sorted(set(left))}")
    return text


def start_envoy(envoy: str, config: Path, admin_port: int, log: Path, concurrency: int = 1,
                stdout_to_log: bool = True, cwd: Path | None = None,
                timeout: float = 60.0) -> tuple[subprocess.Popen, float]:
    """Starts Envoy and waits for admin /ready to say LIVE (with xDS: the initial CDS and RDS
    have arrived); returns (process, seconds to ready). Its own log goes to `log`; its stdout
    (an access log, where the config has one) too, or nowhere with stdout_to_log=False."""
    # --use-dynamic-base-id: a free base id, so the benchmark's Envoys start next to any other
    # Envoy on the machine (with hot restart disabled no domain socket is bound; the flag keeps
    # that true whatever Envoy's defaults do).
    args = [envoy, "-c", str(config), "--concurrency", str(concurrency), "--disable-hot-restart",
            "--use-dynamic-base-id", "--log-level", "warn"]
    with open(log, "ab") as logf:
        t0 = time.monotonic()
        p = spawn(args, stdout=logf if stdout_to_log else subprocess.DEVNULL,
                  stderr=subprocess.STDOUT if stdout_to_log else logf,
                  stdin=subprocess.DEVNULL, cwd=cwd)

    def ready():
        if p.poll() is not None:
            raise RuntimeError(f"envoy exited with {p.returncode}; see {log}")
        status, _, body = http("GET", f"http://127.0.0.1:{admin_port}/ready", timeout=0.5)
        return status == 200 and body.strip() == b"LIVE"

    try:
        wait_for(f"envoy /ready ({log.name})", ready, timeout, 0.01)
    except RuntimeError:
        stop(p)
        raise
    return p, time.monotonic() - t0


def start_portcullis(portcullis: str, port: int, settings: dict[str, str], log: Path,
                     timeout: float = 30.0) -> subprocess.Popen:
    """Starts `portcullis serve` on 127.0.0.1:port with only the given PORTCULLIS_* (and other)
    settings, none inherited from the caller's environment, and waits for /healthz."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("PORTCULLIS_") or k.startswith("IDE_OAUTH") or k in (
                "DATABASE_URL", "MCP_ADVERTISED_SCOPES"):
            del env[k]
    env.update(settings)
    env.update({
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        "RUST_LOG": os.environ.get("RUST_LOG", "info"),
    })
    with open(log, "w") as logf:
        p = spawn([portcullis, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                  stdout=subprocess.DEVNULL, stderr=logf, stdin=subprocess.DEVNULL)

    def healthy():
        if p.poll() is not None:
            raise RuntimeError(f"portcullis serve exited ({p.returncode}); see {log}")
        return http("GET", f"http://127.0.0.1:{port}/healthz", timeout=0.5)[0] == 200

    wait_for("portcullis serve /healthz", healthy, timeout, 0.1)
    return p


# ---------------------------------------------------------------------------------------------
# Load


def run_wrk(url: str, seconds: float, threads: int, connections: int,
            headers: dict[str, str] | None = None, cpu_pids: tuple[int, ...] = (),
            before_cpu_after=None, post_body: str | None = None) -> tuple[dict, list[float]]:
    """One wrk sample with bench/wrk-report.lua (GET), or bench/wrk-post.lua POSTing post_body
    as JSON. Returns the report (requests, duration_us, p50_us, p99_us, errors_*, plus rps and
    errors, their sum) and the CPU seconds each of cpu_pids used from just before the load to
    just after it, or after before_cpu_after() returns when given (work the load leaves behind,
    such as shipping audit records)."""
    script = REPORT_LUA if post_body is None else POST_LUA
    env = None
    if post_body is not None:
        env = dict(os.environ, BENCH_BODY=post_body, BENCH_REPORT_LUA=str(REPORT_LUA))
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency",
            "-s", str(script)]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    args.append(url)
    before = [cpu_ticks(pid) for pid in cpu_pids]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, env=env)
    if before_cpu_after is not None:
        before_cpu_after()
    after = [cpu_ticks(pid) for pid in cpu_pids]
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()}")
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"no BENCH_JSON line in wrk output:\n{out.stdout}")
    r = json.loads(line[len("BENCH_JSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
    r["errors"] = sum(r[k] for k in ("errors_connect", "errors_read", "errors_write",
                                     "errors_status", "errors_timeout"))
    return r, [(a - b) / CLK_TCK for a, b in zip(after, before)]


# ---------------------------------------------------------------------------------------------
# Report


def median(xs, empty=None):
    """The median of the values that are not None; `empty` when there are none."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else empty


def iqr(xs: list[float]) -> list[float] | None:
    """[first quartile, third quartile], from four values on; None with fewer."""
    if len(xs) < 4:
        return None
    q = statistics.quantiles(xs, n=4)
    return [q[0], q[2]]


def pct(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    xs = sorted(xs)
    if not xs:
        return None
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def load1() -> float:
    return os.getloadavg()[0]


def machine(dirty_paths: list[str]) -> dict:
    """CPUs, CPU model and the commit, `+dirty` when dirty_paths (relative to the repository
    root) have uncommitted changes."""
    model = ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                model = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                *dirty_paths], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit, dirty = "", ""
    return {"cpus": os.cpu_count(), "cpu_model": model,
            "commit": commit + ("+dirty" if dirty else "")}
