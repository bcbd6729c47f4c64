#!/usr/bin/env python3
"""Policy sync and audit benchmark. Run it through `bash bench/sync/run.sh`, which builds the
inputs. See docs/benchmarks.md, "Policy sync and audit".

1. Propagation: `portcullis serve` (release, SQLite in a throwaway directory) and one Envoy
   (`--concurrency 2`) bootstrapped from envoy/bootstrap-xds.yaml: routes by xDS, the policy from
   the sync singleton, the filter in shared_snapshot mode with audit on, as shipped. The group
   `devs` is mapped alternately to the scope `s` (which grants everything on the one registered
   server) and to no scope, CHANGES times, through `PUT /api/group-mappings/devs`. Keep-alive
   pollers send `GET /bench/mcp` with a `devs` token through Envoy all the time (200 = allowed,
   403 = denied); the propagation time of one change is from just before the PUT is sent to the
   answer of the first request decided the new way. A watcher long-polls `GET /v1/policy` with
   the sync token, as Envoy's singleton does, and gives the control-plane side: from the PUT to
   the long-poll returning the new version. One series per entry of POLLERS (default "1 2": one
   connection, then two, placed on different Envoy workers when the kernel lets us).
2. Audit: a second Envoy, identical but with `"audit": false` in the filter's configuration.
   wrk drives each in alternating rounds (on, off, then off, on, ...); per sample requests/s,
   p50/p99, Envoy CPU per request (utime + stime from /proc, all threads, the singleton's
   shipping included) and the control plane's CPU per request (ingesting the batches). After
   the rounds: decisions, queued, shipped and dropped events from Envoy's stats against the
   records the control plane received (`portcullis_audit_events_received_total`).

With REGISTRY_SERVERS=N (issue 9, "how the policy path grows with the registry") the registry
is pre-seeded before Envoy starts: N more servers, GRANTS_PER_SERVER (10) grants per server
spread over N scopes, MAPPINGS_PER_SERVER (1) group mappings per server, written straight into
the SQLite file (through the API every write would rebuild the snapshot) after a first start
ran the migrations, then `portcullis serve` is started again. The propagation phase is the same;
the report adds the control plane's compile steps (from its "policy snapshot published" log
lines), the Envoy singleton's and workers' load times (from the filter's log, enabled through
Envoy's admin `/logging?wasm=info`), Envoy's RSS, and `policy/examples/snapshot_load` run on the
served snapshot natively (SNAPSHOT_LOAD_BIN) and on V8 through Node (SNAPSHOT_LOAD_WASM).

Environment: CHANGES=200 POLLERS="1 2" GAP_MS=200 POLL_INTERVAL_MS=1 CHANGE_TIMEOUT=5
ROUNDS=8 DURATION=5 WARMUP=2 CONNECTIONS=16 THREADS=1 ACCESS_LOG=1 PHASES="propagation audit"
REGISTRY_SERVERS=0 GRANTS_PER_SERVER=10 MAPPINGS_PER_SERVER=1 BENCH_OUT=target/bench;
ENVOY_BIN, PORTCULLIS_BIN, FILTER_WASM, SNAPSHOT_LOAD_BIN, SNAPSHOT_LOAD_WASM (set by run.sh).
"""

from __future__ import annotations

import datetime
from http import client as http_client
import shutil
import sqlite3
import json
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import benchlib  # noqa: E402  (bench/benchlib.py, found through the line above)
from benchlib import env_float, env_int, free_ports, http, median, pct, wait_for  # noqa: E402

BOOTSTRAP = ROOT / "envoy" / "bootstrap-xds.yaml"
UPSTREAM_TEMPLATE = ROOT / "bench" / "templates" / "upstream.yaml"

CHANGES = env_int("CHANGES", 200)
POLLERS = [int(x) for x in os.environ.get("POLLERS", "1 2").replace(",", " ").split()]
GAP_S = env_float("GAP_MS", 200) / 1000
POLL_INTERVAL_S = env_float("POLL_INTERVAL_MS", 1) / 1000
CHANGE_TIMEOUT = env_float("CHANGE_TIMEOUT", 5)
ROUNDS = env_int("ROUNDS", 8)
DURATION = env_float("DURATION", 5)
WARMUP = env_float("WARMUP", 2)
CONNECTIONS = env_int("CONNECTIONS", 16)
THREADS = env_int("THREADS", 1)
ACCESS_LOG = os.environ.get("ACCESS_LOG", "1") != "0"
PHASES = os.environ.get("PHASES", "propagation audit").replace(",", " ").split()
OUT = Path(os.environ.get("BENCH_OUT", str(ROOT / "target" / "bench"))).resolve()
REGISTRY_SERVERS = env_int("REGISTRY_SERVERS", 0)
GRANTS_PER_SERVER = env_int("GRANTS_PER_SERVER", 10)
MAPPINGS_PER_SERVER = env_int("MAPPINGS_PER_SERVER", 1)

SERVER_NAME = "bench"
SERVER_PATH = "/bench"
MCP_PATH = "/bench/mcp"
GROUP = "devs"
SCOPE = "s"
AUDIENCE = "portcullis-bench"
# Nothing listens on port 9: the static JWKS file means the IdP is never contacted, and if
# anything tried, it would fail at once instead of hanging.
ISSUER = "http://127.0.0.1:9/bench-idp"
KID = "bench-sync"
# The shipped filter configuration, and the one the audit-off Envoy gets instead.
FILTER_CONFIG_SHIPPED = """'{"shared_snapshot": true, "audit": true}'"""
FILTER_CONFIG_AUDIT_OFF = """'{"shared_snapshot": true, "audit": false}'"""
# Audit on, but the filter does not write its record for the access log (the access-log
# channel, issue 12): what that channel costs is this Envoy against the shipped one.
FILTER_CONFIG_NO_ACCESS_LOG = """'{"shared_snapshot": true, "audit": true, "access_log": false}'"""
# The Envoys of the audit phase: name, audit on, access-log channel on.
AUDIT_VARIANTS = {"audit-on": (True, True), "audit-on-no-access-log": (True, False),
                  "audit-off": (False, False)}
AUDIT_STATS = ("queued", "unqueued", "shipped", "dropped", "ship_errors")


