#!/usr/bin/env node
// A real OpenID Provider (`oidc-provider` from npm) on loopback for the Portcullis tests, whose
// signing key can be rotated while it runs, and which can dress as Keycloak, Okta, Cognito or
// Entra ID (their documented quirks; the real services cannot run here).
//
//   node oidc-idp.mjs [PORT] [--profile generic|keycloak|okta|cognito|entra]
//                     [--callback-port N] [--audience-mapper AUD] [--broker-redirect URL]
//
// Prints `ready <port>` on stdout once it listens. Issuer: `http://127.0.0.1:<port>`, with
// discovery at `/.well-known/openid-configuration` and the JWKS at `/jwks`.
//
// Machine clients (client_credentials grant, `client_secret_basic` or `client_secret_post`), so
// tests mint access tokens without a browser (every profile; the `generic` tokens described):
//   portcullis-test / portcullis-test-secret      groups ["engineering", "mcp-users"]
//   portcullis-other / portcullis-other-secret    groups ["sales"]
// Access tokens are JWTs (RFC 9068, `typ: at+jwt`) when a resource indicator is sent:
//   POST /token  grant_type=client_credentials&resource=<absolute URI>[&scope=mcp]
// `aud` is the resource, `sub` and `client_id` the client id, `groups` the client's groups;
// signed RS256 with the current key (its `kid` in the header).
//
// People (authorization_code + PKCE S256, public clients), through plain HTML forms without
// JavaScript at `/interaction/<uid>` (login: `username`, `password`; consent: a button
// `decision=approve`), driven by `browser.mjs`:
//   alice / alice-password   groups ["engineering"]  (Entra: that group's object id, a GUID)
//   bob   / bob-password     no groups
//
// Profiles (what the access tokens of a login look like, and what the IdP refuses):
//   generic   open DCR; `aud` = RFC 8707 `resource`; `groups`.
//   keycloak  open DCR (any loopback port for native clients); ignores `resource`; `aud: account`,
//             plus AUD first with `--audience-mapper AUD` (an Audience mapper); `groups`.
//   okta      no DCR; public client `okta-mcp-public` with exactly
//             `http://localhost:<callback-port>/callback` and `http://127.0.0.1:<port>/callback`
//             (port included); ignores `resource`; `aud: api://default`; `groups`.
//   cognito   no DCR; public client `cognito-app-client`, exact redirects as Okta's; ignores
//             `resource`; no `offline_access` (asking for it fails: invalid_scope); access tokens
//             without `aud`: `client_id`, `token_use: access`, `cognito:groups`, `username`.
//   entra     no DCR; public client ENTRA_APP_ID (any loopback port); OIDC discovery only (no
//             RFC 8414 document); an authorization request with `resource` fails as Entra's
//             v2 endpoint does (AADSTS9010010); `aud` = `api://<app id>`; `scp`; group GUIDs.
// Cognito's and Entra's metadata leave out `authorization_response_iss_parameter_supported`.
// The broker (`--broker-redirect URL`, Portcullis's `<PUBLIC_URL>/oauth/callback`): a confidential
// client `portcullis-broker` / `portcullis-broker-secret` (client_secret_basic, exactly that
// redirect URI, authorization code + PKCE), whose ID tokens carry `preferred_username` and the
// person's groups at the profile's claim (`groups`; Cognito `cognito:groups`; Entra GUIDs).
// Every profile but entra also serves RFC 8414 metadata at
// `/.well-known/oauth-authorization-server` (a copy of the OIDC discovery document).
//
// Test controls on the same port (loopback only, no authentication):
//   POST /admin/rotate   a new signing key goes first in the JWKS and signs from now on; the
//                        previous keys stay published.        → {"current": kid, "published": [kids]}
//   POST /admin/retire   every key but the current one leaves the JWKS.   → same shape
//   GET  /admin/state    → same shape
//   POST /admin/groups?user=U&groups=a,b   U's groups from now on (empty: none); refreshed ID
//                        tokens carry them.                                → {"user", "groups"}
//   POST /admin/remove?user=U   U no longer exists: refreshing their tokens is invalid_grant.
// Rotation builds a fresh Provider with the new key set (oidc-provider loads its keystore once);
// logins in flight keep their state (the adapter's storage is shared between Providers).

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    profile: { type: 'string', default: 'generic' },
    'callback-port': { type: 'string' },
    'audience-mapper': { type: 'string' },
    'broker-redirect': { type: 'string' },
  },
});
const portArg = positionals[0] ?? process.env.PORT ?? '0';
const port = Number.parseInt(portArg, 10);
const PROFILES = ['generic', 'keycloak', 'okta', 'cognito', 'entra'];
if (!Number.isInteger(port) || port < 0 || port > 65535 || !PROFILES.includes(opts.profile)) {
  process.stderr.write(
    `usage: node oidc-idp.mjs [PORT] [--profile ${PROFILES.join('|')}] [--callback-port N] [--audience-mapper AUD]\n`,
  );
  process.exit(2);
}
const profile = opts.profile;
const callbackPort = opts['callback-port'] ? Number.parseInt(opts['callback-port'], 10) : undefined;

