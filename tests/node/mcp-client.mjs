#!/usr/bin/env node
// A real MCP client (the official TypeScript SDK) driven by a JSON plan, for the Portcullis
// end-to-end tests.
//
//   node mcp-client.mjs URL [PLAN_JSON]        (or the plan in $MCP_PLAN)
//
// PLAN_JSON:
//   {
//     "headers": {"Authorization": "Bearer …"},      // sent on every request (requestInit)
//     "timeoutMs": 15000,                              // per request
//     "steps": [
//       {"op": "connect"},                             // initialize + notifications/initialized
//       {"op": "listTools"},
//       {"op": "callTool", "name": "echo", "arguments": {"message": "hi"}},
//       {"op": "listResources"}, {"op": "listPrompts"}, {"op": "ping"},
//       {"op": "request", "method": "tools/list", "params": {}},
//       {"op": "terminateSession"},                    // HTTP DELETE with the session id
//       {"op": "expireAccessToken"},                   // OAuth mode: the next request gets a 401
//                                                      // and the SDK refreshes
//       {"op": "close"}
//     ]
//   }
//
// OAuth mode (instead of "headers"): the SDK's own login (`OAuthClientProvider`), with a loopback
// callback listener and `browser.mjs` as the browser:
//   "oauth": {
//     "clientId": "okta-mcp-public",   // a pre-registered public client; absent: DCR
//     "clientMetadataUrl": "https://…", // the SDK's `clientMetadataUrl`: its Client ID Metadata
//                                       // Document, used when the server advertises CIMD
//     "callbackPort": 0,                // 0 or absent: a random free port
//     "redirectHost": "127.0.0.1",      // or "localhost"
//     "callbackPath": "/callback",
//     "user": "alice", "password": "alice-password"
//   }
// The summary then carries `oauth`: what the browser saw, the callback's error if any, the
// access token's claims (never the token; the latest one's), how many times tokens were saved
// (`tokenSaves`: 1 after a login, 2 after a refresh) and whether the last save rotated the
// refresh token (`refreshTokenRotated`). Form bodies sent (the token endpoint's) are in the
// `http` log as `requestForm`, codes, verifiers and tokens redacted.
//
// Prints one JSON object per line on stdout:
//   {"step": 0, "op": "connect", "ok": true, "result": {...}}
//   {"step": 3, "op": "callTool", "ok": false, "error": {"name": …, "message": …, "httpStatus": 403}}
//   … and last {"op": "summary", "http": [every HTTP exchange], "transportErrors": [...]}
// After a failed `connect`, the remaining steps are reported as {"ok": false, "skipped": true}.
// Exit code 0 whenever the plan ran (failures are data), 2 on bad usage, 3 on the watchdog.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import * as crypto from 'node:crypto';
import * as nodeHttp from 'node:http';

import { browse } from './browser.mjs';

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const [, , url, planArg] = process.argv;
const planText = planArg ?? process.env.MCP_PLAN;
if (!url || !planText) {
  process.stderr.write('usage: node mcp-client.mjs URL PLAN_JSON (or MCP_PLAN env)\n');
  process.exit(2);
}
let plan;
try {
  plan = JSON.parse(planText);
} catch (e) {
  process.stderr.write(`plan is not JSON: ${e}\n`);
  process.exit(2);
}
const timeout = plan.timeoutMs ?? 15000;
const steps = plan.steps ?? [{ op: 'connect' }, { op: 'listTools' }];

// Every HTTP exchange the SDK makes, for the tests (and for humans reading a failure).
const http = [];
const transportErrors = [];
const redact = (name, value) =>
  name.toLowerCase() === 'authorization' || name.toLowerCase() === 'x-api-key'
    ? `${value.split(' ')[0]} <${value.length} chars>`
    : value;