def say(msg: str) -> None:
    print(f"[sync-bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# A minimal keep-alive HTTP/1.1 client: one connection, one request at a time, TCP_NODELAY, so
# what is timed is Envoy and not the client's buffering.


class KeepAlive:
    def __init__(self, port: int, path: str, token: str):
        self.port = port
        self.request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Authorization: Bearer {token}\r\n"
                        "User-Agent: portcullis-sync-bench\r\n\r\n").encode()
        self.sock: socket.socket | None = None
        self.buf = b""
        self.connects = 0

    def connect(self) -> None:
        self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.connects += 1

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by Envoy")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> None:
        while len(self.buf) < n:
            self._fill()
        self.buf = self.buf[n:]

    def get(self) -> int:
        """Sends the request and reads the whole answer; returns its status."""
        if self.sock is None:
            self.connect()
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            headers[k.strip().lower()] = v.strip().lower()
        if b"content-length" in headers:
            self._exact(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                self._exact(size + 2)
                if size == 0:
                    break
        elif status not in (204, 304) and status >= 200:
            raise ConnectionError(f"answer {status} without a length")
        if headers.get(b"connection") == b"close":
            self.close()
        return status


# ---------------------------------------------------------------------------------------------
# Pollers (requests through Envoy) and the watcher (the control plane's long-poll)


class Poller(threading.Thread):
    """Sends GET /bench/mcp with the `devs` token on one keep-alive connection, back to back
    (POLL_INTERVAL apart), and records every change of the answer's status."""

    def __init__(self, port: int, token: str):
        super().__init__(daemon=True)
        self.client = KeepAlive(port, MCP_PATH, token)
        self.lock = threading.Lock()
        self.transitions: list[tuple[float, float, int]] = []  # (sent, answered, status)
        self.last: int | None = None
        self.requests = 0
        self.failures = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            sent = time.monotonic()
            try:
                status = self.client.get()
            except (OSError, ConnectionError, ValueError, IndexError):
                self.failures += 1
                self.client.close()
                time.sleep(0.01)
                continue
            answered = time.monotonic()
            self.requests += 1
            if status != self.last:
                with self.lock:
                    self.transitions.append((sent, answered, status))
                    self.last = status
            if POLL_INTERVAL_S > 0:
                time.sleep(POLL_INTERVAL_S)

    def since(self, t0: float) -> list[tuple[float, float, int]]:
        with self.lock:
            return [t for t in self.transitions if t[1] >= t0]


class Watcher(threading.Thread):
    """Long-polls GET /v1/policy?wait=30 with If-None-Match (and `deltas=1` once it has a
    version), as the sync singleton does, and records when each new version arrives."""

    def __init__(self, port: int, sync_token: str):
        super().__init__(daemon=True)
        self.port = port
        self.sync_token = sync_token
        self.lock = threading.Lock()
        self.arrivals: list[tuple[float, int]] = []
        self.version = 0
        self.etag: str | None = None

    def run(self) -> None:
        conn = http_client.HTTPConnection("127.0.0.1", self.port, timeout=45)
        while True:
            headers = {"Authorization": f"Bearer {self.sync_token}"}
            path = "/v1/policy?wait=30"
            if self.etag:
                headers["If-None-Match"] = self.etag
                path += "&deltas=1"
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http_client.HTTPException):
                conn.close()
                time.sleep(0.1)
                continue
            arrived = time.monotonic()
            if resp.status == 200:
                version = int(resp.getheader("x-portcullis-policy-version", "0"))
                with self.lock:
                    self.arrivals.append((arrived, version))
                    self.version = version
                    self.etag = resp.getheader("ETag")
            elif resp.status != 304:
                time.sleep(0.2)

    def first_after(self, t0: float, version: int) -> tuple[float, int] | None:
        with self.lock:
            return next(((t, v) for t, v in self.arrivals if t >= t0 and v > version), None)


# ---------------------------------------------------------------------------------------------
# Setup


def make_token(portcullis: str, key_dir: Path) -> str:
    subprocess.run([portcullis, "dev", "keygen", "--alg", "RS256", "--kid", KID, "--out",
                    str(key_dir), "--force"], check=True, stderr=subprocess.DEVNULL)
    return subprocess.run(
        [portcullis, "dev", "token", "--key", str(key_dir / "signing-key.pem"), "--alg", "RS256",
         "--kid", KID, "--iss", ISSUER, "--aud", AUDIENCE, "--sub", "bench-dev", "--groups", GROUP,
         "--ttl", "86400"],
        check=True, capture_output=True, text=True).stdout.strip()


def start_envoy(envoy: str, config: Path, admin_port: int, log: Path,
                concurrency: int) -> subprocess.Popen:
    """Starts Envoy from the repository root (where the shipped config's relative paths point)
    and waits for /ready (LIVE: the initial CDS and RDS have arrived). Its stdout (the access
    log) goes nowhere; its own log to `log`."""
    p, _ = benchlib.start_envoy(envoy, config, admin_port, log, concurrency,
                                stdout_to_log=False, cwd=ROOT,
                                timeout=60 + REGISTRY_SERVERS / 100)
    return p


def start_portcullis(portcullis: str, data_dir: Path, port: int, xds_port: int, public_url: str,
                     admin_token: str, sync_token: str, jwks_file: Path,
                     log: Path) -> subprocess.Popen:
    return benchlib.start_portcullis(portcullis, port, {
        "PORTCULLIS_DATA_DIR": str(data_dir),
        "PORTCULLIS_PUBLIC_URL": public_url,
        "PORTCULLIS_ADMIN_TOKEN": admin_token,
        "PORTCULLIS_SYNC_TOKEN": sync_token,
        "PORTCULLIS_XDS_LISTEN": f"127.0.0.1:{xds_port}",
        "PORTCULLIS_IDP_ISSUER": ISSUER,
        "PORTCULLIS_IDP_JWKS_FILE": str(jwks_file),
        "PORTCULLIS_IDP_AUDIENCE": AUDIENCE,
        "PORTCULLIS_IDP_ALGORITHMS": "RS256",
    }, log)


def api(base: str, admin: str, method: str, path: str, obj) -> tuple[int, bytes]:
    status, _, body = http(method, base + path,
                           {"Authorization": f"Bearer {admin}",
                            "Content-Type": "application/json"}, json.dumps(obj).encode())
    return status, body


def set_up_registry(base: str, admin: str, upstream_port: int) -> None:
    status, body = api(base, admin, "POST", "/api/servers/register", {
        "name": SERVER_NAME, "path": SERVER_PATH,
        "proxy_pass_url": f"http://127.0.0.1:{upstream_port}"})
    if status != 201:
        raise RuntimeError(f"registering {SERVER_PATH}: {status} {body[:300]!r}")
    status, body = api(base, admin, "PUT", f"/api/scopes/{SCOPE}", {
        "description": "everything on the benchmark server",
        "grants": [{"server": SERVER_NAME, "methods": ["*"], "tools": ["*"]}]})
    if status not in (200, 201):
        raise RuntimeError(f"PUT /api/scopes/{SCOPE}: {status} {body[:300]!r}")
    status, body = api(base, admin, "PUT", f"/api/group-mappings/{GROUP}", {"scopes": [SCOPE]})
    if status not in (200, 201):
        raise RuntimeError(f"PUT /api/group-mappings/{GROUP}: {status} {body[:300]!r}")


