#!/usr/bin/env python3
"""A stand-in for curl in scripts/idp/test.sh: answers the Keycloak Admin API calls that
keycloak/setup.sh makes, as a fresh realm would, and logs every call (argv, headers given by
file, body) to $FAKE_LOG so the test can check where secrets travelled. No network."""
import json, os, sys

argv = sys.argv[1:]
log = {"argv": argv, "headers": [], "body": ""}
method, out, hdr_out, url = "GET", None, None, None
i = 0
while i < len(argv):
    a = argv[i]
    if a in ("-X", "-o", "-D", "-w", "-H", "--data-binary"):
        v = argv[i + 1]
        if a == "-X":
            method = v
        elif a == "-o":
            out = v
        elif a == "-D":
            hdr_out = v
        elif a == "-H":
            log["headers"].append(open(v[1:]).read().strip() if v.startswith("@") else v)
        elif a == "--data-binary":
            log["body"] = open(v[1:]).read() if v.startswith("@") else v
        i += 2
        continue
    if not a.startswith("-"):
        url = a
    i += 1

status, body, headers = 200, "", ""
path = url.split("?", 1)[0]
if path.endswith("/protocol/openid-connect/token"):
    body = json.dumps({"access_token": os.environ["FAKE_ADMIN_TOKEN"]})
elif method == "GET" and path.endswith("/clients"):
    body = "[]"
elif method == "POST" and path.endswith("/clients"):
    cid = json.loads(log["body"])["clientId"]
    status, headers = 201, "Location: %s/uuid-%s\r\n" % (path, cid)
elif method == "GET" and path.endswith("/protocol-mappers/models"):
    body = "[]"
elif method == "POST" and path.endswith("/protocol-mappers/models"):
    status = 201
elif method == "GET" and path.endswith("/client-secret"):
    body = json.dumps({"type": "secret", "value": os.environ["FAKE_CLIENT_SECRET"]})
else:
    status, body = 404, '{"error": "unexpected call in the test"}'

log.update(method=method, url=url, status=status)
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(log) + "\n")
if out:
    open(out, "w").write(body)
if hdr_out:
    open(hdr_out, "w").write("HTTP/1.1 %d x\r\n%s\r\n" % (status, headers))
sys.stdout.write(str(status))
