//! A real OpenID provider (`oidc-provider`, `tests/node/oidc-idp.mjs`) on loopback whose signing
//! key tests can rotate and retire, dressed as Keycloak, Okta, Cognito or Entra ID when asked
//! ([`OidcIdp::start_as`]). Killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::http::{percent, Request};
use crate::paths;

pub const CLIENT_ID: &str = "portcullis-test";
pub const CLIENT_SECRET: &str = "portcullis-test-secret";
/// The groups `oidc-idp.mjs` gives [`CLIENT_ID`]'s tokens.
pub const CLIENT_GROUPS: [&str; 2] = ["engineering", "mcp-users"];

/// People who log in through the fixture's HTML forms: alice is in `engineering`, bob in no group.
pub const ALICE: (&str, &str) = ("alice", "alice-password");
pub const BOB: (&str, &str) = ("bob", "bob-password");

/// The fixture's pre-registered public clients, per profile (`oidc-idp.mjs` documents them).
pub const OKTA_CLIENT_ID: &str = "okta-mcp-public";
pub const OKTA_AUDIENCE: &str = "api://default";
pub const COGNITO_CLIENT_ID: &str = "cognito-app-client";
/// Entra's application (client) id; tokens say `aud: api://<it>`.
pub const ENTRA_APP_ID: &str = "6f1c2b0e-4d3a-4c5e-9a7b-2e8d1f0a3c41";
/// The object id Entra's fixture puts in `groups` for `engineering`.
pub const ENTRA_ENGINEERING: &str = "0b7f4a2e-93c1-4d6b-8f25-7c1e9d3a5b60";

pub struct OidcIdp {
    child: Child,
    port: u16,
}

impl OidcIdp {
    pub fn start(dir: &std::path::Path) -> OidcIdp {
        OidcIdp::start_as(dir, &[])
    }

    /// Starts the fixture with `args` (e.g. `["--profile", "okta", "--callback-port", "4711"]`).
    pub fn start_as(dir: &std::path::Path, args: &[&str]) -> OidcIdp {
        let node_dir = paths::node_dir();
        let mut child = Command::new(paths::node_bin())
            .arg(node_dir.join("oidc-idp.mjs"))
            .arg("0")
            .args(args)
            .current_dir(&node_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("oidc-idp.log")).expect("oidc-idp.log"))
            .spawn()
            .expect("starting node oidc-idp.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "oidc-idp.mjs did not start: {}",
                    std::fs::read_to_string(dir.join("oidc-idp.log")).unwrap_or_default()
                )
            });
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("oidc-idp.mjs printed {line:?}, expected `ready <port>`"));
        OidcIdp { child, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An access token (JWT, `aud` = `resource`) from the client-credentials grant.
    pub fn token(&self, resource: &str) -> String {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        let body = format!(
            "grant_type=client_credentials&resource={}",
            percent(resource)
        );
        let r = Request::post("/token")
            .header("authorization", &format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.into_bytes())
            .send(self.port);
        assert_eq!(r.status, 200, "token: {}", r.describe());
        r.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A new signing key signs from now on; the old ones stay published. The new key's kid.
    pub fn rotate(&self) -> String {
        self.admin("/admin/rotate")["current"]
            .as_str()
            .expect("current")
            .to_string()
    }

    /// Only the current key stays published.
    pub fn retire(&self) -> Value {
        self.admin("/admin/retire")
    }

    /// `user`'s groups at the IdP from now on (refreshed ID tokens carry them).
    pub fn set_groups(&self, user: &str, groups: &[&str]) {
        self.admin(&format!(
            "/admin/groups?user={user}&groups={}",
            groups.join(",")
        ));
    }

    /// `user` no longer exists at the IdP: refreshing their tokens there fails.
    pub fn remove_user(&self, user: &str) {
        self.admin(&format!("/admin/remove?user={user}"));
    }

    fn admin(&self, path: &str) -> Value {
        let r = Request::post(path).send(self.port);
        assert_eq!(r.status, 200, "{path}: {}", r.describe());
        r.json()
    }
}

impl Drop for OidcIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
