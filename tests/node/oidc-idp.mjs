#!/usr/bin/env node
// A real OpenID Provider (`oidc-provider` from npm) on loopback for the Portcullis tests, whose
// signing key can be rotated while it runs.
//
//   node oidc-idp.mjs [PORT]            (or $PORT; 0 or unset = a free port)
//
// Prints `ready <port>` on stdout once it listens. Issuer: `http://127.0.0.1:<port>`, with
// discovery at `/.well-known/openid-configuration` and the JWKS at `/jwks`.
//
// Clients (client_credentials grant, `client_secret_basic` or `client_secret_post`), so tests
// mint access tokens without a browser:
//   portcullis-test / portcullis-test-secret      groups ["engineering", "mcp-users"]
//   portcullis-other / portcullis-other-secret    groups ["sales"]
// Access tokens are JWTs (RFC 9068, `typ: at+jwt`) when a resource indicator is sent:
//   POST /token  grant_type=client_credentials&resource=<absolute URI>[&scope=mcp]
// `aud` is the resource, `sub` and `client_id` the client id, `groups` the client's groups;
// signed RS256 with the current key (its `kid` in the header).
//
// Test controls on the same port (loopback only, no authentication):
//   POST /admin/rotate   a new signing key goes first in the JWKS and signs from now on; the
//                        previous keys stay published.        → {"current": kid, "published": [kids]}
//   POST /admin/retire   every key but the current one leaves the JWKS.   → same shape
//   GET  /admin/state    → same shape
// Rotation builds a fresh Provider with the new key set (oidc-provider loads its keystore once);
// nothing else carries state here (tokens are self-contained JWTs).

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const portArg = process.argv[2] ?? process.env.PORT ?? '0';
const port = Number.parseInt(portArg, 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`usage: node oidc-idp.mjs [PORT]  (got ${JSON.stringify(portArg)})\n`);
  process.exit(2);
}

const CLIENTS = [
  { client_id: 'portcullis-test', client_secret: 'portcullis-test-secret', groups: ['engineering', 'mcp-users'] },
  { client_id: 'portcullis-other', client_secret: 'portcullis-other-secret', groups: ['sales'] },
];
const GROUPS = new Map(CLIENTS.map((c) => [c.client_id, c.groups]));

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

function buildProvider(issuer) {
  const signingKid = keys[0].kid;
  const p = new Provider(issuer, {
    jwks: { keys },
    clients: CLIENTS.map(({ client_id, client_secret }) => ({
      client_id,
      client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'mcp',
    })),
    scopes: ['mcp'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
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
  });
  p.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err?.stack ?? err}\n`));
  return p;
}

function state() {
  return { current: keys[0].kid, published: keys.map((k) => k.kid) };
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

let issuer;
const server = http.createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path.startsWith('/admin/')) {
    if (req.method === 'POST' && path === '/admin/rotate') {
      keys = [newSigningKey(), ...keys];
      handler = buildProvider(issuer).callback();
      process.stderr.write(`rotated: ${JSON.stringify(state())}\n`);
      return sendJson(res, 200, state());
    }
    if (req.method === 'POST' && path === '/admin/retire') {
      keys = [keys[0]];
      handler = buildProvider(issuer).callback();
      process.stderr.write(`retired: ${JSON.stringify(state())}\n`);
      return sendJson(res, 200, state());
    }
    if (req.method === 'GET' && path === '/admin/state') {
      return sendJson(res, 200, state());
    }
    return sendJson(res, 404, { error: 'not_found' });
  }
  // Bound at request time so a rotation takes effect on the next request.
  return handler(req, res);
});

server.listen(port, '127.0.0.1', () => {
  const actual = server.address().port;
  issuer = `http://127.0.0.1:${actual}`;
  handler = buildProvider(issuer).callback();
  process.stdout.write(`ready ${actual}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
