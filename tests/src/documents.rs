//! A host for Client ID Metadata Documents on loopback: `tests/node/document-server.mjs` over
//! https, with a certificate made for the test by `openssl` (a CA of its own and a `127.0.0.1`
//! certificate it signs). The broker fetches from it when started with
//! `PORTCULLIS_CIMD_CA_FILE` = [`DocumentHost::ca_file`] and
//! `PORTCULLIS_CIMD_ALLOWED_ADDRESSES=127.0.0.1` ([`DocumentHost::broker_env`]). Killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::paths;

pub struct DocumentHost {
    child: Child,
    port: u16,
    /// What it serves: `<root>/<path>` at `https://127.0.0.1:<port>/<path>`.
    root: PathBuf,
    ca: PathBuf,
    /// `GET /<path> <status>`, one per request, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

impl DocumentHost {
    /// Makes the certificates in `dir` and starts the server.
    pub fn start(dir: &Path) -> DocumentHost {
        let tls = dir.join("document-host-tls");
        let root = dir.join("documents");
        std::fs::create_dir_all(&tls).expect("create the TLS directory");
        std::fs::create_dir_all(&root).expect("create the documents directory");
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        openssl(
            &tls,
            &format!("req -x509 {ec} -keyout ca.key -out ca.pem -days 2"),
            &["-subj", "/CN=portcullis-e2e document host CA"],
        );
        openssl(
            &tls,
            &format!("req {ec} -keyout host.key -out host.csr"),
            &["-subj", "/CN=127.0.0.1"],
        );
        std::fs::write(
            tls.join("host.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
        )
        .expect("write host.ext");
        openssl(
            &tls,
            "x509 -req -in host.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 \
             -out host.pem -extfile host.ext",
            &[],
        );

        let node_dir = paths::node_dir();
        let log = dir.join("document-host.log");
        let mut child = Command::new(paths::node_bin())
            .arg(node_dir.join("document-server.mjs"))
            .arg(tls.join("host.pem"))
            .arg(tls.join("host.key"))
            .arg(&root)
            .current_dir(&node_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("document-host.log"))
            .spawn()
            .expect("starting node document-server.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let requests = seen.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            if let Some(first) = lines.next() {
                let _ = tx.send(first);
            }
            for line in lines {
                requests.lock().expect("requests").push(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "document-server.mjs did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!("document-server.mjs printed {line:?}, expected `ready <port>`")
            });
        DocumentHost {
            child,
            port,
            root,
            ca: tls.join("ca.pem"),
            seen,
        }
    }

    /// The https URL of `path` (`/clients/x.json`) on this host.
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The CA certificate the host's certificate is signed by (PEM).
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }

    /// What the broker needs to fetch from this host.
    pub fn broker_env(&self) -> [(&'static str, String); 2] {
        [
            ("PORTCULLIS_CIMD_CA_FILE", self.ca.display().to_string()),
            ("PORTCULLIS_CIMD_ALLOWED_ADDRESSES", "127.0.0.1".to_string()),
        ]
    }

    /// Serves `document` at `path` from now on.
    pub fn put(&self, path: &str, document: &Value) {
        let file = self.root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("create directories");
        std::fs::write(&file, document.to_string()).expect("write the document");
    }

    /// Every request so far (`GET /<path> <status>`), in order.
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().expect("requests").clone()
    }
}

impl Drop for DocumentHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `openssl <args (split at spaces)> <more>` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &str, more: &[&str]) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .args(more)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl (needed for the test's certificates): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} {more:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
