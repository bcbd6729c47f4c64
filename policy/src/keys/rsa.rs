//! RSA signature verification: RSASSA-PKCS1-v1_5 (RS256/384/512) and RSASSA-PSS (PS256/384/512),
//! RFC 8017 §8, on top of our own Montgomery arithmetic.
//!
//! PKCS#1 v1.5 is checked by comparing the recovered block against the one encoding we expect
//! (`00 01 FF…FF 00 ‖ DigestInfo ‖ H`), position by position, never by parsing it, so there is no
//! padding or ASN.1 parser to fool.

use sha2::{Digest, Sha256, Sha384, Sha512};

use super::montgomery::{self, Limb, Modulus, NativeLimb, MAX_LIMBS};
use super::{KeyError, SignatureError};

/// Smallest accepted modulus.
pub(crate) const MIN_BITS: usize = 2048;
/// Largest accepted modulus.
pub(crate) const MAX_BITS: usize = montgomery::MAX_BITS;
/// Largest byte length of a modulus.
const MAX_BYTES: usize = MAX_BITS / 8;

/// The SHA-2 function an RSA algorithm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// A digest of at most 64 bytes.
pub(crate) struct Output {
    bytes: [u8; 64],
    len: usize,
}

impl Output {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Hash {
    pub(crate) fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// Hash of the concatenation of `parts`.
    pub(crate) fn digest(self, parts: &[&[u8]]) -> Output {
        fn run<D: Digest>(parts: &[&[u8]], out: &mut [u8; 64]) -> usize {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            let h = d.finalize();
            let n = h.len();
            out[..n].copy_from_slice(&h);
            n
        }
        let mut bytes = [0u8; 64];
        let len = match self {
            Hash::Sha256 => run::<Sha256>(parts, &mut bytes),
            Hash::Sha384 => run::<Sha384>(parts, &mut bytes),
            Hash::Sha512 => run::<Sha512>(parts, &mut bytes),
        };
        Output { bytes, len }
    }

    /// DER `DigestInfo` prefix (RFC 8017 §9.2 note 1), to be followed by the hash value.
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// Which RSA signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Padding {
    Pkcs1v15,
    Pss,
}

/// An RSA public key with everything verification needs precomputed. The limb width defaults to
/// the target's best ([`NativeLimb`]); tests instantiate both.
#[derive(Clone)]
pub(crate) struct RsaPublicKey<L: Limb = NativeLimb> {
    modulus: Modulus<L>,
    e: u64,
}

impl<L: Limb> RsaPublicKey<L> {
    /// Builds a key from the big-endian modulus and exponent bytes of a JWK.
    pub(crate) fn new(n: &[u8], e: &[u8]) -> Result<RsaPublicKey<L>, KeyError> {
        let n = strip_leading_zeros(n);
        let bits = match n.first() {
            None => return Err(KeyError::InvalidModulus),
            Some(&b) => 8 * n.len() - b.leading_zeros() as usize,
        };
        if bits < MIN_BITS {
            return Err(KeyError::RsaModulusTooSmall(bits));
        }
        if bits > MAX_BITS {
            return Err(KeyError::RsaModulusTooLarge(bits));
        }
        let e = strip_leading_zeros(e);
        // e must be odd, > 1 and (like most implementations) fit 33 bits: 3 ≤ e < 2³³.
        if e.is_empty() || e.len() > 5 {
            return Err(KeyError::BadExponent);
        }
        let e = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if e < 3 || e & 1 == 0 || e >= 1 << 33 {
            return Err(KeyError::BadExponent);
        }
        let modulus = Modulus::new(n).ok_or(KeyError::InvalidModulus)?;
        Ok(RsaPublicKey { modulus, e })
    }

    /// Modulus size in bits.
    pub(crate) fn bits(&self) -> usize {
        self.modulus.bits()
    }

    /// Verifies `signature` over `message` (the JWS signing input, hashed here).
    pub(crate) fn verify(
        &self,
        padding: Padding,
        hash: Hash,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let k = self.modulus.byte_len();
        if signature.len() != k {
            return Err(SignatureError::BadLength);
        }
        let mut em_buf = [0u8; MAX_BYTES];
        let em = &mut em_buf[..k];
        self.public_op(signature, em)?;
        let m_hash = hash.digest(&[message]);
        let ok = match padding {
            Padding::Pkcs1v15 => pkcs1v15_matches(em, hash, m_hash.as_slice()),
            Padding::Pss => pss_matches(em, self.modulus.bits() - 1, hash, m_hash.as_slice()),
        };
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }

