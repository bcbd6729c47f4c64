//! `portcullis doctor` against the real Envoy + Portcullis filter: the filter answers the
//! unauthenticated probes with its 401 challenge, and Envoy routes `/.well-known/…` (which the
//! filter lets through) to a small metadata server standing in for the control plane.
//!
//! The snapshot's server lives at `http://localhost/srv/mcp`; the doctor is pointed there with
//! `--resolve localhost=127.0.0.1:<envoy port>`, so the URLs in the challenge and the metadata
//! are the ones a client on that host would see.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_doctor::findings::{Code, Severity};
use portcullis_doctor::{self as doctor, discovery::PrmSource, Options, Registration, StepStatus};
use portcullis_e2e::envoy::EnvoyConfig;
use portcullis_e2e::snapshot::GROUP_DEVS;
use portcullis_e2e::{Envoy, TestDir};
use serde_json::{json, Value};

use portcullis::devtools::DevAlg;

use crate::common::{key, standard};

const URL: &str = "http://localhost/srv/mcp";
const PRM_URL: &str = "http://localhost/.well-known/oauth-protected-resource/srv/mcp";
const ISSUER: &str = "http://localhost/as";

/// Serves the protected-resource and authorization-server metadata; 404 for anything else.
struct MetadataServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetadataServer {
    fn start() -> MetadataServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind metadata server");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    std::thread::spawn(move || serve(conn));
                }
            }
        });
        MetadataServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for MetadataServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn document(path: &str) -> Option<Value> {
    match path {
        "/.well-known/oauth-protected-resource/srv/mcp"
        | "/.well-known/oauth-protected-resource" => Some(json!({
            "resource": URL,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["mcp:echo", "mcp:all"],
            "bearer_methods_supported": ["header"],
        })),
        "/.well-known/oauth-authorization-server/as" => Some(json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{ISSUER}/authorize"),
            "token_endpoint": format!("{ISSUER}/token"),
            "registration_endpoint": format!("{ISSUER}/register"),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["mcp:echo", "mcp:all"],
        })),
        _ => None,
    }
}

/// One request per connection (`connection: close`); bodies are not expected (GETs only).
fn serve(conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim_end().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("");
    let (status, body) = match document(path) {
        Some(doc) => ("200 OK", doc.to_string()),
        None => ("404 Not Found", r#"{"error":"not_found"}"#.to_string()),
    };
    let _ = write!(
        writer,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = writer.flush();
}

#[test]
fn doctor_reads_the_filters_challenge_and_the_metadata_behind_envoy() {
    let dir = TestDir::new("doctor");
    let meta = MetadataServer::start();
    let snapshot = standard()
        .edit(|s| {
            s["servers"][0]["resource"] = json!(URL);
            s["servers"][0]["resource_metadata"] = json!(PRM_URL);
        })
        .build();
    let envoy = Envoy::start(&EnvoyConfig::portcullis(&snapshot, meta.port), &dir);

    let mut opts = Options::new(URL);
    opts.resolve = vec![(
        "localhost".into(),
        format!("127.0.0.1:{}", envoy.port()).parse().unwrap(),
    )];
    opts.timeout = Duration::from_secs(10);
    // A token of the authorization server the metadata names (the doctor only reads its
    // claims; it checks `iss` against `authorization_servers`).
    let mut claims = portcullis_e2e::snapshot::claims("alice", &[GROUP_DEVS]);
    claims["iss"] = json!(ISSUER);
    opts.token = Some(key(DevAlg::ES256).sign(&claims));
    let report = doctor::diagnose_blocking(&opts);
    let text = report.to_text();

    // The filter's 401 answers both probes, with the challenge parsed.
    let probe = report.step("probe").expect("probe step");
    let statuses: Vec<(&str, Option<u16>)> = probe
        .requests
        .iter()
        .map(|e| (e.method.as_str(), e.status))
        .collect();
    assert_eq!(
        statuses,
        [("POST", Some(401)), ("GET", Some(401))],
        "{text}"
    );
    let challenge = report
        .summary
        .challenge
        .as_ref()
        .expect("a Bearer challenge");
    assert!(challenge.scheme.eq_ignore_ascii_case("bearer"));
    assert_eq!(
        challenge.resource_metadata.as_deref(),
        Some(PRM_URL),
        "{text}"
    );
    assert_eq!(
        challenge.scope.as_deref(),
        Some("mcp:echo mcp:all"),
        "{text}"
    );
    assert!(!report.has(Code::GetNoChallenge), "{text}");

    // The rest of discovery, through Envoy's well-known pass-through.
    assert_eq!(
        report.summary.resource_metadata_source,
        Some(PrmSource::Challenge)
    );
    assert!(report
        .summary
        .resource_metadata_found_at
        .contains(&PrmSource::Root));
    assert_eq!(report.summary.client_registration, Registration::Dcr);
    let token_summary = report.summary.token.as_ref().expect("token inspected");
    assert_eq!(token_summary.groups_claims.get("groups"), Some(&1));
    assert!(!text.contains(opts.token.as_deref().unwrap()));

    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{text}");
    assert!(report
        .steps
        .iter()
        .all(|s| matches!(s.status, StepStatus::Ok | StepStatus::Warn)));
    assert_eq!(report.summary.exit_code, 0, "{text}");
}
