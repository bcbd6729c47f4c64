// HTTP/2 cleartext client (prior knowledge) for the e2e tests, driven by a JSON plan on stdin:
//
//   {"port": 10000, "timeoutMs": 10000, "requests": [{
//      "method": "POST", "path": "/srv/mcp",
//      "headers": [["authorization", "Bearer …"], ["x-a", "\u00ff"]],   // values as latin1:
//                                                                     // U+00FF is byte 0xff
//      "chunks": ["<base64>", …],        // the body, one DATA frame per chunk (written one by one)
//      "pauseMs": 2,                     // pause between chunks
//      "trailers": [["x-t", "1"]]        // sent after the body: the last DATA frame does not end
//   }]}                                  // the stream, the trailers HEADERS frame does
//
// Every request gets its own connection (a hostile request must not take the next one down
// with it). One JSON line per request on stdout, in order:
//   {"i": 0, "status": 200, "headers": [["content-type", "…"], …], "bodyB64": "…"}
// or, when the stream or connection failed before a complete response,
//   {"i": 0, "error": "…", "status": 403 | null, "rstCode": 2 | null}
// Only node: built-ins are used.

import http2 from 'node:http2';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function readStdin() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return Buffer.concat(parts).toString('utf8');
}

// [[name, value], …] -> a node headers object; a repeated name becomes an array of values.
function headerObject(pairs, into = {}) {
  for (const [name, value] of pairs ?? []) {
    const key = name.toLowerCase();
    if (key in into) into[key] = [].concat(into[key], value);
    else into[key] = value;
  }
  return into;
}

// A node headers object -> [[name, value], …] (repeated values kept).
function headerPairs(headers) {
  const out = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    for (const v of [].concat(value)) out.push([name, String(v)]);
  }
  return out;
}

function run(plan, req) {
  return new Promise((resolve) => {
    const authority = `127.0.0.1:${plan.port}`;
    const session = http2.connect(`http://${authority}`);
    let stream = null;
    let status = null;
    let respHeaders = null;
    const body = [];
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.close();
      session.destroy();
      resolve(result);
    };
    const failure = (error) => ({
      error,
      status,
      rstCode: stream ? (stream.rstCode ?? null) : null,
    });
    const complete = () => ({
      status,
      headers: headerPairs(respHeaders),
      bodyB64: Buffer.concat(body).toString('base64'),
    });
    const timer = setTimeout(
      () => finish(failure(`no complete response within ${plan.timeoutMs ?? 10000} ms`)),
      plan.timeoutMs ?? 10000,
    );
    session.on('error', (e) => finish(failure(`session error: ${e.message}`)));

    const headers = headerObject(req.headers, {
      ':method': req.method,
      ':path': req.path,
      ':scheme': 'http',
      ':authority': authority,
    });
    const chunks = (req.chunks ?? []).map((c) => Buffer.from(c, 'base64'));
    const hasTrailers = Array.isArray(req.trailers) && req.trailers.length > 0;
    const endStream = chunks.length === 0 && !hasTrailers;
    try {
      stream = session.request(headers, { endStream, waitForTrailers: hasTrailers });
    } catch (e) {
      finish(failure(`request refused by node: ${e.message}`));
      return;
    }
    if (hasTrailers) {
      stream.on('wantTrailers', () => {
        try {
          stream.sendTrailers(headerObject(req.trailers));
        } catch (e) {
          finish(failure(`trailers refused by node: ${e.message}`));
        }
      });
    }
    stream.on('response', (h) => {
      status = h[':status'];
      respHeaders = Object.fromEntries(Object.entries(h).filter(([k]) => k !== ':status'));
    });
    stream.on('data', (d) => body.push(d));
    stream.on('end', () => {
      if (status !== null) finish(complete());
    });
    stream.on('error', (e) => finish(failure(`stream error: ${e.message}`)));
    stream.on('close', () => {
      // A response that ended normally was reported on 'end'; a reset stream lands here.
      if (status !== null && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR) {
        finish(complete());
      } else {
        finish(failure('stream closed without a complete response'));
      }
    });
    (async () => {
      for (let j = 0; j < chunks.length; j++) {
        if (j > 0 && req.pauseMs) await sleep(req.pauseMs);
        if (done || stream.destroyed) return;
        await new Promise((res) => stream.write(chunks[j], res));
      }
      if (!endStream && !done && !stream.destroyed) stream.end();
    })().catch(() => {});
  });
}

const plan = JSON.parse(await readStdin());
for (const [i, req] of (plan.requests ?? []).entries()) {
  let result;
  try {
    result = await run(plan, req);
  } catch (e) {
    result = { error: `client error: ${e.message}`, status: null, rstCode: null };
  }
  process.stdout.write(`${JSON.stringify({ i, ...result })}\n`);
}
