use super::*;

#[test]
fn round_trip_keeps_every_byte() {
    let pairs: Vec<(&[u8], &[u8])> = vec![
        (b":path", b"/srv/mcp"),
        (b"x-a", b"\xff\xc3\x28\x80"),
        (b"empty", b""),
        (b"nul-free", b"a b\tc"),
    ];
    let bytes = serialize(&pairs);
    assert_eq!(parse(&bytes), Ok(pairs));
}

#[test]
fn empty_buffer_is_no_headers() {
    assert_eq!(parse(&[]), Ok(Vec::new()));
    assert_eq!(parse(&serialize(&[])), Ok(Vec::new()));
}

#[test]
fn lengths_past_the_buffer_are_malformed() {
    let good = serialize(&[(b"name", b"value")]);
    for cut in 1..good.len() {
        assert_eq!(
            parse(&good[..cut]),
            Err(MapError::Malformed),
            "cut at {cut}"
        );
    }
    // A count that would overflow the size computation.
    assert_eq!(parse(&[0xff, 0xff, 0xff, 0xff]), Err(MapError::Malformed));
    // A missing NUL after a value.
    let mut no_nul = good.clone();
    let last = no_nul.len() - 1;
    no_nul[last] = b'x';
    assert_eq!(parse(&no_nul), Err(MapError::Malformed));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small deterministic generator: no dependency, same inputs every run.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 4 && next() % 2 == 0 {
            // Plausible small counts reach the length checks.
            bytes[..4].copy_from_slice(&((next() % 4) as u32).to_le_bytes());
        }
        let _ = parse(&bytes);
    }
}
