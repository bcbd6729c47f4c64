#!/usr/bin/env node
// A headless "browser" for OAuth logins in tests: no JavaScript, no dependencies.
//
//   browser.mjs URL            (also usable as $BROWSER: the CLIs run `$BROWSER <url>`)
//   import { browse } from './browser.mjs'
//
// GETs the URL and follows redirects (cookies kept per host). On an HTML page it submits the
// first <form> as a browser would: its method and action, every input with its value (hidden
// fields included), `username` / `password` filled from PORTCULLIS_TEST_LOGIN_USER /
// PORTCULLIS_TEST_LOGIN_PASSWORD, and the first submit button's name=value. It repeats until a
// redirect goes to the client's loopback callback (the `redirect_uri` of the first URL, else a
// loopback URL carrying `code` or `error`), which it GETs, handing code and state to the
// client's listener. Every hop goes to stderr without query values (and is appended to
// $PORTCULLIS_TEST_BROWSER_LOG when set: CLIs start their browser with its output discarded).
// Exit code: 0 when the callback was delivered, 1 when the login stopped elsewhere.

import { appendFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** The URL without query values, for logs (codes, states and tokens stay out of them). */
export function redact(url) {
  try {
    const u = new URL(url);
    const keys = [...u.searchParams.keys()];
    return `${u.origin}${u.pathname}${keys.length ? `?${keys.map((k) => `${k}=…`).join('&')}` : ''}`;
  } catch {
    return '<not a URL>';
  }
}

const decode = (s) =>
  s
    .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
    .replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCharCode(Number.parseInt(n, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');

function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:-][\w:.-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    out[m[1].toLowerCase()] = decode(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/** The first form of a page: method, action and the fields a browser would send. */
export function firstForm(html, pageUrl, { user, password } = {}) {
  const m = html.match(/<form\b([^>]*)>([\s\S]*?)<\/form>/i);
  if (!m) return undefined;
  const form = attrs(m[1]);
  const fields = new URLSearchParams();
  let submitted = false;
  for (const t of m[2].matchAll(/<(input|button|textarea|select)\b([^>]*)>/gi)) {
    const kind = t[1].toLowerCase();
    const a = attrs(t[2]);
    const type = (a.type ?? (kind === 'button' ? 'submit' : 'text')).toLowerCase();
    if (type === 'submit' || type === 'image') {
      // Only the button that was "clicked" (the first) is part of the submission.
      if (!submitted && a.name) fields.append(a.name, a.value ?? '');
      submitted = true;
      continue;
    }
    if (kind === 'button' || !a.name || 'disabled' in a) continue;
    if ((type === 'checkbox' || type === 'radio') && !('checked' in a)) continue;
    let value = a.value ?? '';
    if (a.name === 'username' && user !== undefined) value = user;
    if (a.name === 'password' && password !== undefined) value = password;
    fields.append(a.name, value);
  }
  return {
    method: (form.method ?? 'get').toUpperCase(),
    action: new URL(form.action || pageUrl, pageUrl).href,
    fields,
  };
}

/**
 * Runs a login from `url` to the client's callback. Returns {ok, callback?, status, url, text?}
 * (`text`: the last page's body when it stopped elsewhere).
 */
export async function browse(url, {
  user = process.env.PORTCULLIS_TEST_LOGIN_USER,
  password = process.env.PORTCULLIS_TEST_LOGIN_PASSWORD,
  log = (line) => {
    process.stderr.write(`[browser] ${line}\n`);
    if (process.env.PORTCULLIS_TEST_BROWSER_LOG) appendFileSync(process.env.PORTCULLIS_TEST_BROWSER_LOG, `${line}\n`);
  },
  maxHops = 30,
} = {}) {
  const jar = new Map(); // host → Map(name → value)
  let redirectUri;
  try {
    redirectUri = new URL(url).searchParams.get('redirect_uri') ?? undefined;
  } catch {
    // not a URL: fetch says so below
  }
  const isCallback = (target) => {
    const u = new URL(target);
    if (u.protocol !== 'http:' || !LOOPBACK.has(u.hostname)) return false;
    if (redirectUri) return `${u.origin}${u.pathname}` === redirectUri.split('?')[0];
    return u.searchParams.has('code') || u.searchParams.has('error');
  };
  let request = { method: 'GET', url, body: undefined };
  for (let hop = 0; hop < maxHops; hop += 1) {
    const u = new URL(request.url);
    const cookies = jar.get(u.host) ?? new Map();
    const headers = { accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'user-agent': 'portcullis-test-browser' };
    if (cookies.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (request.body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(request.url, { method: request.method, headers, body: request.body, redirect: 'manual' });
    log(`${request.method} ${redact(request.url)} -> ${res.status}`);
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (/;\s*max-age=0/i.test(c) || /expires=Thu, 01 Jan 1970/i.test(c)) cookies.delete(name);
      else cookies.set(name, value);
    }
    jar.set(u.host, cookies);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      const next = new URL(location, request.url).href;
      if (isCallback(next)) {
        const cb = await fetch(next, { redirect: 'manual' });
        const params = Object.fromEntries(new URL(next).searchParams);
        log(`GET ${redact(next)} (the client's callback) -> ${cb.status}${params.error ? `: ${params.error}: ${params.error_description ?? ''}` : ''}`);
        return { ok: !params.error, callback: redact(next), error: params.error, errorDescription: params.error_description, status: cb.status, url: redact(next) };
      }
      request = { method: 'GET', url: next, body: undefined };
      continue;
    }
    const text = await res.text();
    const form = res.status === 200 ? firstForm(text, request.url, { user, password }) : undefined;
    if (!form) {
      const plain = decode(text.replace(/<(style|script)\b[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ').trim().slice(0, 1000);
      log(`stopped at ${redact(request.url)} (${res.status}): ${plain}`);
      return { ok: false, status: res.status, url: redact(request.url), text: plain };
    }
    log(`submitting a form: ${form.method} ${redact(form.action)} [${[...form.fields.keys()].join(', ')}]`);
    request = form.method === 'GET'
      ? { method: 'GET', url: `${form.action.split('?')[0]}?${form.fields}`, body: undefined }
      : { method: form.method, url: form.action, body: form.fields.toString() };
  }
  log(`gave up after ${maxHops} hops`);
  return { ok: false, status: 0, url: redact(request.url), text: 'too many hops' };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const target = process.argv[2];
  if (!target) {
    process.stderr.write('usage: browser.mjs URL\n');
    process.exit(2);
  }
  const result = await browse(target);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(result.callback ? 0 : 1);
}