const CLIENTS = [
  { client_id: 'portcullis-test', client_secret: 'portcullis-test-secret', groups: ['engineering', 'mcp-users'] },
  { client_id: 'portcullis-other', client_secret: 'portcullis-other-secret', groups: ['sales'] },
];
const GROUPS = new Map(CLIENTS.map((c) => [c.client_id, c.groups]));

/** Entra's ids are GUIDs: the application (client) id and the group's object id. */
const ENTRA_APP_ID = '6f1c2b0e-4d3a-4c5e-9a7b-2e8d1f0a3c41';
const ENTRA_ENGINEERING = '0b7f4a2e-93c1-4d6b-8f25-7c1e9d3a5b60';

const USERS = {
  alice: { password: 'alice-password', groups: ['engineering'] },
  bob: { password: 'bob-password', groups: [] },
};
const groupsOf = (user) =>
  (USERS[user]?.groups ?? []).map((g) => (profile === 'entra' && g === 'engineering' ? ENTRA_ENGINEERING : g));

const loopbackRedirects = (path) =>
  callbackPort ? [`http://localhost:${callbackPort}${path}`, `http://127.0.0.1:${callbackPort}${path}`] : [];
/** The public clients an administrator pre-registered (none where DCR is the way in). */
const PUBLIC_CLIENTS = {
  okta: { client_id: 'okta-mcp-public', application_type: 'web', redirect_uris: loopbackRedirects('/callback') },
  cognito: { client_id: 'cognito-app-client', application_type: 'web', redirect_uris: loopbackRedirects('/callback') },
  // Entra's "Mobile and desktop" platform: http://localhost with any port.
  entra: { client_id: ENTRA_APP_ID, application_type: 'native', redirect_uris: ['http://localhost/callback', 'http://127.0.0.1/callback'] },
}[profile];

/** `aud` of a person's access token, whatever `resource` was asked for (undefined: none). */
function fixedAudience() {
  switch (profile) {
    case 'keycloak':
      return opts['audience-mapper'] ? [opts['audience-mapper'], 'account'] : 'account';
    case 'okta':
      return 'api://default';
    case 'entra':
      return `api://${ENTRA_APP_ID}`;
    default:
      return undefined;
  }
}
// A resource for logins that name none, so their access tokens are JWTs too.
const DEFAULT_RESOURCE = 'urn:portcullis-fixture:api';

let keyCounter = 0;

/** A fresh RS256 signing key as a private JWK with a unique kid. */
function newSigningKey() {
  keyCounter += 1;
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = `key-${keyCounter}-${crypto.randomBytes(4).toString('hex')}`;
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}

// Newest first: the first key signs.
let keys = [newSigningKey()];
let handler;
let provider;
const COOKIE_KEYS = [crypto.randomBytes(32).toString('hex')];