def render_bootstrap(audit: bool, node: str, admin_port: int, listen_port: int, cp_port: int,
                     xds_port: int, sync_token: str, wasm: str, channel: bool = True) -> str:
    """envoy/bootstrap-xds.yaml as shipped, with our ports, token and module path; the audit-off
    Envoy differs only in the filter's configuration."""
    text = BOOTSTRAP.read_text()
    edits = [
        ("id: portcullis-envoy-1", f"id: {node}"),
        ("port_value: 9901}", f"port_value: {admin_port}}}"),
        ("port_value: 10000}", f"port_value: {listen_port}}}"),
        ('"authority": "127.0.0.1:8080"', f'"authority": "127.0.0.1:{cp_port}"'),
        ("port_value: 8080}", f"port_value: {cp_port}}}"),
        ("port_value: 18000}", f"port_value: {xds_port}}}"),
        ("REPLACE_WITH_THE_SYNC_TOKEN", sync_token),
        ("filename: target/wasm32-wasip1/release/portcullis_filter.wasm", f"filename: {wasm}"),
    ]
    if not audit:
        edits.append((FILTER_CONFIG_SHIPPED, FILTER_CONFIG_AUDIT_OFF))
    elif not channel:
        edits.append((FILTER_CONFIG_SHIPPED, FILTER_CONFIG_NO_ACCESS_LOG))
    for old, new in edits:
        if old not in text:
            raise RuntimeError(f"{BOOTSTRAP}: expected {old!r} in it (the shipped config changed; "
                               "update bench/sync/bench.py)")
        text = text.replace(old, new)
    if not ACCESS_LOG:
        text, n = re.subn(r"^\s+access_log:\n\s+- name: envoy\.access_loggers\.stdout\n"
                          r"\s+typed_config:\n\s+\"@type\": [^\n]*StdoutAccessLog\n", "", text,
                          flags=re.M)
        if n != 1:
            raise RuntimeError(f"{BOOTSTRAP}: could not find the stdout access log to drop")
    return text


class EnvoyUnderTest:
    def __init__(self, name: str, audit: bool, proc: subprocess.Popen, listen_port: int,
                 admin_port: int):
        self.name = name
        self.audit = audit
        self.proc = proc
        self.listen_port = listen_port
        self.admin_port = admin_port
        self.samples: list[dict] = []

    def url(self, path: str = MCP_PATH) -> str:
        return f"http://127.0.0.1:{self.listen_port}{path}"

    def stats(self, pattern: str = "portcullis") -> dict[str, int]:
        _, _, body = http("GET", f"http://127.0.0.1:{self.admin_port}/stats?filter={pattern}")
        out = {}
        for ln in body.decode(errors="replace").splitlines():
            name, _, value = ln.rpartition(": ")
            if value.strip().isdigit():
                out[name.strip()] = int(value)
        return out

    def worker_connections(self) -> dict[str, int]:
        """Active downstream connections per worker on the listener."""
        st = self.stats(r"listener\..*worker_[0-9]+\.downstream_cx_active")
        return {re.search(r"worker_[0-9]+", k).group(0): v for k, v in st.items()}


def launch_envoy(envoy: str, run_dir: Path, audit: bool, cp_port: int, xds_port: int,
                 sync_token: str, wasm: str, token: str,
                 ports: tuple[int, int] | None = None, channel: bool = True) -> EnvoyUnderTest:
    name = next(n for n, v in AUDIT_VARIANTS.items() if v == (audit, channel and audit))
    listen_port, admin_port = ports or free_ports(2)
    config = run_dir / f"envoy-{name}.yaml"
    config.write_text(render_bootstrap(audit, f"portcullis-bench-{name}", admin_port, listen_port,
                                       cp_port, xds_port, sync_token, wasm, channel))
    config.chmod(0o600)  # it holds the sync token
    proc = start_envoy(envoy, config, admin_port, run_dir / f"envoy-{name}.log", 2)
    e = EnvoyUnderTest(name, audit, proc, listen_port, admin_port)

    # The route comes by xDS and the policy from the singleton: wait for both.
    def allowed():
        status, _, _ = http("GET", e.url(), {"Authorization": f"Bearer {token}"}, timeout=2)
        return status == 200

    wait_for(f"envoy {name}: GET {MCP_PATH} with the token answered 200", allowed,
             30 + REGISTRY_SERVERS / 100)
    status, _, _ = http("GET", e.url())
    if status != 401:
        raise RuntimeError(f"envoy {name}: GET {MCP_PATH} without a token: {status}, expected 401")
    say(f"envoy {name} (pid {proc.pid}, 2 workers) on 127.0.0.1:{listen_port}, "
        f"admin {admin_port}: 200 with the token, 401 without")
    return e


# ---------------------------------------------------------------------------------------------
# Propagation


def place_pollers(envoy: EnvoyUnderTest, pollers: list[Poller]) -> list[str]:
    """Opens each poller's connection and tries to give each a worker of its own (the kernel
    picks the worker; reconnecting gives it another chance). Returns the workers, as far as
    Envoy's per-worker connection gauges tell them apart ("?" when they do not)."""

    def settled_connections(total: int | None) -> dict[str, int]:
        # The gauges follow closes and accepts a moment later: wait for the expected total
        # (or, when it is not known, for two equal readings).
        deadline = time.monotonic() + 2
        prev = envoy.worker_connections()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            cur = envoy.worker_connections()
            if (sum(cur.values()) == total) if total is not None else (cur == prev):
                return cur
            prev = cur
        return prev

    workers: list[str] = []
    for p in pollers:
        worker = "?"
        for _attempt in range(40):
            p.client.close()
            before = settled_connections(None)
            p.client.connect()
            p.client.get()
            after = settled_connections(sum(before.values()) + 1)
            gained = [w for w in after if after[w] > before.get(w, 0)]
            worker = gained[0] if len(gained) == 1 else "?"
            if worker == "?" or worker not in workers or len(workers) >= 2:
                break
        workers.append(worker)
    return workers


