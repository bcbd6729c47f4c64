//! The operator's commands for broker mode, run as the built binary: `portcullis secret-key`
//! and `portcullis hash-password` (whose hashes `PORTCULLIS_USERS_FILE` takes: see
//! `api/authorization_server.rs`).

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

fn portcullis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
}

#[test]
fn secret_key_prints_a_new_key_each_time() {
    let run = || {
        let out = portcullis().arg("secret-key").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.len(), 43, "{a}");
    assert!(a
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    assert_ne!(a, b);
}

fn hash(password: &str) -> std::process::Output {
    let mut child = portcullis()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn hash_password_reads_stdin_and_prints_an_argon2_hash() {
    let out = hash("correct horse battery");
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.starts_with("$argon2id$"), "{printed}");
    assert!(!printed.contains("correct horse"));
    let short = hash("short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 8 characters"));
}
