#!/usr/bin/env python3
"""A fixture identity provider for the control-plane benchmark: serves one OIDC discovery
document (also at the RFC 8414 location) on 127.0.0.1, nothing else. It binds a free port,
prints `PORT <n>` on stdout, and logs one line per request on stderr (so the benchmark can
count how often `portcullis serve` really went to the IdP). Not an authorization server: its
endpoints point nowhere."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
port = server.server_address[1]
issuer = f"http://127.0.0.1:{port}"
DOC = json.dumps({
    "issuer": issuer,
    "authorization_endpoint": f"{issuer}/authorize",
    "token_endpoint": f"{issuer}/token",
    "registration_endpoint": f"{issuer}/register",
    "jwks_uri": f"{issuer}/jwks",
    "response_types_supported": ["code"],
    "grant_types_supported": ["authorization_code", "refresh_token"],
    "code_challenge_methods_supported": ["S256"],
    "token_endpoint_auth_methods_supported": ["none"],
    "scopes_supported": ["openid", "email", "profile", "offline_access"],
}).encode()
PATHS = {"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in PATHS:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(DOC)))
            self.end_headers()
            self.wfile.write(DOC)
        else:
            self.send_error(404)

    def log_message(self, fmt, *args):
        sys.stderr.write("IDP_HIT %s\n" % (fmt % args))
        sys.stderr.flush()


server.RequestHandlerClass = Handler
print(f"PORT {port}", flush=True)
server.serve_forever()