def propagation_series(envoy: EnvoyUnderTest, base: str, admin: str, token: str,
                       watcher: Watcher, n_pollers: int, allowed_now: bool) -> tuple[list, dict]:
    pollers = [Poller(envoy.listen_port, token) for _ in range(n_pollers)]
    workers = place_pollers(envoy, pollers)
    for p in pollers:
        p.start()
    say(f"propagation, {n_pollers} poller(s) on {', '.join(workers)}: {CHANGES} changes")
    api_conn = http_client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=10)
    auth = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    rng = random.Random(4)
    samples = []
    state = allowed_now
    for i in range(CHANGES):
        expect_now = 200 if state else 403
        wait_for(f"change {i}: every poller sees {expect_now} before the change",
                 lambda: all(p.last == expect_now for p in pollers), CHANGE_TIMEOUT, 0.002)
        version_before = watcher.version
        time.sleep(GAP_S + rng.uniform(0, GAP_S / 2))
        target = not state
        expect = 200 if target else 403
        body = json.dumps({"scopes": [SCOPE] if target else []})
        t0_wall = time.time()
        t0 = time.monotonic()
        api_conn.request("PUT", f"/api/group-mappings/{GROUP}", body=body, headers=auth)
        resp = api_conn.getresponse()
        resp.read()
        t_put = time.monotonic()
        if resp.status != 200:
            raise RuntimeError(f"change {i}: PUT /api/group-mappings/{GROUP}: {resp.status}")
        deadline = t0 + CHANGE_TIMEOUT
        flips: list[tuple[float, float] | None] = [None] * n_pollers
        while time.monotonic() < deadline:
            for k, p in enumerate(pollers):
                if flips[k] is None:
                    hit = next(((s, a) for s, a, st in p.since(t0) if st == expect), None)
                    flips[k] = hit
            if all(flips) and watcher.first_after(t0, version_before):
                break
            time.sleep(0.001)
        cp = watcher.first_after(t0, version_before)
        odd = sorted({st for p in pollers for _, _, st in p.since(t0) if st not in (200, 403)})
        sample = {
            "change": i, "pollers": n_pollers, "to": "allow" if target else "deny",
            "t0_wall": t0_wall,
            "put_ms": (t_put - t0) * 1e3,
            "cp_ms": (cp[0] - t0) * 1e3 if cp else None,
            "version": cp[1] if cp else None,
            "sent_ms": [(f[0] - t0) * 1e3 if f else None for f in flips],
            "answered_ms": [(f[1] - t0) * 1e3 if f else None for f in flips],
            "other_statuses": odd,
        }
        samples.append(sample)
        if not all(flips):
            say(f"change {i}: not every poller saw {expect} within {CHANGE_TIMEOUT:g} s")
        state = target
    for p in pollers:
        p.halt.set()
    for p in pollers:
        p.join(timeout=5)
        p.client.close()
    api_conn.close()
    info = {"pollers": n_pollers, "workers": workers,
            "requests": sum(p.requests for p in pollers),
            "failures": sum(p.failures for p in pollers),
            "connects": sum(p.client.connects for p in pollers),
            "final_state_allowed": state}
    return samples, info


def dist(xs: list[float]) -> dict:
    return {"n": len(xs), "p50": pct(xs, 50), "p95": pct(xs, 95), "p99": pct(xs, 99),
            "max": max(xs) if xs else None}


def summarize_series(samples: list[dict]) -> list[tuple[str, dict, int]]:
    """Rows (what, distribution, misses) of one series."""
    n = len(samples)
    rows = []
    put = [s["put_ms"] for s in samples]
    rows.append(("PUT answered (API)", dist(put), 0))
    cp = [s["cp_ms"] for s in samples if s["cp_ms"] is not None]
    rows.append(("`/v1/policy` long-poll returned the new version", dist(cp), n - len(cp)))
    k = samples[0]["pollers"] if samples else 1
    complete = [s for s in samples if all(a is not None for a in s["answered_ms"])]
    first = [min(a for a in s["answered_ms"] if a is not None) for s in samples
             if any(a is not None for a in s["answered_ms"])]
    first_sent = [min(a for a in s["sent_ms"] if a is not None) for s in samples
                  if any(a is not None for a in s["sent_ms"])]
    if k == 1:
        rows.append(("Envoy: first request decided the new way, answered", dist(first),
                     n - len(first)))
        rows.append(("Envoy: the same request, sent", dist(first_sent), n - len(first_sent)))
    else:
        rows.append(("Envoy: first connection decided the new way, answered", dist(first),
                     n - len(first)))
        last = [max(s["answered_ms"]) for s in complete]
        rows.append((f"Envoy: all {k} connections decided the new way, answered", dist(last),
                     n - len(last)))
    return rows


# ---------------------------------------------------------------------------------------------
# Audit


def trail_shipped(base: str) -> None:
    """Waits until the control plane's count of received audit records has not moved for
    400 ms (the singleton ships a partial batch on its next 200 ms tick), at most 10 s."""
    deadline = time.monotonic() + 10
    last, still = None, 0
    while time.monotonic() < deadline and still < 4:
        cur = cp_metrics(base).get("portcullis_audit_events_received_total")
        still = still + 1 if cur == last else 0
        last = cur
        time.sleep(0.1)


def run_wrk(e: EnvoyUnderTest, token: str, seconds: float, cp_pid: int, base: str) -> dict:
    """One wrk sample. CPU is read before the load and after the audit records of the sample
    have reached the control plane, so the shipping of the last batches counts too (the same
    wait follows audit-off samples)."""
    load = benchlib.load1()
    r, (envoy_cpu_s, cp_cpu_s) = benchlib.run_wrk(
        e.url(), seconds, THREADS, CONNECTIONS, {"Authorization": f"Bearer {token}"},
        (e.proc.pid, cp_pid), before_cpu_after=lambda: trail_shipped(base))
    n = r["requests"] or float("nan")
    r["envoy_cpu_us_per_req"] = envoy_cpu_s * 1e6 / n
    r["cp_cpu_us_per_req"] = cp_cpu_s * 1e6 / n
    r["load1"] = load
    return r


def cp_metrics(base: str) -> dict[str, float]:
    _, _, body = http("GET", f"{base}/metrics")
    out = {}
    for ln in body.decode(errors="replace").splitlines():
        if ln.startswith("portcullis_audit_events_") or ln.startswith("portcullis_policy_version"):
            name, _, value = ln.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def audit_counters(envoys: list[EnvoyUnderTest], base: str) -> dict[str, float]:
    st: dict[str, int] = {}
    for e in envoys:
        for k, v in e.stats().items():
            st[f"{e.name}:{k}"] = v
    c = {"decisions": sum(v for k, v in st.items()
                          if k.endswith("portcullis.allowed") or ".portcullis.denied." in k)}
    for s in AUDIT_STATS:
        c[s] = sum(v for k, v in st.items() if k.endswith(f"portcullis.audit.{s}"))
    m = cp_metrics(base)
    c["cp_received"] = m.get("portcullis_audit_events_received_total", 0.0)
    c["cp_dropped"] = m.get("portcullis_audit_events_dropped_total", 0.0)
    return c


def settle(e: list[EnvoyUnderTest], base: str, timeout: float = 30) -> dict[str, float]:
    """Waits until the audit trail stops moving (wasm counters are flushed on timer ticks, the
    singleton ships in batches) and returns the counters."""
    deadline = time.monotonic() + timeout
    prev = audit_counters(e, base)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        cur = audit_counters(e, base)
        if cur == prev:
            return cur
        prev = cur
    say(f"audit counters still moving after {timeout:g} s; reporting what they say now")
    return prev


