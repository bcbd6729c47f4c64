#!/usr/bin/env python3
"""Writes the fuzz snapshot (fuzz/policy.json) and the hand-made seed corpora (fuzz/corpus/*/seed-*).

Usage: python3 fuzz/make_seeds.py [policy] [jwt] [jwt_structured] [jsonrpc] [snapshot] [request]
(no argument: all of them).

Deterministic keys: RSA from policy/src/keys/testdata/rsa2048.pem, a fixed P-256 scalar, a fixed
Ed25519 seed and a fixed HS256 secret (the same secret is in fuzz/src/lib.rs, which signs the
structured target's tokens). ECDSA and PSS signatures are randomized, so re-running changes those
seed files' bytes but not what they cover. Needs Python 3 with `cryptography`.
"""
import base64
import hashlib
import hmac
import json
import pathlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"

NOW = 1_800_000_000  # the harness's "now" (2027-01-15)
HS_SECRET = b"portcullis-fuzz-hs256-secret-32b"
API_KEY = "pk_fuzz_ci_key"
ADMIN_KEY = "pk_fuzz_admin_key"
ISS_A = "https://idp.fuzz/a"  # RSA + EC + OKP keys, each with a kid
ISS_HS = "https://idp.fuzz/hs"  # HS256, client allowlist, token_use, nested groups claim
ISS_NOKID = "https://idp.fuzz/nokid"  # one EC and one OKP key without kid
RES_A = "https://gw.fuzz/everything/mcp"
RES_B = "https://gw.fuzz/files/mcp"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int, size: int | None = None) -> bytes:
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


rsa_key = serialization.load_pem_private_key(
    (ROOT / "policy/src/keys/testdata/rsa2048.pem").read_bytes(), password=None
)
ec_key = ec.derive_private_key(0x5EED_F022_0000_0001_C0FF_EE00_0000_0042, ec.SECP256R1())
ed_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"portcullis fuzz ed25519").digest())

rsa_pub = rsa_key.public_key().public_numbers()
ec_pub = ec_key.public_key().public_numbers()
ed_pub = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

rsa_jwk = {"kty": "RSA", "kid": "rsa-1", "use": "sig", "n": b64(uint(rsa_pub.n)), "e": b64(uint(rsa_pub.e))}
ec_jwk = {"kty": "EC", "crv": "P-256", "x": b64(uint(ec_pub.x, 32)), "y": b64(uint(ec_pub.y, 32))}
ed_jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(ed_pub)}
hs_jwk = {"kty": "oct", "kid": "hs-1", "k": b64(HS_SECRET)}

SNAPSHOT = {
    "format": 1,
    "version": 9,
    "issuers": [
        {
            "issuer": ISS_A,
            "jwks": {"keys": [rsa_jwk, dict(ec_jwk, kid="ec-1"), dict(ed_jwk, kid="ed-1")]},
            "algorithms": ["RS256", "PS256", "ES256", "EdDSA"],
            "audiences": ["mcp-gateway"],
            "audience_is_resource": True,
        },
        {
            "issuer": ISS_HS,
            "jwks": {"keys": [hs_jwk]},
            "algorithms": ["HS256"],
            "audience_is_resource": True,
            "client_ids": ["cli"],
            "groups_claim": "realm_access.roles",
            "username_claim": "email",
            "token_use": "access",
            "leeway_seconds": 0,
        },
        {
            "issuer": ISS_NOKID,
            "jwks": {"keys": [ec_jwk, ed_jwk]},
            "algorithms": ["ES256", "EdDSA"],
            "audiences": [RES_B],
            "groups_claim": "cognito:groups",
            "username_claim": "username",
            "leeway_seconds": 300,
        },
    ],
    "servers": [
        {"name": "everything", "path_prefix": "/everything", "resource": RES_A,
         "resource_metadata": "https://gw.fuzz/.well-known/oauth-protected-resource/everything/mcp",
         "scopes_supported": ["openid", "email"]},
        {"name": "files", "path_prefix": "/files", "resource": RES_B,
         "resource_metadata": "https://gw.fuzz/.well-known/oauth-protected-resource/files/mcp"},
    ],
    "group_mappings": [
        {"group": "eng", "scopes": ["everything-echo"]},
        {"group": "admins", "scopes": ["admin"]},
        {"group": "readers", "scopes": ["files-read"]},
    ],
    "scopes": [
        {"name": "everything-echo", "grants": [
            {"server": "everything", "methods": ["tools/list", "tools/call"], "tools": ["echo", "get_*"]}]},
        {"name": "admin", "grants": [{"server": "*", "methods": ["*"], "tools": ["*"]}]},
        {"name": "files-read", "grants": [{"server": "files", "methods": ["resources/*"]}]},
    ],
    "api_keys": [
        {"name": "ci", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "subject": "ci-bot",
         "groups": ["eng"], "scopes": ["files-read"], "expires_at": NOW + 86400},
        {"name": "admin", "sha256": hashlib.sha256(ADMIN_KEY.encode()).hexdigest(), "subject": "root",
         "groups": ["admins"]},
    ],
    "settings": {"max_token_bytes": 8192, "max_body_bytes": 2048, "allowed_origins": ["https://claude.ai"]},
}