const SECRET_FIELDS = new Set(['code', 'code_verifier', 'refresh_token', 'client_secret', 'assertion']);
const loggingFetch = async (input, init) => {
  const entry = {
    method: init?.method ?? 'GET',
    url: String(input),
    requestHeaders: Object.fromEntries(
      [...new Headers(init?.headers ?? {}).entries()].map(([k, v]) => [k, redact(k, v)])
    ),
    requestBody: typeof init?.body === 'string' ? init.body : undefined,
    requestForm: init?.body instanceof URLSearchParams
      ? Object.fromEntries([...init.body].map(([k, v]) => [k, SECRET_FIELDS.has(k) ? '<redacted>' : v]))
      : undefined,
  };
  http.push(entry);
  try {
    const res = await fetch(input, init);
    entry.status = res.status;
    entry.responseHeaders = Object.fromEntries(res.headers.entries());
    return res;
  } catch (e) {
    entry.fetchError = String(e?.cause ?? e);
    throw e;
  }
};

const describeError = (e) => {
  const err = { name: e?.constructor?.name ?? typeof e, message: String(e?.message ?? e) };
  if (e instanceof StreamableHTTPError) {
    err.httpStatus = e.code;
  } else if (e instanceof McpError) {
    err.code = e.code;
    if (e.data !== undefined) err.data = e.data;
  } else if (e?.code !== undefined) {
    err.code = e.code;
  }
  return err;
};

const watchdog = setTimeout(() => {
  out({ op: 'summary', watchdog: true, http, transportErrors, oauth: oauthReport });
  process.exit(3);
}, plan.totalTimeoutMs ?? 60000);

// OAuth mode: the login the SDK runs on a 401, with our callback listener and browser.
const oauthReport = plan.oauth ? {} : undefined;
let provider;
let callbackServer;
let callbackCode;
if (plan.oauth) {
  const o = plan.oauth;
  let deliver;
  let refuse;
  callbackCode = new Promise((resolve, reject) => {
    deliver = resolve;
    refuse = reject;
  });
  callbackCode.catch(() => {}); // observed where the login is finished
  const callbackPath = o.callbackPath ?? '/callback';
  let expectedState;
  callbackServer = nodeHttp.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (u.pathname !== callbackPath) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('Login finished: you may close this window.');
    const q = u.searchParams;
    oauthReport.callback = { error: q.get('error') ?? undefined, errorDescription: q.get('error_description') ?? undefined, iss: q.get('iss') ?? undefined };
    if (q.get('state') !== expectedState) refuse(new Error('callback state does not match'));
    else if (q.get('error')) refuse(new Error(`authorization failed: ${q.get('error')}: ${q.get('error_description') ?? ''}`));
    else deliver(q.get('code'));
  });
  await new Promise((resolve) => callbackServer.listen(o.callbackPort ?? 0, '127.0.0.1', resolve));
  const redirectUrl = `http://${o.redirectHost ?? '127.0.0.1'}:${callbackServer.address().port}${callbackPath}`;
  oauthReport.redirectUrl = redirectUrl;
  let clientInfo = o.clientId ? { client_id: o.clientId } : undefined;
  oauthReport.tokenSaves = 0;
  let tokens;
  let verifier;
  provider = {
    get redirectUrl() {
      return redirectUrl;
    },
    get clientMetadata() {
      return {
        client_name: 'portcullis-e2e',
        redirect_uris: [redirectUrl],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      };
    },
    state() {
      expectedState = crypto.randomBytes(16).toString('base64url');
      return expectedState;
    },
    clientInformation: () => clientInfo,
    saveClientInformation: (info) => {
      oauthReport.registered = { client_id: info.client_id };
      clientInfo = info;
    },
    tokens: () => tokens,
    saveTokens: (t) => {
      oauthReport.tokenSaves += 1;
      oauthReport.refreshTokenRotated = tokens?.refresh_token !== undefined && t.refresh_token !== tokens.refresh_token;
      tokens = t;
      try {
        oauthReport.accessTokenClaims = JSON.parse(Buffer.from(t.access_token.split('.')[1], 'base64url').toString());
      } catch {
        oauthReport.accessTokenClaims = null; // opaque
      }
    },
    redirectToAuthorization: (url) => {
      const q = url.searchParams;
      oauthReport.authorization = {
        endpoint: `${url.origin}${url.pathname}`,
        resource: q.get('resource') ?? undefined,
        scope: q.get('scope') ?? undefined,
        clientId: q.get('client_id'),
        codeChallengeMethod: q.get('code_challenge_method'),
      };
      // The "browser" runs while the SDK returns; the callback listener receives its result.
      browse(url.href, { user: o.user, password: o.password }).then(
        (r) => {
          oauthReport.browser = r;
          if (!r.callback) refuse(new Error(`the login stopped at ${r.url} (${r.status}): ${r.text ?? ''}`));
        },
        (e) => refuse(e),
      );
    },
    saveCodeVerifier: (v) => {
      verifier = v;
    },
    codeVerifier: () => verifier,
    // The access token is made unusable (`expireAccessToken`); the refresh token is kept.
    expireAccessToken: () => {
      if (!tokens) throw new Error('no tokens to expire');
      tokens = { ...tokens, access_token: 'expired-by-the-test' };
    },
  };
  if (o.clientMetadataUrl) provider.clientMetadataUrl = o.clientMetadataUrl;
}