    /// RSAVP1: `em = s^e mod n` as `k` big-endian bytes; refuses `s >= n`.
    fn public_op(&self, signature: &[u8], em: &mut [u8]) -> Result<(), SignatureError> {
        let l = self.modulus.len();
        let mut s_buf = [L::ZERO; MAX_LIMBS];
        let s = &mut s_buf[..l];
        montgomery::limbs_from_be(signature, s).ok_or(SignatureError::BadLength)?;
        if !self.modulus.is_reduced(s) {
            return Err(SignatureError::Invalid);
        }
        let mut m_buf = [L::ZERO; MAX_LIMBS];
        let m = &mut m_buf[..l];
        self.modulus.pow_odd(s, self.e, m);
        montgomery::limbs_to_be(m, em).ok_or(SignatureError::Invalid)
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

/// EMSA-PKCS1-v1_5 check (RFC 8017 §8.2.2 step 3-4): `em` must equal
/// `00 01 FF…FF 00 ‖ DigestInfo prefix ‖ m_hash` exactly. The positions all follow from `k` and
/// the hash; nothing is read from `em` to decide where to look.
fn pkcs1v15_matches(em: &[u8], hash: Hash, m_hash: &[u8]) -> bool {
    let prefix = hash.digest_info_prefix();
    let t_len = prefix.len() + m_hash.len();
    let k = em.len();
    if k < t_len + 11 {
        return false;
    }
    let ps_end = k - t_len - 1;
    em[0] == 0x00
        && em[1] == 0x01
        && em[2..ps_end].iter().all(|&b| b == 0xff)
        && em[ps_end] == 0x00
        && &em[ps_end + 1..ps_end + 1 + prefix.len()] == prefix
        && &em[ps_end + 1 + prefix.len()..] == m_hash
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 over the same hash and salt length = hash length
/// (RFC 7518 §3.5). `em_k` is RSAVP1's output as `k` bytes; `em_bits = modBits - 1`.
fn pss_matches(em_k: &[u8], em_bits: usize, hash: Hash, m_hash: &[u8]) -> bool {
    let h_len = hash.len();
    let s_len = h_len;
    let em_len = em_bits.div_ceil(8);
    // I2OSP(m, emLen): when emLen < k the extra leading byte must be zero.
    let Some(extra) = em_k.len().checked_sub(em_len) else {
        return false;
    };
    if em_k[..extra].iter().any(|&b| b != 0) {
        return false;
    }
    let em = &em_k[extra..];
    // Step 3.
    if em_len < h_len + s_len + 2 {
        return false;
    }
    // Step 4.
    if em[em_len - 1] != 0xbc {
        return false;
    }
    // Step 5.
    let db_len = em_len - h_len - 1;
    let (masked_db, rest) = em.split_at(db_len);
    let h = &rest[..h_len];
    // Step 6: the 8·emLen − emBits leftmost bits of maskedDB must be zero.
    let unused_bits = 8 * em_len - em_bits;
    let top_mask: u8 = 0xff >> unused_bits;
    if masked_db[0] & !top_mask != 0 {
        return false;
    }
    // Steps 7-9: DB = maskedDB ⊕ MGF1(H, dbLen), leftmost bits cleared.
    let mut db_buf = [0u8; MAX_BYTES];
    let db = &mut db_buf[..db_len];
    db.copy_from_slice(masked_db);
    mgf1_xor(hash, h, db);
    db[0] &= top_mask;
    // Step 10: DB = PS (zeros) ‖ 0x01 ‖ salt.
    let ps_len = em_len - h_len - s_len - 2;
    if db[..ps_len].iter().any(|&b| b != 0) || db[ps_len] != 0x01 {
        return false;
    }
    // Steps 11-14: H' = Hash(00×8 ‖ mHash ‖ salt) must equal H.
    let salt = &db[db_len - s_len..];
    let h2 = hash.digest(&[&[0u8; 8], m_hash, salt]);
    h2.as_slice() == h
}

/// `out ^= MGF1(seed, out.len())` (RFC 8017 §B.2.1).
fn mgf1_xor(hash: Hash, seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(hash.len())) {
        let block = hash.digest(&[seed, &counter.to_be_bytes()]);
        for (o, m) in chunk.iter_mut().zip(block.as_slice()) {
            *o ^= m;
        }
    }
}
