//! Strict base64url decoding for JWK members (RFC 7515 §2, RFC 4648 §5).
//!
//! Accepts the unpadded form JOSE mandates and, leniently, the padded form some producers emit.
//! Refuses everything else: characters outside the URL-safe alphabet (including `+`, `/` and
//! whitespace), misplaced or wrong padding, impossible lengths and non-canonical encodings (unused
//! low bits of the last symbol set), so one byte string has exactly one accepted encoding apart
//! from the optional padding.

/// Why a base64url string was refused. Deliberately without detail: the caller names the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

/// The 6-bit value of a base64url symbol, or `None`.
fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes base64url, padded or not.
pub(crate) fn decode(input: &str) -> Result<Vec<u8>, Invalid> {
    let bytes = input.as_bytes();
    // Strip padding: only whole-group padding ("xx==" / "xxx=") is accepted.
    let data = if let Some(stripped) = bytes.strip_suffix(b"==") {
        if !bytes.len().is_multiple_of(4) || stripped.len() % 4 != 2 {
            return Err(Invalid);
        }
        stripped
    } else if let Some(stripped) = bytes.strip_suffix(b"=") {
        if !bytes.len().is_multiple_of(4) || stripped.len() % 4 != 3 {
            return Err(Invalid);
        }
        stripped
    } else {
        bytes
    };
    let tail = data.len() % 4;
    if tail == 1 {
        return Err(Invalid);
    }

    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c).ok_or(Invalid)?;
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut acc = 0u32;
        for &c in rest {
            acc = (acc << 6) | sextet(c).ok_or(Invalid)?;
        }
        // 2 symbols carry 12 bits for 1 byte (4 unused), 3 symbols 18 bits for 2 bytes (2 unused).
        let (unused_bits, n_bytes) = if rest.len() == 2 { (4, 1) } else { (2, 2) };
        if acc & ((1 << unused_bits) - 1) != 0 {
            return Err(Invalid);
        }
        let value = acc >> unused_bits;
        let be = value.to_be_bytes();
        out.extend_from_slice(&be[4 - n_bytes..]);
    }
    Ok(out)
}
