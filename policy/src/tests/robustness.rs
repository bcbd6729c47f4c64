//! The filter runs with `panic = "abort"`: a panic on the request path would take the whole wasm
//! VM down. Random and mutated inputs must only ever produce errors.

use super::*;
use crate::parse_body;

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.truncate(i);
            }
            2 => {
                let i = rng.below(out.len() + 1);
                let alphabet = b".{}[]\":,\\/%eyJ0ABCxyz-_=";
                out.insert(i, alphabet[rng.below(alphabet.len())]);
            }
            _ => {
                let i = rng.below(out.len() + 1);
                let j = rng.below(out.len() + 1);
                let (a, b) = (i.min(j), i.max(j));
                let copy = out[a..b].to_vec();
                out.splice(a..a, copy);
            }
        }
    }
    out
}

#[test]
fn mutated_tokens_never_panic() {
    let p = compile(&snapshot());
    let good = rs256(&rsa_key("a"), Some("k1"), &claims());
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let bytes = mutate(&mut rng, good.as_bytes());
        let text = String::from_utf8_lossy(&bytes);
        let _ = p.verify_jwt(&text, NOW);
        let _ = p.verify_api_key(&text, NOW);
    }
    for _ in 0..1000 {
        let len = rng.below(600);
        let text = String::from_utf8_lossy(&rng.bytes(len)).into_owned();
        let _ = p.verify_jwt(&text, NOW);
    }
}

#[test]
fn mutated_jsonrpc_bodies_never_panic() {
    let p = compile(&snapshot());
    let identity = p
        .verify_jwt(&rs256(&rsa_key("a"), Some("k1"), &claims()), NOW)
        .unwrap();
    let seeds: [&[u8]; 3] = [
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":"x"}}}"#,
        br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"result":{}}]"#,
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ];
    let mut rng = XorShift(42);
    for _ in 0..5000 {
        let seed = seeds[rng.below(seeds.len())];
        let body = mutate(&mut rng, seed);
        if let Ok(messages) = parse_body(&body) {
            let _ = p.authorize_messages(&identity, 0, &messages);
        }
    }
    // Deep nesting is refused by the parser's recursion limit, not by a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_body(deep.as_bytes()).is_err());
}

#[test]
fn mutated_paths_never_panic() {
    let p = compile(&snapshot());
    let mut rng = XorShift(7);
    for _ in 0..5000 {
        let bytes = mutate(&mut rng, b"/everything/mcp?x=1");
        let _ = p.route(&String::from_utf8_lossy(&bytes));
    }
}
