#!/usr/bin/env node
// Load on an OAuth authorization server's token and registration endpoints, the same for any
// server (it reads the RFC 8414 / OIDC metadata): Portcullis's broker and oidc-provider are
// measured with this one driver, side by side (bench/authz/run.sh).
//
//   node load.mjs ISSUER MODE '{"concurrency": 8, "seconds": 10, "user": "alice",
//                               "password": "…", "resource": "http://…/mcp", "scope": "openid"}'
//
// MODE:
//   register  every worker POSTs RFC 7591 registrations (a public client, one loopback
//             redirect) back to back; each answer must be 201.
//   exchange  codes are minted first (the login is not timed: a headless browser fills the
//             login forms), a batch of `batch` per round, then redeemed all at once by
//             `concurrency` workers (authorization_code + PKCE); each answer must be 200 with
//             an access token. Throughput is redeemed codes / time spent redeeming.
//   refresh   every worker logs in once, then refreshes back to back with the newest refresh
//             token (rotation); each answer must be 200 with a new refresh token.
// Prints one JSON line: {mode, requests, errors, seconds, rps, p50_ms, p99_ms, first_error}.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import { browse } from '../../tests/node/browser.mjs';

const [, , issuer, mode, optsText] = process.argv;
if (!issuer || !['register', 'exchange', 'refresh'].includes(mode)) {
  process.stderr.write('usage: node load.mjs ISSUER register|exchange|refresh [OPTIONS_JSON]\n');
  process.exit(2);
}
const opts = { concurrency: 8, seconds: 10, batch: 64, scope: 'openid', ...JSON.parse(optsText ?? '{}') };

const b64url = (buf) => buf.toString('base64url');
const metaUrl = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
const meta = await (await fetch(metaUrl)).json();

// A loopback callback that only records what it is handed.
const codes = new Map(); // state → code
const callback = http.createServer((req, res) => {
  const u = new URL(req.url, 'http://127.0.0.1');
  if (u.searchParams.get('state')) codes.set(u.searchParams.get('state'), u.searchParams.get('code'));
  res.end('ok');
});
await new Promise((r) => callback.listen(0, '127.0.0.1', r));
const redirectUri = `http://127.0.0.1:${callback.address().port}/callback`;

async function register() {
  const res = await fetch(meta.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      redirect_uris: [redirectUri],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      application_type: 'native',
      client_name: 'bench',
    }),
  });
  const body = await res.json().catch(() => ({}));
  return { ok: res.status === 201, status: res.status, body };
}

/** One login through the forms; returns {code, verifier}. Not timed. */
async function mint(clientId) {
  const verifier = b64url(crypto.randomBytes(32));
  const state = b64url(crypto.randomBytes(12));
  const url = new URL(meta.authorization_endpoint);
  for (const [k, v] of Object.entries({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: b64url(crypto.createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    state,
    scope: opts.scope,
    resource: opts.resource,
    prompt: opts.prompt,
  })) {
    if (v !== undefined) url.searchParams.set(k, v);
  }
  const result = await browse(url.href, { user: opts.user, password: opts.password, log: () => {} });
  const code = codes.get(state);
  codes.delete(state);
  if (!result.ok || !code) throw new Error(`login failed: ${JSON.stringify(result)}`);
  return { code, verifier };
}

async function token(params) {
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  const body = await res.json().catch(() => ({}));
  return { ok: res.status === 200 && typeof body.access_token === 'string', status: res.status, body };
}

const latencies = [];
let errors = 0;
let firstError;
let busySeconds = 0;
async function timed(call) {
  const t0 = process.hrtime.bigint();
  const r = await call();
  latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (!r.ok) {
    errors += 1;
    firstError ??= { status: r.status, body: r.body };
  }
  return r;
}

const deadline = Date.now() + opts.seconds * 1000;
const started = Date.now();
if (mode === 'register') {
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (Date.now() < deadline) await timed(register);
    }),
  );
  busySeconds = (Date.now() - started) / 1000;
} else {
  const client = await register();
  if (!client.ok) throw new Error(`registration failed: ${JSON.stringify(client)}`);
  const clientId = client.body.client_id;
  const exchangeParams = ({ code, verifier }) => {
    const p = { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: redirectUri, client_id: clientId };
    if (opts.resource) p.resource = opts.resource;
    return p;
  };
  if (mode === 'exchange') {
    while (Date.now() < deadline) {
      // Minted a few at a time (the login pages are not what is measured).
      const minted = [];
      for (let i = 0; i < opts.batch; i += 4) {
        minted.push(...(await Promise.all(Array.from({ length: Math.min(4, opts.batch - i) }, () => mint(clientId)))));
      }
      const t0 = Date.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: opts.concurrency }, async () => {
          while (next < minted.length) {
            const m = minted[next];
            next += 1;
            await timed(() => token(exchangeParams(m)));
          }
        }),
      );
      busySeconds += (Date.now() - t0) / 1000;
    }
  } else {
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        const first = await token(exchangeParams(await mint(clientId)));
        let refresh = first.body.refresh_token;
        if (!refresh) {
          errors += 1;
          firstError ??= { status: first.status, body: first.body, note: 'no refresh token issued' };
          return;
        }
        while (Date.now() < deadline) {
          const params = { grant_type: 'refresh_token', refresh_token: refresh, client_id: clientId };
          if (opts.resource) params.resource = opts.resource;
          const r = await timed(() => token(params));
          if (!r.ok || !r.body.refresh_token) return;
          refresh = r.body.refresh_token;
        }
      }),
    );
    busySeconds = (Date.now() - t0) / 1000;
  }
}
callback.close();

latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] : null);
const round = (x) => (x === null ? null : Math.round(x * 100) / 100);
process.stdout.write(`${JSON.stringify({
  mode,
  requests: latencies.length,
  errors,
  seconds: round(busySeconds),
  rps: round(latencies.length / Math.max(busySeconds, 1e-9)),
  p50_ms: round(pct(50)),
  p99_ms: round(pct(99)),
  first_error: firstError,
})}\n`);