function buildProvider(issuer) {
  const signingKid = keys[0].kid;
  const publicClients = PUBLIC_CLIENTS
    ? [{
        ...PUBLIC_CLIENTS,
        token_endpoint_auth_method: 'none',
        // oidc-provider offers refresh tokens only through offline_access, which Cognito lacks.
        grant_types: profile === 'cognito' ? ['authorization_code'] : ['authorization_code', 'refresh_token'],
        response_types: ['code'],
      }]
    : [];
  const brokerClients = opts['broker-redirect']
    ? [{
        client_id: 'portcullis-broker',
        client_secret: 'portcullis-broker-secret',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [opts['broker-redirect']],
      }]
    : [];
  const groupsClaim = profile === 'cognito' ? 'cognito:groups' : 'groups';
  const p = new Provider(issuer, {
    jwks: { keys },
    cookies: { keys: COOKIE_KEYS },
    clients: [
      ...CLIENTS.map(({ client_id, client_secret }) => ({
        client_id,
        client_secret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: 'mcp',
      })),
      ...publicClients,
      ...brokerClients,
    ],
    scopes: profile === 'cognito' ? ['openid', 'email', 'profile', 'mcp'] : ['openid', 'offline_access', 'email', 'profile', 'mcp'],
    claims: { openid: ['sub'], email: ['email'], profile: ['name', 'preferred_username', groupsClaim] },
    // Profile claims (the groups) in the ID token itself, as the broker reads them there.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, id) =>
      USERS[id]
        ? {
            accountId: id,
            claims: async () => ({
              sub: id,
              name: id,
              preferred_username: id,
              email: `${id}@example.test`,
              [groupsClaim]: groupsOf(id),
            }),
          }
        : undefined,
    interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // The broker gets a refresh token at every login (real IdPs give one with offline_access,
    // and Cognito always); others as oidc-provider's default has it.
    issueRefreshToken: async (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') &&
      (client.clientId === 'portcullis-broker' ||
        code.scopes.has('offline_access') ||
        (client.applicationType === 'web' && client.clientAuthMethod === 'none')),
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      registration: { enabled: profile === 'generic' || profile === 'keycloak' },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? DEFAULT_RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => ({
          scope: 'mcp',
          audience: resourceIndicator,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256', kid: signingKid } },
        }),
      },
    },
    extraTokenClaims: async (_ctx, token) => {
      const groups = GROUPS.get(token.clientId);
      return groups ? { groups } : undefined;
    },
    formats: { customizers: { jwt: shapeAccessToken } },
  });
  p.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err?.stack ?? err}\n`));
  return p;
}

/** A person's access token as the dressed-up IdP issues it (machine tokens stay as they are). */
async function shapeAccessToken(_ctx, token, jwt) {
  const user = token.accountId;
  if (!user) return;
  const claims = jwt.payload;
  const groups = groupsOf(user);
  const fixed = fixedAudience();
  if (fixed !== undefined) claims.aud = fixed;
  switch (profile) {
    case 'cognito':
      // No `aud` at all. oidc-provider insists on one, so it is an object that JSON leaves out.
      claims.aud = { toJSON: () => undefined };
      claims.token_use = 'access';
      claims.username = user;
      if (groups.length) claims['cognito:groups'] = groups;
      break;
    case 'entra':
      claims.scp = (claims.scope ?? '').split(' ').filter(Boolean).map((s) => s.replace(/^.*\//, '')).join(' ');
      delete claims.scope;
      claims.azp = token.clientId;
      claims.groups = groups;
      break;
    default:
      claims.groups = groups;
      claims.preferred_username = user;
  }
}

function state() {
  return { current: keys[0].kid, published: keys.map((k) => k.kid) };
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendHtml(res, status, body) {
  const text = `<!doctype html><html><head><title>${profile} fixture</title></head><body>${body}</body></html>`;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readForm(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** `/interaction/<uid>[/login|/confirm]`: the login and consent pages, without JavaScript. */
async function interaction(req, res, path) {
  const [, , uid, action] = path.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return sendHtml(res, 400, '<p>interaction mismatch</p>');
  const { prompt, params } = details;
  if (req.method === 'GET') {
    if (prompt.name === 'login') {
      return sendHtml(res, 200, `<h1>Sign in to ${esc(params.client_id)}</h1>
<form method="post" action="/interaction/${esc(uid)}/login">
<input type="hidden" name="uid" value="${esc(uid)}">
<label>Username <input type="text" name="username"></label>
<label>Password <input type="password" name="password"></label>
<button type="submit" name="action" value="login">Sign in</button>
</form>`);
    }
    return sendHtml(res, 200, `<h1>${esc(params.client_id)} asks for ${esc(params.scope ?? '')}</h1>