def jws(header, claims, sign) -> str:
    h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    c = claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
    signing_input = f"{b64(h.encode())}.{b64(c.encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def rs256(data):
    return rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def ps256(data):
    return rsa_key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())


def es256(data):
    r, s = decode_dss_signature(ec_key.sign(data, ec.ECDSA(hashes.SHA256())))
    return uint(r, 32) + uint(s, 32)


def eddsa(data):
    return ed_key.sign(data)


def hs256(data, secret=HS_SECRET):
    return hmac.new(secret, data, hashlib.sha256).digest()


def claims_a(**over):
    c = {"iss": ISS_A, "sub": "user-1", "preferred_username": "alice", "aud": RES_A,
         "groups": ["eng"], "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 300}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def claims_hs(**over):
    c = {"iss": ISS_HS, "sub": "svc-7", "email": "bot@fuzz", "client_id": "cli", "token_use": "access",
         "realm_access": {"roles": ["readers", "admins"]}, "exp": NOW + 60}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def claims_nokid(**over):
    c = {"iss": ISS_NOKID, "sub": "u-9", "username": "carol", "aud": [RES_B, "other"],
         "cognito:groups": "readers", "exp": NOW - 5}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def jwt_seeds():
    hdr = lambda alg, kid=None, **x: {k: v for k, v in {"alg": alg, "typ": "JWT", "kid": kid, **x}.items() if v is not None}
    good_rs = jws(hdr("RS256", "rsa-1"), claims_a(), rs256)
    seeds = {
        "rs256-valid": good_rs,
        "ps256-valid": jws(hdr("PS256", "rsa-1"), claims_a(aud=["mcp-gateway"]), ps256),
        "es256-valid": jws(hdr("ES256", "ec-1"), claims_a(groups="admins"), es256),
        "eddsa-valid": jws(hdr("EdDSA", "ed-1", typ="at+jwt"), claims_a(aud=[RES_B, RES_A]), eddsa),
        "hs256-valid": jws(hdr("HS256", "hs-1"), claims_hs(), hs256),
        "hs256-azp-no-aud": jws(hdr("HS256"), claims_hs(client_id=None, azp="cli"), hs256),
        "es256-nokid": jws({"alg": "ES256"}, claims_nokid(), es256),
        "eddsa-nokid": jws({"alg": "EdDSA"}, claims_nokid(exp=1.9e9, nbf=1.5e9), eddsa),
        "rs256-expired": jws(hdr("RS256", "rsa-1"), claims_a(exp=NOW - 3600), rs256),
        "rs256-nbf-future": jws(hdr("RS256", "rsa-1"), claims_a(nbf=NOW + 3600), rs256),
        "rs256-wrong-aud": jws(hdr("RS256", "rsa-1"), claims_a(aud="https://elsewhere"), rs256),
        "rs256-no-sub": jws(hdr("RS256", "rsa-1"), claims_a(sub=None), rs256),
        "rs256-groups-type": jws(hdr("RS256", "rsa-1"), claims_a(groups=[1, "eng"]), rs256),
        "rs256-no-kid-ambiguous": jws({"alg": "RS256"}, claims_a(), rs256),
        "rs256-wrong-key": jws(hdr("RS256", "ec-1"), claims_a(), rs256),
        "es256-as-hs256": jws(hdr("HS256", "ec-1"), claims_a(), hs256),
        "hs256-wrong-secret": jws(hdr("HS256", "hs-1"), claims_hs(), lambda d: hs256(d, b"x" * 32)),
        "hs256-token-use-id": jws(hdr("HS256", "hs-1"), claims_hs(token_use="id"), hs256),
        "alg-none": jws({"alg": "none"}, claims_a(), lambda d: b""),
        "alg-None-case": jws({"alg": "nOnE"}, claims_a(), lambda d: b""),
        "alg-unsupported": jws({"alg": "RS1"}, claims_a(), lambda d: b"x"),
        "crit": jws(hdr("RS256", "rsa-1", crit=["exp"]), claims_a(), rs256),
        "typ-bad": jws(hdr("RS256", "rsa-1", typ="JOSE+JSON"), claims_a(), rs256),
        "dup-header": jws('{"alg":"HS256","alg":"none"}', claims_hs(), hs256),
        "dup-claims-nested": jws(hdr("HS256"), '{"iss":"%s","realm_access":{"roles":[],"roles":["admins"]},"sub":"a","exp":9e9}' % ISS_HS, hs256),
        "exp-float-huge": jws(hdr("HS256"), claims_hs(exp=1e300), hs256),
        "exp-negative": jws(hdr("HS256"), claims_hs(exp=-1), hs256),
        "exp-string": jws(hdr("HS256"), claims_hs(exp="1900000000"), hs256),
        "exp-u64-max": jws(hdr("HS256"), '{"iss":"%s","sub":"a","exp":18446744073709551615,"iat":18446744073709551615,"token_use":"access","client_id":"cli"}' % ISS_HS, hs256),
        "iss-unknown": jws(hdr("HS256"), claims_hs(iss="https://evil"), hs256),
        "iss-number": jws(hdr("HS256"), claims_hs(iss=7), hs256),
        "header-array": jws("[]", claims_hs(), hs256),
        "claims-not-json": jws(hdr("HS256"), "{\"iss\":", hs256),
        "unicode-claims": jws(hdr("HS256"), claims_hs(sub="\u00e9\u2028\ud83d\ude00", email="\u0000\r\nX-Evil: 1"), hs256),
        "two-parts": good_rs.rsplit(".", 1)[0],
        "four-parts": good_rs + ".x",
        "empty-header": "." + good_rs.split(".", 1)[1],
        "bad-base64-padding": good_rs.replace(".", "=.", 1),
        "bad-base64-std": good_rs.replace("-", "+").replace("_", "/"),
        "sig-truncated": good_rs[:-10],
        "sig-empty": good_rs.rsplit(".", 1)[0] + ".",
        "api-key": API_KEY,
        "empty": "",
        "dots": "..",
    }
    for name, token in seeds.items():
        write("jwt", name, token)
    return seeds


def structured(ctl, header, claims, sig=b""):
    h = header if isinstance(header, (str, bytes)) else json.dumps(header, separators=(",", ":"))
    c = claims if isinstance(claims, (str, bytes)) else json.dumps(claims, separators=(",", ":"))
    h = h if isinstance(h, bytes) else h.encode()
    c = c if isinstance(c, bytes) else c.encode()
    return bytes([ctl]) + h + b"\0" + c + b"\0" + sig


def jwt_structured_seeds():
    # Control byte (see fuzz/src/lib.rs): bits 0/1 header/claims verbatim, bits 2-3 signature
    # mode (0 HMAC with the fuzz secret, 1 base64url of the bytes, 2 verbatim, 3 HMAC + suffix),
    # bits 4-5 clock (NOW, 0, u64::MAX, NOW + 2^32).
    hs = {"alg": "HS256", "kid": "hs-1"}
    seeds = {
        "hs-valid": structured(0, hs, claims_hs()),
        "hs-nokid": structured(0, {"alg": "HS256", "typ": "at+jwt"}, claims_hs(aud=RES_B)),
        "hs-clock-zero": structured(0x10, hs, claims_hs(nbf=5, iat=5)),
        "hs-clock-max": structured(0x20, hs, claims_hs()),
        "hs-clock-far": structured(0x30, hs, claims_hs(exp=1e19)),
        "hs-groups-string": structured(0, hs, claims_hs(realm_access={"roles": "admins"})),
        "hs-groups-null": structured(0, hs, claims_hs(realm_access={"roles": None})),
        "hs-groups-deep": structured(0, hs, claims_hs(realm_access=[{"roles": ["x"]}])),
        "hs-username-empty": structured(0, hs, claims_hs(email="")),
        "hs-aud-array-mixed": structured(0, hs, claims_hs(aud=[RES_A, 3])),
        "hs-aud-object": structured(0, hs, claims_hs(aud={"a": 1})),
        "hs-client-unknown": structured(0, hs, claims_hs(client_id="other")),
        "hs-nested-deep": structured(0, hs, claims_hs(x=[[[[[[[[[[{"a": [1.5e308, -0.0]}]]]]]]]]]])),
        "hs-suffix": structured(0x0c, hs, claims_hs(), b"AAAA"),
        "rs-raw-sig": structured(0x04, {"alg": "RS256", "kid": "rsa-1"}, claims_a(), b"\x01" * 256),
        "es-raw-sig": structured(0x04, {"alg": "ES256", "kid": "ec-1"}, claims_a(), b"\xff" * 64),
        "ed-raw-sig": structured(0x04, {"alg": "EdDSA", "kid": "ed-1"}, claims_a(), b"\x00" * 64),
        "ps-raw-sig": structured(0x04, {"alg": "PS256", "kid": "rsa-1"}, claims_a(), b"\x7f" * 255),
        "es-nokid-raw": structured(0x04, {"alg": "ES256"}, claims_nokid(), b"\x01" * 64),
        "sig-verbatim-bad": structured(0x08, hs, claims_hs(), b"!!not base64=="),
        "header-verbatim": structured(0x01, "eyJhbGciOiJIUzI1NiJ9", claims_hs()),
        "claims-verbatim": structured(0x02, hs, "e30"),
        "both-verbatim-dots": structured(0x03, "a.b", "c.d"),
        "crit": structured(0, dict(hs, crit=[]), claims_hs()),
        "typ-number": structured(0, dict(hs, typ=1), claims_hs()),
        "kid-number": structured(0, dict(hs, kid=1), claims_hs()),
        "alg-unknown": structured(0, {"alg": "HS1024"}, claims_hs()),
        "header-non-utf8": structured(0, b'{"alg":"HS256","x":"\xff\xfe"}', claims_hs()),
        "empty": b"",
        "ctl-only": b"\x00",
    }
    for name, data in seeds.items():
        write("jwt_structured", name, data)


def jsonrpc_seeds():
    call = lambda i, name, **p: {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, **p}}
    seeds = {
        "initialize": {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}},
        "initialized-notification": {"jsonrpc": "2.0", "method": "notifications/initialized"},
        "tools-list": {"jsonrpc": "2.0", "id": "a", "method": "tools/list"},
        "tools-call-echo": call(2, "echo", arguments={"message": "hi"}),
        "tools-call-get-prefix": call(3, "get_issue"),
        "tools-call-forbidden": call(4, "delete_repo"),
        "tools-call-no-name": {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {}},
        "tools-call-name-number": call(6, 7),
        "tools-call-params-array": {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": ["echo"]},
        "resources-read": {"jsonrpc": "2.0", "id": 8, "method": "resources/read", "params": {"uri": "file:///x"}},
        "response-result": {"jsonrpc": "2.0", "id": 9, "result": {"roots": []}},
        "response-error": {"jsonrpc": "2.0", "id": 9, "error": {"code": -1, "message": "no"}},
        "bad-version": {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        "no-version": {"id": 1, "method": "ping"},
        "not-a-message": {"jsonrpc": "2.0", "id": 1},
        "method-number": {"jsonrpc": "2.0", "id": 1, "method": 5},
        "batch": [call(1, "echo"), {"jsonrpc": "2.0", "method": "notifications/progress"}, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}],
        "batch-one-forbidden": [call(1, "echo"), call(2, "rm")],
        "batch-mixed-responses": [{"jsonrpc": "2.0", "id": 1, "result": {}}, {"jsonrpc": "2.0", "id": 2, "method": "ping"}],
        "batch-nested": [[{"jsonrpc": "2.0", "method": "ping"}]],
        "batch-empty": [],
        "batch-of-scalars": [1, "x", None],
    }
    for name, body in seeds.items():
        write("jsonrpc", name + ".json", json.dumps(body))
    raw = {
        "escaped-method.json": b'{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"\\u0065cho"}}',
        "escaped-surrogate.json": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\ud83d\\ude00"}}',
        "lone-surrogate.json": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\\udc00"}}',
        "duplicate-method.json": b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"rm"}}',
        "duplicate-name.json": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"rm"}}',
        "trailing-garbage.json": b'{"jsonrpc":"2.0","id":1,"method":"ping"} x',
        "two-objects.json": b'{"jsonrpc":"2.0","method":"ping"}{"jsonrpc":"2.0","method":"ping"}',
        "truncated.json": b'{"jsonrpc":"2.0","id":1,"method":"tools/ca',
        "whitespace-lead.json": b' \r\n\t[{"jsonrpc":"2.0","method":"ping"}]\n',
        "non-utf8.json": b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\xff\xfe"}}',
        "bom.json": b'\xef\xbb\xbf{"jsonrpc":"2.0","method":"ping"}',
        "deep-nesting.json": b'{"jsonrpc":"2.0","id":1,"method":"x","params":' + b"[" * 200 + b"]" * 200 + b"}",
        "big-number.json": b'{"jsonrpc":"2.0","id":1e999,"method":"ping"}',
        "scalar.json": b"42",
        "null.json": b"null",
        "empty.json": b"",
        "spaces.json": b"   ",
    }
    for name, body in raw.items():
        write("jsonrpc", name, body)


