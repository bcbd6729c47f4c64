#!/usr/bin/env node
// Where Client ID Metadata Documents live in the end-to-end tests: an https server on
// 127.0.0.1 (the certificate is made by the test, signed by a CA of its own that the broker
// is told to trust), serving files from a directory. No dependencies.
//
//   node document-server.mjs CERT_PEM KEY_PEM DIR
//
// GET /<path> answers DIR/<path> as application/json with `Cache-Control: max-age=300` (404
// when there is no such file; nothing outside DIR). Prints `ready <port>` on stdout once
// listening, then one line per request: `GET /<path> <status>`.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { resolve, sep } from 'node:path';

const [, , certFile, keyFile, dirArg] = process.argv;
if (!certFile || !keyFile || !dirArg) {
  process.stderr.write('usage: node document-server.mjs CERT_PEM KEY_PEM DIR\n');
  process.exit(2);
}
const dir = resolve(dirArg);

const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const path = new URL(req.url ?? '/', 'https://127.0.0.1').pathname;
  let file;
  try {
    file = resolve(dir, `.${decodeURIComponent(path)}`);
  } catch {
    file = undefined;
  }
  let body;
  if (req.method === 'GET' && file?.startsWith(dir + sep)) {
    try {
      body = readFileSync(file);
    } catch {
      body = undefined;
    }
  }
  const status = body === undefined ? 404 : 200;
  process.stdout.write(`${req.method} ${path} ${status}\n`);
  if (body === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' }).end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`ready ${server.address().port}\n`);
});