<form method="post" action="/interaction/${esc(uid)}/confirm">
<button type="submit" name="decision" value="approve">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`);
  }
  const form = await readForm(req);
  if (action === 'login') {
    const user = form.get('username') ?? '';
    if (USERS[user]?.password !== form.get('password')) {
      process.stderr.write(`login refused for ${JSON.stringify(user)}\n`);
      return sendHtml(res, 401, '<p>invalid username or password</p>');
    }
    return provider.interactionFinished(req, res, { login: { accountId: user } }, { mergeWithLastSubmission: false });
  }
  if (action === 'confirm') {
    if (form.get('decision') !== 'approve') {
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the person said no' });
    }
    const { details: missing } = prompt;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    // A resource with no scope of its own asked for still gets a token (its audience).
    const resource = params.resource ?? DEFAULT_RESOURCE;
    for (const r of Array.isArray(resource) ? resource : [resource]) {
      if (!grant.getResourceScope(r)) grant.addResourceScope(r, 'mcp');
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return sendHtml(res, 404, '<p>no such interaction step</p>');
}

/**
 * What the dressed-up IdP refuses before oidc-provider sees the authorization request: Entra
 * refuses `resource`, Cognito `offline_access`. As the real ones do, the error goes back to a
 * valid redirect URI (else it is a page). `true` when answered.
 */
async function refuseAuthorization(req, res, url) {
  const q = url.searchParams;
  let error;
  if (profile === 'entra' && q.has('resource')) {
    error = {
      error: 'invalid_target',
      error_description:
        'AADSTS9010010: The resource parameter provided in the request doesn\'t match with the requested scopes.',
    };
  } else if (profile === 'cognito' && (q.get('scope') ?? '').split(' ').includes('offline_access')) {
    error = { error: 'invalid_scope', error_description: 'offline_access is not a scope of this user pool' };
  }
  if (!error) return false;
  const client = await provider.Client.find(q.get('client_id') ?? '');
  const redirect = q.get('redirect_uri') ?? '';
  if (!client || !client.redirectUriAllowed(redirect)) {
    sendHtml(res, 400, `<p>${esc(error.error)}: ${esc(error.error_description)}</p>`);
    return true;
  }
  const back = new URL(redirect);
  for (const [k, v] of Object.entries(error)) back.searchParams.set(k, v);
  if (q.has('state')) back.searchParams.set('state', q.get('state'));
  back.searchParams.set('iss', issuer);
  process.stderr.write(`authorization refused: ${error.error}\n`);
  res.writeHead(302, { location: back.href });
  res.end();
  return true;
}

/** RFC 8414 metadata: the OIDC document under the other name (not on Entra). */
async function oauthMetadata(req, res) {
  if (profile === 'entra') return sendJson(res, 404, { error: 'not_found' });
  const r = await fetch(`${issuer}/.well-known/openid-configuration`);
  return sendJson(res, r.status, await r.json());
}

// Cognito and Entra do not advertise RFC 9207 `iss` in authorization responses (Codex then
// adds /callback/<id> to its redirect path).
const RFC9207_UNADVERTISED = profile === 'cognito' || profile === 'entra';

async function withoutIssParameter(_req, res) {
  const r = await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { 'x-fixture-raw': '1' } });
  const doc = await r.json();
  delete doc.authorization_response_iss_parameter_supported;
  return sendJson(res, r.status, doc);
}

let issuer;
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const path = url.pathname;
  try {
    if (path.startsWith('/admin/')) {
      if (req.method === 'POST' && path === '/admin/rotate') {
        keys = [newSigningKey(), ...keys];
        provider = buildProvider(issuer);
        handler = provider.callback();
        process.stderr.write(`rotated: ${JSON.stringify(state())}\n`);
        return sendJson(res, 200, state());
      }
      if (req.method === 'POST' && path === '/admin/retire') {
        keys = [keys[0]];
        provider = buildProvider(issuer);
        handler = provider.callback();
        process.stderr.write(`retired: ${JSON.stringify(state())}\n`);
        return sendJson(res, 200, state());
      }
      if (req.method === 'GET' && path === '/admin/state') {
        return sendJson(res, 200, state());
      }
      const user = url.searchParams.get('user') ?? '';
      if (req.method === 'POST' && path === '/admin/groups' && USERS[user]) {
        const groups = (url.searchParams.get('groups') ?? '').split(',').filter(Boolean);
        USERS[user].groups = groups;
        process.stderr.write(`groups of ${user}: ${JSON.stringify(groups)}\n`);
        return sendJson(res, 200, { user, groups });
      }
      if (req.method === 'POST' && path === '/admin/remove' && USERS[user]) {
        delete USERS[user];
        process.stderr.write(`removed ${user}\n`);
        return sendJson(res, 200, { user });
      }
      return sendJson(res, 404, { error: 'not_found' });
    }
    if (path.startsWith('/interaction/')) return await interaction(req, res, path);
    if (path === '/.well-known/oauth-authorization-server') return await oauthMetadata(req, res);
    if (path === '/.well-known/openid-configuration' && RFC9207_UNADVERTISED && !req.headers['x-fixture-raw']) {
      return await withoutIssParameter(req, res);
    }
    if (path === '/auth' && (await refuseAuthorization(req, res, url))) return undefined;
    // Bound at request time so a rotation takes effect on the next request.
    return handler(req, res);
  } catch (e) {
    process.stderr.write(`error on ${req.method} ${path}: ${e?.stack ?? e}\n`);
    if (!res.headersSent) sendHtml(res, 500, `<p>${esc(e?.message ?? e)}</p>`);
    return undefined;
  }
});

server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  issuer = `http://127.0.0.1:${actual}`;
  provider = buildProvider(issuer);
  handler = provider.callback();
  process.stdout.write(`ready ${actual}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