def audit_phase(envoys: list[EnvoyUnderTest], base: str, token: str, cp_pid: int) -> dict:
    on = [e for e in envoys if e.audit]
    if WARMUP > 0:
        for e in envoys:
            run_wrk(e, token, WARMUP, cp_pid, base)
        say(f"warmed up ({WARMUP:g} s each)")
    before = settle(on, base)
    for rnd in range(ROUNDS):
        for e in (envoys if rnd % 2 == 0 else list(reversed(envoys))):
            r = run_wrk(e, token, DURATION, cp_pid, base)
            r.update(round=rnd, envoy=e.name)
            e.samples.append(r)
            flag = f" ERRORS={r['errors']}" if r["errors"] else ""
            say(f"round {rnd + 1}/{ROUNDS} {e.name}: {r['rps']:.0f} req/s, p99 {r['p99_us']} µs, "
                f"Envoy {r['envoy_cpu_us_per_req']:.1f} CPU µs/req, control plane "
                f"{r['cp_cpu_us_per_req']:.1f}, load {r['load1']:.2f}{flag}")
    after = settle(on, base)
    delta = {k: after[k] - before[k] for k in after}
    delta["wrk_requests"] = sum(s["requests"] for e in on for s in e.samples)
    return {"before": before, "after": after, "delta": delta}


def summarize_audit(envoys: list[EnvoyUnderTest]) -> list[dict]:
    off = next(e for e in envoys if not e.audit)
    off_by_round = {s["round"]: s for s in off.samples if s["errors"] == 0}
    rows = []
    for e in envoys:
        good = [s for s in e.samples if s["errors"] == 0]
        pairs = [(s, off_by_round[s["round"]]) for s in good if s["round"] in off_by_round]
        row = {"name": e.name, "audit": e.audit, "channel": AUDIT_VARIANTS[e.name][1],
               "kept": len(good),
               "dropped_samples": len(e.samples) - len(good)}
        if good:
            row.update({
                "rps": median(s["rps"] for s in good),
                "p50_us": median(s["p50_us"] for s in good),
                "p99_us": median(s["p99_us"] for s in good),
                "envoy_cpu": median(s["envoy_cpu_us_per_req"] for s in good),
                "cp_cpu": median(s["cp_cpu_us_per_req"] for s in good),
                "load1": median(s["load1"] for s in good),
            })
        if pairs and e.audit:
            row["rps_ratio"] = median(s["rps"] / b["rps"] for s, b in pairs)
            deltas = [s["envoy_cpu_us_per_req"] - b["envoy_cpu_us_per_req"] for s, b in pairs]
            row["envoy_cpu_delta"] = median(deltas)
            quartiles = benchlib.iqr(deltas)
            if quartiles:
                row["envoy_cpu_delta_iqr"] = quartiles
        elif not e.audit:
            row["rps_ratio"] = 1.0
            row["envoy_cpu_delta"] = 0.0
        rows.append(row)
    # The access-log channel's own cost: the shipped Envoy against the one that does not write
    # the record, paired by round (same load, same moment).
    no_log = next((e for e in envoys if e.audit and not AUDIT_VARIANTS[e.name][1]), None)
    shipped = next((e for e in envoys if e.audit and AUDIT_VARIANTS[e.name][1]), None)
    if no_log and shipped:
        base_by_round = {s["round"]: s for s in no_log.samples if s["errors"] == 0}
        deltas = [s["envoy_cpu_us_per_req"] - base_by_round[s["round"]]["envoy_cpu_us_per_req"]
                  for s in shipped.samples if s["errors"] == 0 and s["round"] in base_by_round]
        if deltas:
            for row in rows:
                if row["name"] == shipped.name:
                    row["channel_delta"] = median(deltas)
                    row["channel_delta_iqr"] = benchlib.iqr(deltas)
    return rows


# ---------------------------------------------------------------------------------------------
# Registry scale (REGISTRY_SERVERS): seeding, and what each step of a change costs


def seed_registry(db_file: Path, n: int) -> dict:
    """Writes n servers, n scopes holding GRANTS_PER_SERVER grants each (every server named by
    about GRANTS_PER_SERVER grants) and n × MAPPINGS_PER_SERVER group mappings of three scopes
    each straight into the SQLite file, as the API would store them (schema:
    control-plane/migrations/0001_registry.sql). The server must not be running."""
    now = int(time.time())
    names = [f"seed-{i:05d}" for i in range(n)]
    stride = max(1, n // max(1, GRANTS_PER_SERVER))
    methods = (["tools/call"], ["tools/list", "initialize"], ["*"])
    grants = 0

    def scope(i: int) -> tuple:
        nonlocal grants
        gs = [{"server": names[(i + k * stride) % n], "methods": methods[k % 3],
               "tools": [f"tool-{k}", f"prefix-{i % 97}-*"]} for k in range(GRANTS_PER_SERVER)]
        grants += len(gs)
        return (f"seed-s{i:05d}", "seeded by bench/sync", json.dumps(gs), now)

    def mapping(j: int) -> tuple:
        scopes = sorted({f"seed-s{j % n:05d}", f"seed-s{(j * 31 + 1) % n:05d}",
                         f"seed-s{(j * 7 + 3) % n:05d}"})
        return (f"seed-g{j:06d}", json.dumps(scopes), now)

    con = sqlite3.connect(db_file)
    try:
        with con:
            con.executemany(
                "INSERT INTO servers (path, name, description, proxy_pass_url, tags, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((f"/{name}", name, "seeded by bench/sync", "http://127.0.0.1:9",
                  '["seeded"]', now, now) for name in names))
            con.executemany("INSERT INTO mcp_scopes (name, description, grants, updated_at) "
                            "VALUES (?, ?, ?, ?)", (scope(i) for i in range(n)))
            con.executemany("INSERT INTO group_mappings (group_name, scopes, updated_at) "
                            "VALUES (?, ?, ?)",
                            (mapping(j) for j in range(n * MAPPINGS_PER_SERVER)))
    finally:
        con.close()
    return {"servers": n, "scopes": n, "grants": grants, "mappings": n * MAPPINGS_PER_SERVER}


def rss_mb(pid: int) -> float | None:
    try:
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) / 1024
    except OSError:
        pass
    return None


ANSI = re.compile(r"\x1b\[[0-9;]*m")
FIELD = re.compile(r"\b(\w+)=(\d+)\b")


def publish_log(log: Path) -> dict[int, dict[str, int]]:
    """The control plane's "policy snapshot published" lines, by version."""
    out = {}
    for ln in log.read_text(errors="replace").splitlines():
        ln = ANSI.sub("", ln)
        if "policy snapshot published" in ln:
            fields = {k: int(v) for k, v in FIELD.findall(ln)}
            if "version" in fields:
                out[fields["version"]] = fields
    return out


ENVOY_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3})\]\[(\d+)\]")
FILTER_EVENT = re.compile(r"policy version (\d+) (accepted from the control plane|"
                          r"loaded from shared data)")


def filter_log(log: Path) -> dict[int, dict]:
    """The filter's own log lines (wasm=info): per version, when the singleton accepted it and
    when each worker thread loaded it (wall-clock seconds, ms resolution)."""
    out: dict[int, dict] = {}
    for ln in log.read_text(errors="replace").splitlines():
        m, e = ENVOY_LINE.match(ln), FILTER_EVENT.search(ln)
        if not (m and e):
            continue
        t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1e3
        v = out.setdefault(int(e.group(1)), {"accepted": None, "loaded": {}})
        if e.group(2).startswith("accepted"):
            v["accepted"] = v["accepted"] or t
        else:
            v["loaded"].setdefault(m.group(3), t)
    return out


