//! A proxy between Envoy and a real control plane that can eat answers: every request is
//! forwarded, and for the next N `POST /v1/audit` the control plane's answer (a 2xx: the batch
//! is stored) is thrown away and the connection closed. The stand-in for an answer lost on the
//! way back, which makes the Envoy send the same batch again.
//!
//! One request per connection (`connection: close` both ways): simple, and Envoy's pool copes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct EatingProxy {
    port: u16,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    to_eat: AtomicU64,
    eaten: AtomicU64,
    /// Status lines of the answers that were eaten (what the control plane said).
    eaten_statuses: std::sync::Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl EatingProxy {
    /// Listens on a free 127.0.0.1 port and forwards to 127.0.0.1:`upstream_port`.
    pub fn start(upstream_port: u16) -> EatingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream_port, &state);
                });
            }
        });
        EatingProxy { port, state }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Eats the answers to the next `n` audit batches.
    pub fn eat_audit_answers(&self, n: u64) {
        self.state.to_eat.store(n, Ordering::SeqCst);
    }

    /// How many answers were eaten, and their status lines.
    pub fn eaten(&self) -> (u64, Vec<String>) {
        (
            self.state.eaten.load(Ordering::SeqCst),
            self.state
                .eaten_statuses
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default(),
        )
    }
}

impl Drop for EatingProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(client: TcpStream, upstream_port: u16, state: &State) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(70)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    let mut request_line = String::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if request_line.is_empty() {
            if line.trim().is_empty() {
                continue;
            }
            request_line = line.trim_end().to_string();
            head.extend_from_slice(line.as_bytes());
            continue;
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        head.extend_from_slice(line.as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    upstream.write_all(&head)?;
    upstream.write_all(&body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    let is_audit = request_line.starts_with("POST /v1/audit");
    let eat = is_audit
        && state
            .to_eat
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let mut client = client;
    if eat {
        state.eaten.fetch_add(1, Ordering::SeqCst);
        let status = answer
            .split(|b| *b == b'\r')
            .next()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .unwrap_or_default();
        if let Ok(mut s) = state.eaten_statuses.lock() {
            s.push(status);
        }
        // The answer is lost: the connection closes without a byte of it.
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    client.write_all(&answer)?;
    let _ = client.shutdown(Shutdown::Write);
    Ok(())
}