def snapshot_seeds():
    example = (ROOT / "docs/policy-example.json").read_bytes()
    write("snapshot", "policy-example.json", example)
    write("snapshot", "fuzz-policy.json", json.dumps(SNAPSHOT, indent=1))
    minimal = {"format": 1, "version": 1}
    write("snapshot", "minimal.json", json.dumps(minimal))

    def variant(name, mutate):
        s = json.loads(json.dumps(SNAPSHOT))
        mutate(s)
        write("snapshot", name + ".json", json.dumps(s))

    variant("unknown-field", lambda s: s.update(extra=1))
    variant("format-2", lambda s: s.update(format=2))
    variant("version-negative", lambda s: s.update(version=-1))
    variant("issuer-dup", lambda s: s["issuers"].append(s["issuers"][0]))
    variant("jwk-bad-rsa-n", lambda s: s["issuers"][0]["jwks"]["keys"][0].update(n="AQAB"))
    variant("jwk-rsa-even-e", lambda s: s["issuers"][0]["jwks"]["keys"][0].update(e="AQAA"))
    variant("jwk-ec-off-curve", lambda s: s["issuers"][0]["jwks"]["keys"][1].update(y=b64(b"\x01" * 32)))
    variant("jwk-okp-short", lambda s: s["issuers"][0]["jwks"]["keys"][2].update(x="AAAA"))
    variant("jwk-oct-short", lambda s: s["issuers"][1]["jwks"]["keys"][0].update(k="c2hvcnQ"))
    variant("jwk-dup-kid", lambda s: s["issuers"][0]["jwks"]["keys"][1].update(kid="rsa-1"))
    variant("jwk-unknown-kty", lambda s: s["issuers"][0]["jwks"]["keys"].append({"kty": "XYZ"}))
    variant("alg-unknown", lambda s: s["issuers"][0]["algorithms"].append("ES512"))
    variant("alg-none", lambda s: s["issuers"][0]["algorithms"].append("none"))
    variant("alg-empty", lambda s: s["issuers"][0].update(algorithms=[]))
    variant("server-dup-prefix", lambda s: s["servers"][1].update(path_prefix="/everything"))
    variant("server-prefix-slash", lambda s: s["servers"][1].update(path_prefix="/"))
    variant("server-prefix-dots", lambda s: s["servers"][1].update(path_prefix="/a/../b"))
    variant("server-name-dup", lambda s: s["servers"][1].update(name="everything"))
    variant("grant-unknown-server", lambda s: s["scopes"][0]["grants"][0].update(server="nope"))
    variant("pattern-bad", lambda s: s["scopes"][0]["grants"][0].update(methods=["a*b*"]))
    variant("pattern-empty", lambda s: s["scopes"][0]["grants"][0].update(tools=[""]))
    variant("mapping-unknown-scope", lambda s: s["group_mappings"][0].update(scopes=["ghost"]))
    variant("apikey-bad-hex", lambda s: s["api_keys"][0].update(sha256="zz" * 32))
    variant("apikey-short-hex", lambda s: s["api_keys"][0].update(sha256="ab"))
    variant("settings-zero", lambda s: s["settings"].update(max_token_bytes=0, max_body_bytes=0, token_cache_entries=0))
    variant("settings-header-bad", lambda s: s["settings"].update(user_header="X User\r\n"))
    variant("settings-huge", lambda s: s["settings"].update(token_cache_entries=18446744073709551615))
    variant("leeway-max", lambda s: s["issuers"][0].update(leeway_seconds=18446744073709551615))
    write("snapshot", "truncated.json", example[: len(example) // 2])
    write("snapshot", "not-object.json", b"[1,2,3]")
    write("snapshot", "trailing.json", example + b"\n{}")
    write("snapshot", "empty.json", b"")


def request_seeds(tokens):
    # Control byte (see fuzz/src/lib.rs): bit 0 headers end the stream, bits 1-2 body chunk
    # size (1, 7, 512, whole). Header lines are `name NUL value LF`, then an empty line, then
    # the body.
    def req(ctl, headers, body=b""):
        out = bytes([ctl])
        for name, value in headers:
            out += (name if isinstance(name, bytes) else name.encode()) + b"\0"
            out += (value if isinstance(value, bytes) else value.encode()) + b"\n"
        return out + b"\n" + (body if isinstance(body, bytes) else body.encode())

    def post(path="/everything/mcp", extra=(), method="POST"):
        return [(":method", method), (":path", path), (":authority", "gw.fuzz"),
                ("content-type", "application/json"), ("accept", "application/json, text/event-stream"),
                *extra]

    key = [("x-api-key", API_KEY)]
    admin = [("authorization", "Bearer " + ADMIN_KEY)]
    call = lambda name, i=1: json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name}})
    listing = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    whole, one, seven, chunk512 = 6, 0, 2, 4
    seeds = {
        "post-apikey-echo": req(whole, post(extra=key), call("echo")),
        "post-apikey-echo-1byte-chunks": req(one, post(extra=key), call("echo")),
        "post-apikey-forbidden-tool": req(seven, post(extra=key), call("rm")),
        "post-admin-batch": req(whole, post(extra=admin), json.dumps([json.loads(call("x")), json.loads(listing)])),
        "post-jwt-rs256": req(whole, post(extra=[("authorization", "Bearer " + tokens["rs256-valid"])]), listing),
        "post-jwt-hs256-files": req(chunk512, post("/files/mcp", [("authorization", "bearer  " + tokens["hs256-valid"] + " ")]),
                                   json.dumps({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///a"}})),
        "post-jwt-expired": req(whole, post(extra=[("authorization", "Bearer " + tokens["rs256-expired"])]), listing),
        "post-jwt-wrong-aud": req(whole, post(extra=[("authorization", "Bearer " + tokens["rs256-wrong-aud"])]), listing),
        "post-no-credentials": req(whole, post(), call("echo")),
        "post-empty-eos": req(1, post(extra=key)),
        "post-content-length-zero": req(whole, post(extra=key + [("content-length", "0")])),
        "post-content-length-bad": req(whole, post(extra=key + [("content-length", " 1e3")]), listing),
        "post-content-length-huge": req(whole, post(extra=key + [("content-length", "99999999999999999999999")]), listing),
        "post-body-not-json": req(whole, post(extra=key), "{\"jsonrpc\":"),
        "post-mcp-headers-match": req(whole, post(extra=key + [("mcp-method", "tools/call"), ("mcp-name", "echo")]), call("echo")),
        "post-mcp-headers-mismatch": req(whole, post(extra=key + [("mcp-method", "tools/list"), ("mcp-name", "echo")]), call("rm")),
        "post-mcp-name-non-utf8": req(whole, post(extra=key + [("mcp-name", b"\xff")]), call("echo")),
        "get-apikey-eos": req(1, post(method="GET", extra=key)),
        "delete-with-body": req(whole, post(method="DELETE", extra=key), call("rm")),
        "put-content-length": req(whole, post(method="PUT", extra=key + [("content-length", "12")]), call("rm")),
        "patch-open-stream-no-body": req(whole, post(method="PATCH", extra=admin)),
        "discovery-get": req(1, [(":method", "GET"), (":path", "/.well-known/oauth-protected-resource/everything/mcp")]),
        "discovery-under-server": req(1, [(":method", "GET"), (":path", "/everything/mcp/.well-known/oauth-authorization-server")]),
        "discovery-post-body": req(whole, post("/everything/mcp/.well-known/foo"), call("rm")),
        "well-known-odd-segment": req(whole, post("/everything/x/.well-known/y"), call("rm")),
        "unknown-server": req(whole, post("/nope/mcp", key), listing),
        "path-dot-segments": req(whole, post("/everything/../files/mcp", key), listing),
        "path-encoded-slash": req(whole, post("/everything%2Fmcp", key), listing),
        "path-query": req(whole, post("/everything/mcp?x=/../&y#f", key), listing),
        "path-non-ascii": req(whole, post(b"/everything/\xc3\xa9", key), listing),
        "path-missing": req(whole, [(":method", "POST")] + key, listing),
        "path-duplicate": req(whole, post(extra=key + [(":path", "/files/mcp")]), listing),
        "method-missing": req(whole, [(":path", "/everything/mcp")] + key, listing),
        "method-bad-token": req(whole, post(method="PO ST", extra=key), listing),
        "authorization-duplicate": req(whole, post(extra=admin + admin), listing),
        "authorization-and-apikey": req(whole, post(extra=admin + key), listing),
        "authorization-basic": req(whole, post(extra=[("authorization", "Basic YTpi")]), listing),
        "authorization-non-utf8": req(whole, post(extra=[("authorization", b"Bearer \xff\xfe")]), listing),
        "apikey-duplicate": req(whole, post(extra=key + key), listing),
        "apikey-with-space": req(whole, post(extra=[("x-api-key", " pk_fuzz ci ")]), listing),
        "apikey-non-utf8": req(whole, post(extra=[("x-api-key", b"\x80pk")]), listing),
        "identity-spoof": req(whole, post(extra=key + [("x-portcullis-user", "root"), ("x-portcullis-groups", "admins"), ("x-portcullis-scopes", "admin")]), call("echo")),
        "identity-spoof-too-many": req(whole, post(extra=key + [("x-portcullis-a%d" % i, "x") for i in range(9)]), call("echo")),
        "origin-allowed": req(whole, post(extra=key + [("origin", "https://claude.ai")]), call("echo")),
        "origin-denied": req(whole, post(extra=key + [("origin", "https://evil.example")]), call("echo")),
        "origin-non-utf8": req(whole, post(extra=key + [("origin", b"https://\xff")]), call("echo")),
        "cors-preflight": req(1, [(":method", "OPTIONS"), (":path", "/everything/mcp"), ("origin", "https://claude.ai"),
                                  ("access-control-request-method", "POST"), ("access-control-request-headers", "authorization")]),
        "non-utf8-other-header": req(whole, post(extra=key + [("x-a", b"\xff\x00\r")]), call("echo")),
        "uppercase-names": req(whole, [(":method", "POST"), (":path", "/everything/mcp"), ("Authorization", "Bearer " + ADMIN_KEY), ("X-Api-Key", API_KEY)], call("echo")),
        "body-too-large": req(chunk512, post(extra=key), call("echo") + " " * 2100),
        "empty": b"",
        "ctl-only": b"\x06",
    }
    for name, data in seeds.items():
        write("request", name, data)


if __name__ == "__main__":
    import sys

    wanted = set(sys.argv[1:]) or {"policy", "jwt", "jwt_structured", "jsonrpc", "snapshot", "request"}
    if "policy" in wanted:
        (FUZZ / "policy.json").write_text(json.dumps(SNAPSHOT, indent=2) + "\n")
    # The JWT seeds are needed by the request seeds; they are only written when asked for.
    tokens = jwt_seeds() if "jwt" in wanted else None
    if "jwt_structured" in wanted:
        jwt_structured_seeds()
    if "jsonrpc" in wanted:
        jsonrpc_seeds()
    if "snapshot" in wanted:
        snapshot_seeds()
    if "request" in wanted:
        if tokens is None:
            tokens = {p.name[5:]: p.read_text() for p in (CORPUS / "jwt").glob("seed-*")}
        request_seeds(tokens)