def snapshot_load(snapshot: Path) -> dict:
    """policy/examples/snapshot_load on the served snapshot: natively, and on V8 (Node's WASI)
    as in Envoy, when the binaries are there."""
    out = {}
    native = os.environ.get("SNAPSHOT_LOAD_BIN")
    if native and Path(native).is_file():
        r = subprocess.run([native, str(snapshot), "10"], capture_output=True, text=True)
        if r.returncode == 0:
            out["native"] = json.loads(r.stdout.strip().splitlines()[-1])
        else:
            say(f"snapshot_load (native) failed: {r.stderr.strip()[-300:]}")
    wasm = os.environ.get("SNAPSHOT_LOAD_WASM")
    if wasm and Path(wasm).is_file() and shutil.which("node"):
        script = (
            "import { readFile } from 'node:fs/promises'; import { WASI } from 'node:wasi';"
            "import { dirname } from 'node:path';"
            "const [wasm, snap, n] = process.argv.slice(1);"
            "const wasi = new WASI({ version: 'preview1', args: ['snapshot_load', snap, n],"
            " preopens: { [dirname(snap)]: dirname(snap) } });"
            "const m = await WebAssembly.compile(await readFile(wasm));"
            "wasi.start(await WebAssembly.instantiate(m, wasi.getImportObject()));")
        r = subprocess.run(["node", "--no-warnings", "--input-type=module", "-e", script,
                            str(Path(wasm).resolve()), str(snapshot.resolve()), "10"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            out["v8"] = json.loads(r.stdout.strip().splitlines()[-1])
        else:
            say(f"snapshot_load (wasm on node) failed: {r.stderr.strip()[-300:]}")
    return out


def scale_summary(seeded: dict, series: list[dict], cp_log: Path, envoy_log: Path,
                  snapshot: Path, rss: dict) -> dict:
    """Per change of every series: the control plane's compile steps (its log, by version),
    the Envoy singleton's accept and the first worker's load (filter log, by version), all
    from just before the PUT; plus the snapshot measured outside Envoy."""
    published, loaded = publish_log(cp_log), filter_log(envoy_log)
    steps = ("total_us", "read_us", "compile_us", "serialize_hash_us", "version_us",
             "validate_us")
    cp_steps = {k: [] for k in steps}
    accepted, first_loaded, load_after_accept, envoy_side = [], [], [], []
    for s in series:
        for smp in s["samples"]:
            v = smp["version"]
            if v in published:
                for k in steps:
                    if k in published[v]:
                        cp_steps[k].append(published[v][k] / 1e3)
            ev = loaded.get(v)
            if ev and ev["accepted"]:
                accepted.append((ev["accepted"] - smp["t0_wall"]) * 1e3)
                if ev["loaded"]:
                    first = min(ev["loaded"].values())
                    first_loaded.append((first - smp["t0_wall"]) * 1e3)
                    load_after_accept.append((first - ev["accepted"]) * 1e3)
            answered = [a for a in smp["answered_ms"] if a is not None]
            if answered and smp["cp_ms"] is not None:
                envoy_side.append(min(answered) - smp["cp_ms"])
    bytes_ = [published[v]["bytes"] for v in published if "bytes" in published[v]]
    return {
        "seeded": seeded,
        "registry_servers": REGISTRY_SERVERS,
        "snapshot_bytes": bytes_[-1] if bytes_ else snapshot.stat().st_size,
        "cp_steps_ms": {k.removesuffix("_us"): dist(xs) for k, xs in cp_steps.items()},
        "singleton_accepted_ms": dist(accepted),
        "first_worker_loaded_ms": dist(first_loaded),
        "worker_load_after_accept_ms": dist(load_after_accept),
        "envoy_side_ms": dist(envoy_side),
        "snapshot_load": snapshot_load(snapshot),
        "rss_mb": rss,
    }


def scale_rows(results: list[dict]) -> str:
    """The two issue-9 tables from one or more runs' results.json (one row per registry size)."""
    rows = sorted((r for r in results if r.get("scale")),
                  key=lambda r: r["scale"]["registry_servers"])
    if not rows:
        return ""

    def p50(d):
        return f(d.get("p50"))

    lines = [
        "| servers (+1) | grants | mappings | snapshot KB | DB read | compile | serialize + hash "
        "| version | validate | control plane total | native `from_json` | V8 `from_json` "
        "(first) | one-mapping delta applied: native / V8 | policy heap retained / peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        sc = r["scale"]
        st, sl = sc["cp_steps_ms"], sc["snapshot_load"]
        nat, v8 = sl.get("native", {}), sl.get("v8", {})
        lines.append(
            f"| {sc['seeded']['servers']:,} | {sc['seeded']['grants']:,} | "
            f"{sc['seeded']['mappings']:,} | {sc['snapshot_bytes'] / 1024:,.0f} | "
            f"{p50(st['read'])} | {p50(st['compile'])} | {p50(st['serialize_hash'])} | "
            f"{p50(st['version'])} | {p50(st['validate'])} | {p50(st['total'])} | "
            f"{f(nat.get('from_json_p50_ms'))} | {f(v8.get('from_json_p50_ms'))} "
            f"({f(v8.get('from_json_first_ms'))}) | "
            f"{f(nat.get('delta_apply_p50_ms'), '.2f')} / {f(v8.get('delta_apply_p50_ms'), '.2f')} | "
            f"{f(nat.get('retained_bytes', 0) / 2**20 if nat else None)} / "
            f"{f(nat.get('peak_bytes', 0) / 2**20 if nat else None)} |")
    lines += [
        "",
        "| servers (+1) | PUT → long-poll answered p50 / p99 | → singleton accepted p50 "
        "| → first worker loaded p50 | worker load after accept p50 | → first request decided "
        "the new way p50 / p99 / max | Envoy side (request − long-poll) p50 "
        "| Envoy RSS MB: ready → after | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        sc = r["scale"]
        prop = next((row for row in r["propagation"][0]["rows"]
                     if row["measure"].startswith("Envoy: first")), {})
        lp = next((row for row in r["propagation"][0]["rows"]
                   if row["measure"].startswith("`/v1/policy`")), {})
        rss = sc["rss_mb"]
        lines.append(
            f"| {sc['seeded']['servers']:,} | {f(lp.get('p50'))} / {f(lp.get('p99'))} | "
            f"{p50(sc['singleton_accepted_ms'])} | {p50(sc['first_worker_loaded_ms'])} | "
            f"{p50(sc['worker_load_after_accept_ms'])} | {f(prop.get('p50'))} / "
            f"{f(prop.get('p99'))} / {f(prop.get('max'))} | {p50(sc['envoy_side_ms'])} | "
            f"{f(rss.get('ready'), '.0f')} → {f(rss.get('after'), '.0f')} | "
            f"{r['meta']['load_start']:.2f} → {r['meta']['load_end']:.2f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Report


def f(x, spec: str = ".1f") -> str:
    return "–" if x is None else format(x, spec)


def report(meta: dict, series: list[dict], audit_rows: list[dict] | None,
           audit_counts: dict | None) -> str:
    knobs = ("CHANGES", "POLLERS", "GAP_MS", "POLL_INTERVAL_MS", "CHANGE_TIMEOUT", "ROUNDS",
             "DURATION", "WARMUP", "CONNECTIONS", "THREADS", "ACCESS_LOG", "PHASES",
             "REGISTRY_SERVERS", "GRANTS_PER_SERVER", "MAPPINGS_PER_SERVER")
    given = [f"{k}={os.environ[k]}" if " " not in os.environ[k] else f'{k}="{os.environ[k]}"'
             for k in knobs if os.environ.get(k, "").strip()]
    cmd = " ".join(given + ["bash bench/sync/run.sh"])
    lines = [
        f"`{cmd}` — {meta['started']} UTC, commit `{meta['commit']}`, {meta['cpus']} × "
        f"{meta['cpu_model'] or 'CPU'}; load average {meta['load_start']:.2f} at the start, "
        f"{meta['load_end']:.2f} at the end. `portcullis serve` (release, SQLite), Envoy "
        f"{meta['envoy']} `--concurrency 2` from `envoy/bootstrap-xds.yaml`"
        f"{'' if ACCESS_LOG else ' without its access log'}.",
        "",
    ]
    if series:
        lines += [
            f"Propagation: {CHANGES} changes per series (`devs` → `[s]` / `[]` alternately), "
            f"{GAP_S * 1e3:.0f}–{GAP_S * 1.5e3:.0f} ms apart, pollers sending back to back "
            f"({POLL_INTERVAL_S * 1e3:g} ms pause); times from just before the PUT is sent, ms.",
            "",
            "| pollers (workers) | measure | n | p50 ms | p95 ms | p99 ms | max ms | missed |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for s in series:
            who = f"{s['info']['pollers']} ({', '.join(s['info']['workers'])})"
            for what, d, missed in s["rows"]:
                lines.append(f"| {who} | {what} | {d['n']} | {f(d['p50'])} | {f(d['p95'])} | "
                             f"{f(d['p99'])} | {f(d['max'])} | {missed} |")
        for s in series:
            by_dir = {}
            for direction in ("allow", "deny"):
                xs = [min(x for x in smp["answered_ms"] if x is not None)
                      for smp in s["samples"]
                      if smp["to"] == direction and any(x is not None for x in smp["answered_ms"])]
                by_dir[direction] = pct(xs, 50)
            odd = sorted({st for smp in s["samples"] for st in smp["other_statuses"]})
            lines.append("")
            lines.append(
                f"{s['info']['pollers']} poller(s): {s['info']['requests']} requests, "
                f"{s['info']['failures']} failed, {s['info']['connects']} connections; "
                f"p50 to allow {f(by_dir['allow'])} ms, to deny {f(by_dir['deny'])} ms"
                + (f"; statuses other than 200/403 seen: {odd}" if odd else "") + ".")
        lines.append("")
    if audit_rows:
        lines += [
            f"Audit: {ROUNDS} alternating rounds, `wrk -t{THREADS} -c{CONNECTIONS} "
            f"-d{DURATION:g}s` GET `{MCP_PATH}` with the token (warm credential cache), medians.",
            "",
            "| filter configuration | req/s | × audit off | p50 µs | p99 µs | Envoy CPU µs/req "
            "| Δ Envoy CPU µs/req [IQR] | control plane CPU µs/req | samples kept/dropped |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in audit_rows:
            iqr = ""
            if r.get("envoy_cpu_delta_iqr"):
                lo, hi = r["envoy_cpu_delta_iqr"]
                iqr = f" [{lo:+.1f}, {hi:+.1f}]"
            cfg = '`{"shared_snapshot": true, "audit": ' + ("true" if r["audit"] else "false") + (
                ', "access_log": false}`' if r["audit"] and not r["channel"] else "}`")
            lines.append(
                f"| {cfg} | {f(r.get('rps'), '.0f')} | {f(r.get('rps_ratio'), '.2f')} | "
                f"{f(r.get('p50_us'), '.0f')} | {f(r.get('p99_us'), '.0f')} | "
                f"{f(r.get('envoy_cpu'))} | {f(r.get('envoy_cpu_delta'), '+.1f')}{iqr} | "
                f"{f(r.get('cp_cpu'))} | {r['kept']}/{r['dropped_samples']} |")
        for r in audit_rows:
            if "channel_delta" in r:
                iqr = ""
                if r.get("channel_delta_iqr"):
                    lo, hi = r["channel_delta_iqr"]
                    iqr = f" (IQR {lo:+.1f} to {hi:+.1f})"
                lines += ["", f"Access-log channel (the filter writing its record for Envoy's "
                              f"access log, and the log line carrying it): "
                              f"{r['channel_delta']:+.1f} Envoy CPU µs/request{iqr}, the shipped "
                              f"configuration against `\"access_log\": false`, paired by round."]
        d = audit_counts["delta"]
        lines += [
            "",
            f"Audit trail over the rounds of both audit-on Envoys: wrk counted {d['wrk_requests']:.0f} answers; "
            f"the filter decided {d['decisions']:.0f} requests and queued {d['queued']:.0f} events "
            f"({d['unqueued']:.0f} not queued); the singleton shipped {d['shipped']:.0f}, dropped "
            f"{d['dropped']:.0f}, {d['ship_errors']:.0f} failed batches; the control plane "
            f"received {d['cp_received']:.0f} (reported dropped: {d['cp_dropped']:.0f}). "
            f"Missing records: {d['decisions'] - d['cp_received']:.0f}.",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------


def envoy_version(envoy_bin: str) -> str:
    out = subprocess.run([envoy_bin, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"/(\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else out.strip()


def main() -> int:
    envoy_bin = os.environ["ENVOY_BIN"]
    portcullis = os.environ["PORTCULLIS_BIN"]
    wasm = str(Path(os.environ["FILTER_WASM"]).resolve())
    for what, path in (("portcullis", portcullis), ("filter module", wasm), ("envoy", envoy_bin)):
        if not Path(path).is_file():
            say(f"no {what} at {path}")
            return 1
    run_dir = OUT / "sync"
    run_dir.mkdir(parents=True, exist_ok=True)
    for pattern in ("*.log", "*.yaml", "*.jsonl", "results.json"):
        for old in run_dir.glob(pattern):
            old.unlink()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = benchlib.load1()
    say(f"load average at start: {load_start:.2f}")
    meta = benchlib.machine(["filter", "policy", "control-plane", "envoy"])

    with tempfile.TemporaryDirectory(prefix="portcullis-sync-bench-") as tmp:
        tmp = Path(tmp)
        token = make_token(portcullis, tmp / "keys")
        admin, sync_token = secrets.token_hex(24), secrets.token_hex(24)

        up_port, up_admin = free_ports(2)
        up_cfg = run_dir / "upstream.yaml"
        up_cfg.write_text(benchlib.render(UPSTREAM_TEMPLATE, {"ADMIN_PORT": str(up_admin),
                                                             "LISTEN_PORT": str(up_port)}))
        start_envoy(envoy_bin, up_cfg, up_admin, run_dir / "upstream.log", 1)

        cp_port, xds_port, on_listen, on_admin = free_ports(4)
        base = f"http://127.0.0.1:{cp_port}"
        # The public URL is the audit-on Envoy's (the one the propagation phase goes through).
        cp_args = (portcullis, tmp / "data", cp_port, xds_port, f"http://127.0.0.1:{on_listen}",
                   admin, sync_token, tmp / "keys" / "jwks.json")
        cp_log = run_dir / "portcullis.log"
        cp = start_portcullis(*cp_args, cp_log)
        set_up_registry(base, admin, up_port)
        seeded = None
        if REGISTRY_SERVERS > 0:
            # The first start ran the migrations; seed the file with the server stopped.
            benchlib.stop(cp)
            t = time.monotonic()
            seeded = seed_registry(tmp / "data" / "portcullis.db", REGISTRY_SERVERS)
            say(f"seeded {seeded} in {time.monotonic() - t:.1f} s")
            cp_log = run_dir / "portcullis-seeded.log"
            cp = start_portcullis(*cp_args, cp_log)
        say(f"portcullis serve (pid {cp.pid}) on {base}, xDS on {xds_port}; server {SERVER_PATH} "
            f"→ upstream 127.0.0.1:{up_port}, {GROUP} → [{SCOPE}]")

        env_on = launch_envoy(envoy_bin, run_dir, True, cp_port, xds_port, sync_token, wasm,
                              token, (on_listen, on_admin))
        rss = {}
        if seeded:
            # The filter's own log lines (singleton accepted, worker loaded) with timestamps.
            status, _, _ = http("POST", f"http://127.0.0.1:{on_admin}/logging?wasm=info")
            if status != 200:
                say(f"could not raise Envoy's wasm log level: {status}")
            time.sleep(1)
            rss["ready"] = rss_mb(env_on.proc.pid)
            rss["control_plane_ready"] = rss_mb(cp.pid)
        watcher = Watcher(cp_port, sync_token)
        watcher.start()
        wait_for("the watcher's first snapshot", lambda: watcher.version > 0, 10)

        series = []
        if "propagation" in PHASES:
            allowed = True
            for n in POLLERS:
                samples, info = propagation_series(env_on, base, admin, token, watcher, n,
                                                   allowed)
                allowed = info["final_state_allowed"]
                rows = summarize_series(samples)
                series.append({"info": info, "samples": samples, "rows": rows})
                for what, d, missed in rows:
                    say(f"  {what}: p50 {f(d['p50'])} ms, p99 {f(d['p99'])} ms, max "
                        f"{f(d['max'])} ms, missed {missed}")
            if not allowed:
                status, body = api(base, admin, "PUT", f"/api/group-mappings/{GROUP}",
                                   {"scopes": [SCOPE]})
                if status != 200:
                    raise RuntimeError(f"restoring the mapping: {status} {body[:200]!r}")
        scale = None
        if seeded:
            rss["after"] = rss_mb(env_on.proc.pid)
            rss["control_plane_after"] = rss_mb(cp.pid)
            status, _, body = http("GET", f"{base}/v1/policy",
                                   {"Authorization": f"Bearer {sync_token}"}, timeout=30)
            if status != 200:
                raise RuntimeError(f"GET /v1/policy: {status}")
            snapshot = run_dir / "snapshot.json"
            snapshot.write_bytes(body)
            scale = scale_summary(seeded, series, cp_log, run_dir / "envoy-audit-on.log",
                                  snapshot, rss)
            say(f"scale: {json.dumps(scale)}")

        audit_rows = audit_counts = None
        envoy_stats = {}
        if "audit" in PHASES:
            env_off = launch_envoy(envoy_bin, run_dir, False, cp_port, xds_port, sync_token,
                                   wasm, token)
            env_no_log = launch_envoy(envoy_bin, run_dir, True, cp_port, xds_port, sync_token,
                                      wasm, token, channel=False)
            envoys = [env_on, env_no_log, env_off]
            audit_counts = audit_phase(envoys, base, token, cp.pid)
            audit_rows = summarize_audit(envoys)
            for e in envoys:
                envoy_stats[e.name] = e.stats("wasm")
            with open(run_dir / "samples.jsonl", "w") as out:
                for e in envoys:
                    for s in e.samples:
                        out.write(json.dumps(s) + "\n")
        if cp.poll() is not None:
            raise RuntimeError("portcullis serve exited during the run")
        envoy_stats[env_on.name] = env_on.stats("wasm")
        benchlib.stop_all()

    meta.update({
        "started": f"{started:%Y-%m-%d %H:%M}", "load_start": load_start,
        "load_end": benchlib.load1(),
        "envoy": envoy_version(envoy_bin),
        "changes": CHANGES, "pollers": POLLERS, "gap_ms": GAP_S * 1e3,
        "poll_interval_ms": POLL_INTERVAL_S * 1e3, "rounds": ROUNDS, "duration": DURATION,
        "warmup": WARMUP, "connections": CONNECTIONS, "threads": THREADS,
        "access_log": ACCESS_LOG, "phases": PHASES, "registry_servers": REGISTRY_SERVERS,
    })
    with open(run_dir / "propagation.jsonl", "w") as out:
        for s in series:
            for smp in s["samples"]:
                out.write(json.dumps(smp) + "\n")
    results = {
        "meta": meta,
        "propagation": [{"info": s["info"], "rows": [
            {"measure": w, "missed": m, **d} for w, d, m in s["rows"]]} for s in series],
        "audit": {"rows": audit_rows, "counters": audit_counts},
        "envoy_stats": envoy_stats,
        "scale": scale,
    }
    md = report(meta, series, audit_rows, audit_counts)
    if scale:
        md += "\n" + scale_rows([results])
    (OUT / "sync.md").write_text(md)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if scale:
        # Kept per size, for `bench.py --scale-table` over several runs.
        (OUT / f"sync-scale-{REGISTRY_SERVERS}.json").write_text(json.dumps(results, indent=2))
    print(md)
    say(f"wrote {OUT / 'sync.md'} and {run_dir}/")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--scale-table"]:
        # `bench.py --scale-table FILE...`: the issue-9 tables over several REGISTRY_SERVERS runs.
        print(scale_rows([json.loads(Path(p).read_text()) for p in sys.argv[2:]]), end="")
        sys.exit(0)
    sys.exit(main())