const newTransport = () => {
  const t = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: plan.headers ?? {} },
    fetch: loggingFetch,
    authProvider: provider,
    // No retries of the standalone GET stream: a test wants to see the first answer.
    reconnectionOptions: { initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1, maxRetries: 0 },
  });
  t.onerror = (e) => transportErrors.push(describeError(e));
  return t;
};
const newClient = () => new Client({ name: 'portcullis-e2e', version: '0.1.0' }, { capabilities: {} });
let transport = newTransport();
let client = newClient();

/** Connects; in OAuth mode a 401 runs the login, then a fresh transport connects with the token. */
async function connect(opts) {
  try {
    await client.connect(transport, opts);
  } catch (e) {
    if (!(plan.oauth && e instanceof UnauthorizedError)) throw e;
    const code = await callbackCode;
    await transport.finishAuth(code);
    oauthReport.loggedIn = true;
    transport = newTransport();
    client = newClient();
    await client.connect(transport, opts);
  }
}

let connected = false;
let connectFailed = false;
for (const [i, step] of steps.entries()) {
  const op = step.op;
  if (connectFailed && op !== 'close') {
    out({ step: i, op, ok: false, skipped: true });
    continue;
  }
  const opts = { timeout };
  try {
    let result;
    switch (op) {
      case 'connect':
        await connect(opts);
        connected = true;
        result = {
          serverVersion: client.getServerVersion(),
          serverCapabilities: client.getServerCapabilities(),
          sessionId: transport.sessionId ?? null,
          protocolVersion: transport.protocolVersion ?? null,
        };
        break;
      case 'listTools':
        result = await client.listTools(step.params ?? {}, opts);
        break;
      case 'callTool':
        result = await client.callTool({ name: step.name, arguments: step.arguments ?? {} }, undefined, opts);
        break;
      case 'listResources':
        result = await client.listResources(step.params ?? {}, opts);
        break;
      case 'listPrompts':
        result = await client.listPrompts(step.params ?? {}, opts);
        break;
      case 'ping':
        result = await client.ping(opts);
        break;
      case 'request':
        result = await client.request({ method: step.method, params: step.params ?? {} }, ResultSchema, opts);
        break;
      case 'terminateSession':
        await transport.terminateSession();
        result = { sessionId: transport.sessionId ?? null };
        break;
      case 'expireAccessToken':
        if (!provider) throw new Error('expireAccessToken needs oauth mode');
        provider.expireAccessToken();
        result = {};
        break;
      case 'sleep':
        await new Promise((r) => setTimeout(r, step.ms ?? 100));
        result = {};
        break;
      case 'close':
        await client.close();
        result = {};
        break;
      default:
        throw new Error(`unknown op ${op}`);
    }
    out({ step: i, op, ok: true, result });
  } catch (e) {
    out({ step: i, op, ok: false, error: describeError(e) });
    if (op === 'connect') connectFailed = true;
  }
}
if (connected) {
  try {
    await client.close();
  } catch {
    // already closed
  }
}
clearTimeout(watchdog);
callbackServer?.close();
out({ op: 'summary', http, transportErrors, oauth: oauthReport });
process.exit(0);
