//! Tests for `keys`: signatures are made with independent implementations (the `rsa`, `p256`,
//! `p384`, `ed25519-dalek` and `hmac` crates) and published RFC vectors, then checked with ours.

use std::sync::OnceLock;

use ::rsa::pkcs8::DecodePrivateKey;
use ::rsa::signature::{RandomizedSigner, SignatureEncoding, Signer, Verifier};
use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
use ::rsa::{BigUint, RsaPrivateKey};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;

use super::montgomery::{self, Limb, Modulus};
use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Base64url without padding.
fn b64e(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for i in 0..symbols {
            out.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn b64d(s: &str) -> Vec<u8> {
    b64::decode(s).expect("test data is valid base64url")
}

fn jwk(value: serde_json::Value) -> Jwk {
    serde_json::from_value(value).expect("JWK JSON")
}

fn key(value: serde_json::Value) -> VerifyingKey {
    VerifyingKey::from_jwk(&jwk(value)).expect("key loads")
}

fn key_err(value: serde_json::Value) -> KeyError {
    VerifyingKey::from_jwk(&jwk(value)).expect_err("key must be refused")
}

/// Small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn flip_bit(data: &[u8], bit: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    v[bit / 8] ^= 1 << (bit % 8);
    v
}

// ---------------------------------------------------------------------------------------------
// RSA fixtures: fixed keys generated once with `openssl genpkey`, so no test generates keys.

fn rsa_key(name: &str) -> &'static RsaPrivateKey {
    macro_rules! fixture {
        ($file:literal) => {{
            static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
            KEY.get_or_init(|| {
                RsaPrivateKey::from_pkcs8_pem(include_str!(concat!("testdata/", $file, ".pem")))
                    .expect("test key parses")
            })
        }};
    }
    match name {
        "rsa1024" => fixture!("rsa1024"),
        "rsa2048" => fixture!("rsa2048"),
        "rsa2048b" => fixture!("rsa2048b"),
        "rsa2049" => fixture!("rsa2049"),
        "rsa2056" => fixture!("rsa2056"),
        "rsa3072" => fixture!("rsa3072"),
        "rsa4096" => fixture!("rsa4096"),
        other => panic!("no fixture {other}"),
    }
}

fn rsa_jwk_value(k: &RsaPrivateKey) -> serde_json::Value {
    json!({
        "kty": "RSA",
        "kid": "rsa-test",
        "n": b64e(&k.n().to_bytes_be()),
        "e": b64e(&k.e().to_bytes_be()),
    })
}

fn rsa_verifying_key(name: &str) -> VerifyingKey {
    key(rsa_jwk_value(rsa_key(name)))
}

const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Signs with the `rsa` crate.
fn rsa_sign(k: &RsaPrivateKey, alg: Algorithm, msg: &[u8]) -> Vec<u8> {
    use ::rsa::sha2::{Sha256, Sha384, Sha512};
    use ::rsa::{pkcs1v15, pss};
    let mut rng = rand::thread_rng();
    let k = k.clone();
    match alg {
        Algorithm::RS256 => pkcs1v15::SigningKey::<Sha256>::new(k).sign(msg).to_vec(),
        Algorithm::RS384 => pkcs1v15::SigningKey::<Sha384>::new(k).sign(msg).to_vec(),
        Algorithm::RS512 => pkcs1v15::SigningKey::<Sha512>::new(k).sign(msg).to_vec(),
        Algorithm::PS256 => pss::BlindedSigningKey::<Sha256>::new(k)
            .sign_with_rng(&mut rng, msg)
            .to_vec(),
        Algorithm::PS384 => pss::BlindedSigningKey::<Sha384>::new(k)
            .sign_with_rng(&mut rng, msg)
            .to_vec(),
        Algorithm::PS512 => pss::BlindedSigningKey::<Sha512>::new(k)
            .sign_with_rng(&mut rng, msg)
            .to_vec(),
        other => panic!("{other} is not RSA"),
    }
}

/// Verifies with the `rsa` crate (the reference for the agreement test).
fn rsa_crate_verify(k: &RsaPrivateKey, alg: Algorithm, msg: &[u8], sig: &[u8]) -> bool {
    use ::rsa::sha2::Sha256;
    use ::rsa::{pkcs1v15, pss};
    let public = k.to_public_key();
    match alg {
        Algorithm::RS256 => pkcs1v15::Signature::try_from(sig).is_ok_and(|s| {
            pkcs1v15::VerifyingKey::<Sha256>::new(public)
                .verify(msg, &s)
                .is_ok()
        }),
        Algorithm::PS256 => pss::Signature::try_from(sig).is_ok_and(|s| {
            pss::VerifyingKey::<Sha256>::new(public)
                .verify(msg, &s)
                .is_ok()
        }),
        other => panic!("reference not wired for {other}"),
    }
}

/// Raw RSA private operation on an arbitrary encoded block (to forge malformed paddings).
fn rsa_raw_sign(k: &RsaPrivateKey, em: &[u8]) -> Vec<u8> {
    let m = BigUint::from_bytes_be(em);
    let s = m.modpow(k.d(), k.n());
    let mut out = s.to_bytes_be();
    let size = k.size();
    while out.len() < size {
        out.insert(0, 0);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Base64url

#[test]
fn b64_accepts_unpadded_and_padded() {
    assert_eq!(b64::decode("").unwrap(), b"");
    assert_eq!(b64::decode("QQ").unwrap(), b"A");
    assert_eq!(b64::decode("QQ==").unwrap(), b"A");
    assert_eq!(b64::decode("QUI").unwrap(), b"AB");
    assert_eq!(b64::decode("QUI=").unwrap(), b"AB");
    assert_eq!(b64::decode("QUJD").unwrap(), b"ABC");
    assert_eq!(b64::decode("AQAB").unwrap(), [1, 0, 1]);
    assert_eq!(b64::decode("-_-_").unwrap(), [0xfb, 0xff, 0xbf]);
    let mut rng = Rng(7);
    for len in 0..70 {
        let data = rng.bytes(len);
        assert_eq!(b64::decode(&b64e(&data)).unwrap(), data);
    }
}

#[test]
fn b64_rejects_malformed() {
    for bad in [
        "Q",      // impossible length
        "QQQQQ",  // impossible length
        "QR",     // non-canonical: unused bits set
        "QUJ",    // non-canonical
        "+/8=",   // standard alphabet
        "QU I",   // whitespace
        "QUI\n",  // newline
        "QQ=",    // short padding
        "QQ===",  // too much padding
        "Q===",   // padding where a symbol is needed
        "QQ==QQ", // padding in the middle
        "=QQ=",   // leading padding
        "QUJD=",  // padding after a full group
        "QUJD====", "Q.Q", "QUé",
    ] {
        assert!(b64::decode(bad).is_err(), "{bad:?} should be rejected");
    }
}

// ---------------------------------------------------------------------------------------------
// Montgomery arithmetic against num-bigint

fn check_pow<L: Limb>(n_be: &[u8], base_seed: u64, exponents: &[u64]) {
    let m = Modulus::<L>::new(n_be).expect("odd modulus");
    let n_big = BigUint::from_bytes_be(n_be);
    let l = m.len();
    let mut rng = Rng(base_seed);
    let mut bases: Vec<BigUint> = (0..6)
        .map(|_| BigUint::from_bytes_be(&rng.bytes(n_be.len())) % &n_big)
        .collect();
    bases.push(BigUint::from(0u32));
    bases.push(BigUint::from(1u32));
    bases.push(&n_big - 1u32);
    for base in &bases {
        let mut s = vec![L::ZERO; l];
        montgomery::limbs_from_be(&base.to_bytes_be(), &mut s).unwrap();
        assert!(m.is_reduced(&s));
        for &e in exponents {
            let mut out = vec![L::ZERO; l];
            m.pow_odd(&s, e, &mut out);
            let mut out_be = vec![0u8; m.byte_len()];
            montgomery::limbs_to_be(&out, &mut out_be).unwrap();
            let expected = base.modpow(&BigUint::from(e), &n_big);
            assert_eq!(
                BigUint::from_bytes_be(&out_be),
                expected,
                "n={n_big:x} base={base:x} e={e}"
            );
        }
    }
}

fn montgomery_pow_matches_bignum_for<L: Limb>() {
    let mut rng = Rng(0x1234_5678);
    let exponents = [
        3,
        5,
        17,
        65537,
        0x1_0000_0001,
        0x1_ffff_ffff,
        0xdead_beef | 1,
    ];
    // Random odd moduli of many sizes, including non-multiples of the limb size and one limb.
    for bytes in [
        1usize, 3, 4, 5, 8, 9, 13, 32, 33, 64, 127, 128, 256, 257, 384,
    ] {
        let mut n = rng.bytes(bytes);
        n[0] |= 0x80;
        if bytes == 1 {
            n[0] |= 0x02; // at least 2 bits
        }
        *n.last_mut().unwrap() |= 1;
        check_pow::<L>(&n, rng.next(), &exponents);
    }
    // Carry-heavy shapes: all ones, 2^k + 1, top limbs all ones over zeros.
    check_pow::<L>(&[0xff; 256], 1, &[3, 65537]);
    let mut p = vec![0u8; 256];
    p[0] = 0x80;
    p[255] = 1;
    check_pow::<L>(&p, 2, &[3, 65537]);
    let mut q = vec![0u8; 256];
    q[..8].copy_from_slice(&[0xff; 8]);
    q[255] = 1;
    check_pow::<L>(&q, 3, &[3, 65537]);
}

#[test]
fn montgomery_pow_matches_bignum_u32() {
    montgomery_pow_matches_bignum_for::<u32>();
}

#[test]
fn montgomery_pow_matches_bignum_u64() {
    montgomery_pow_matches_bignum_for::<u64>();
}

fn montgomery_refuses_bad_moduli_for<L: Limb>() {
    assert!(Modulus::<L>::new(&[]).is_none());
    assert!(Modulus::<L>::new(&[0, 0]).is_none());
    assert!(Modulus::<L>::new(&[1]).is_none()); // 1 bit
    assert!(Modulus::<L>::new(&[0x80, 0x00]).is_none()); // even
    assert!(Modulus::<L>::new(&[0xff; 1025]).is_none()); // > 8192 bits
    assert!(Modulus::<L>::new(&[0xff; 1024]).is_some()); // 8192 bits
    assert!(Modulus::<L>::new(&[0, 0, 3]).is_some()); // leading zeros are fine
}

#[test]
fn montgomery_refuses_bad_moduli() {
    montgomery_refuses_bad_moduli_for::<u32>();
    montgomery_refuses_bad_moduli_for::<u64>();
}

#[test]
fn limb_conversions_round_trip() {
    let bytes = [1u8, 2, 3, 4, 5, 6, 7];
    let mut limbs = [0u32; 2];
    montgomery::limbs_from_be(&bytes, &mut limbs).unwrap();
    assert_eq!(limbs, [0x0405_0607, 0x0001_0203]);
    let mut out = [0u8; 7];
    montgomery::limbs_to_be(&limbs, &mut out).unwrap();
    assert_eq!(out, bytes);
    let mut wide = [0u8; 10];
    montgomery::limbs_to_be(&limbs, &mut wide).unwrap();
    assert_eq!(wide, [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]);
    let mut narrow = [0u8; 6];
    assert!(montgomery::limbs_to_be(&limbs, &mut narrow).is_none());
    assert!(montgomery::limbs_from_be(&[0u8; 9], &mut limbs).is_none());

    let mut limbs64 = [0u64; 2];
    montgomery::limbs_from_be(&bytes, &mut limbs64).unwrap();
    assert_eq!(limbs64, [0x0001_0203_0405_0607, 0]);
    let mut out = [0u8; 7];
    montgomery::limbs_to_be(&limbs64, &mut out).unwrap();
    assert_eq!(out, bytes);
    assert!(montgomery::limbs_to_be(&limbs64, &mut [0u8; 6]).is_none());
    assert!(montgomery::limbs_from_be(&[1u8; 17], &mut limbs64).is_none());
}

/// The wasm32 build uses `u32` limbs, the host `u64`: run real signatures through both.
#[test]
fn rsa_verifies_with_both_limb_widths() {
    let msg = b"limb widths";
    for name in ["rsa2048", "rsa2049", "rsa3072"] {
        let k = rsa_key(name);
        let (n, e) = (k.n().to_bytes_be(), k.e().to_bytes_be());
        let k32 = super::rsa::RsaPublicKey::<u32>::new(&n, &e).unwrap();
        let k64 = super::rsa::RsaPublicKey::<u64>::new(&n, &e).unwrap();
        for alg in RSA_ALGS {
            let (padding, hash) = alg.rsa_params().unwrap();
            let sig = rsa_sign(k, alg, msg);
            assert_eq!(k32.verify(padding, hash, msg, &sig), Ok(()), "{name} {alg}");
            assert_eq!(k64.verify(padding, hash, msg, &sig), Ok(()), "{name} {alg}");
            let bad = flip_bit(&sig, 9);
            assert_eq!(
                k32.verify(padding, hash, msg, &bad),
                Err(SignatureError::Invalid)
            );
            assert_eq!(
                k64.verify(padding, hash, msg, &bad),
                Err(SignatureError::Invalid)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RSA

#[test]
fn rsa_2048_all_algorithms_verify_and_reject_tampering() {
    let k = rsa_key("rsa2048");
    let vk = rsa_verifying_key("rsa2048");
    let other = rsa_verifying_key("rsa2048b");
    assert_eq!(vk.kid(), Some("rsa-test"));
    let msg = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9";
    for alg in RSA_ALGS {
        let sig = rsa_sign(k, alg, msg);
        assert_eq!(vk.verify(alg, msg, &sig), Ok(()), "{alg}");
        // Tampered signature (several bit positions) and message.
        for bit in [0, 7, 100, 1000, 2047] {
            assert_eq!(
                vk.verify(alg, msg, &flip_bit(&sig, bit)),
                Err(SignatureError::Invalid),
                "{alg} sig bit {bit}"
            );
        }
        assert_eq!(
            vk.verify(alg, &flip_bit(msg, 3), &sig),
            Err(SignatureError::Invalid),
            "{alg}"
        );
        assert_eq!(vk.verify(alg, b"", &sig), Err(SignatureError::Invalid));
        // Wrong key.
        assert_eq!(other.verify(alg, msg, &sig), Err(SignatureError::Invalid));
        // Wrong length, even if only by a leading zero byte.
        assert_eq!(
            vk.verify(alg, msg, &sig[1..]),
            Err(SignatureError::BadLength)
        );
        let mut longer = vec![0u8];
        longer.extend_from_slice(&sig);
        assert_eq!(vk.verify(alg, msg, &longer), Err(SignatureError::BadLength));
        assert_eq!(vk.verify(alg, msg, &[]), Err(SignatureError::BadLength));
    }
    // A PKCS#1 v1.5 signature is not a PSS signature and vice versa, and the hash matters.
    let rs256 = rsa_sign(k, Algorithm::RS256, msg);
    let ps256 = rsa_sign(k, Algorithm::PS256, msg);
    assert_eq!(
        vk.verify(Algorithm::PS256, msg, &rs256),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        vk.verify(Algorithm::RS256, msg, &ps256),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        vk.verify(Algorithm::RS384, msg, &rs256),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        vk.verify(Algorithm::PS512, msg, &ps256),
        Err(SignatureError::Invalid)
    );
}

#[test]
fn rsa_larger_and_odd_sized_keys_verify() {
    // 2049 bits: PSS emLen = k - 1 (leading zero byte); 2056: modBits ≡ 0 mod 8.
    for name in ["rsa2049", "rsa2056", "rsa3072", "rsa4096"] {
        let k = rsa_key(name);
        let vk = rsa_verifying_key(name);
        let msg = format!("message for {name}");
        for alg in RSA_ALGS {
            let sig = rsa_sign(k, alg, msg.as_bytes());
            assert_eq!(vk.verify(alg, msg.as_bytes(), &sig), Ok(()), "{name} {alg}");
            assert_eq!(
                vk.verify(alg, msg.as_bytes(), &flip_bit(&sig, 17)),
                Err(SignatureError::Invalid),
                "{name} {alg}"
            );
        }
    }
    assert!(format!("{:?}", rsa_verifying_key("rsa4096")).contains("RSA-4096"));
}

#[test]
fn rsa_agrees_with_rsa_crate_on_random_messages() {
    let k = rsa_key("rsa2048");
    let vk = rsa_verifying_key("rsa2048");
    let mut rng = Rng(0xfeed_f00d);
    for round in 0..50 {
        let len = rng.below(300);
        let msg = rng.bytes(len);
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let sig = rsa_sign(k, alg, &msg);
            let cases = [
                (msg.clone(), sig.clone()),
                (msg.clone(), flip_bit(&sig, rng.below(sig.len() * 8))),
                (
                    if msg.is_empty() {
                        vec![0]
                    } else {
                        flip_bit(&msg, rng.below(msg.len() * 8))
                    },
                    sig.clone(),
                ),
                (msg.clone(), rng.bytes(sig.len())),
            ];
            for (i, (m, s)) in cases.iter().enumerate() {
                let ours = vk.verify(alg, m, s).is_ok();
                let theirs = rsa_crate_verify(k, alg, m, s);
                assert_eq!(ours, theirs, "round {round} {alg} case {i}");
                assert_eq!(ours, i == 0, "round {round} {alg} case {i}");
            }
        }
    }
}

#[test]
fn rsa_pss_requires_salt_length_equal_to_hash_length() {
    use ::rsa::pss;
    use ::rsa::sha2::Sha256;
    let k = rsa_key("rsa2048");
    let vk = rsa_verifying_key("rsa2048");
    let msg = b"salted";
    let mut rng = rand::thread_rng();
    for salt_len in [0usize, 20, 33] {
        let sig = pss::BlindedSigningKey::<Sha256>::new_with_salt_len(k.clone(), salt_len)
            .sign_with_rng(&mut rng, msg)
            .to_vec();
        assert_eq!(
            vk.verify(Algorithm::PS256, msg, &sig),
            Err(SignatureError::Invalid),
            "salt length {salt_len}"
        );
    }
}

/// PKCS#1 v1.5 blocks that a lenient parser might accept must all be refused: we compare against
/// the one expected encoding.
#[test]
fn rsa_pkcs1v15_refuses_malformed_encodings() {
    use ::rsa::sha2::{Digest, Sha256};
    let k = rsa_key("rsa2048");
    let vk = rsa_verifying_key("rsa2048");
    let size = k.size();
    let msg = b"forge me";
    let hash = Sha256::digest(msg).to_vec();
    let prefix: &[u8] = &[
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let build = |block_type: u8, t: &[u8], trailer: &[u8]| {
        let mut em = vec![0x00, block_type];
        em.resize(size - t.len() - trailer.len() - 1, 0xff);
        em.push(0x00);
        em.extend_from_slice(t);
        em.extend_from_slice(trailer);
        em
    };
    let t: Vec<u8> = [prefix, &hash].concat();
    // Sanity: the correct block, signed raw, verifies.
    let good = rsa_raw_sign(k, &build(0x01, &t, &[]));
    assert_eq!(vk.verify(Algorithm::RS256, msg, &good), Ok(()));

    let mut bad_blocks = vec![
        build(0x02, &t, &[]),           // block type 2
        build(0x00, &t, &[]),           // block type 0
        build(0x01, &t, &[0xde, 0xad]), // garbage after the hash (Bleichenbacher '06)
        build(0x01, &hash, &[]),        // no DigestInfo at all
        build(
            0x01,
            &[&prefix[..15], &prefix[17..], &hash[..]].concat(),
            &[],
        ), // NULL params absent
    ];
    // Wrong OID (SHA-384's) with a SHA-256 hash.
    let mut wrong_oid = prefix.to_vec();
    wrong_oid[14] = 0x02;
    bad_blocks.push(build(0x01, &[&wrong_oid[..], &hash[..]].concat(), &[]));
    // A padding byte that is not 0xFF.
    let mut not_ff = build(0x01, &t, &[]);
    not_ff[5] = 0xfe;
    bad_blocks.push(not_ff);
    // PS shorter than the block (hash extended to fill): separator early.
    let mut early = build(0x01, &t, &[]);
    early[9] = 0x00;
    bad_blocks.push(early);
    for (i, em) in bad_blocks.iter().enumerate() {
        assert_eq!(em.len(), size, "block {i}");
        let sig = rsa_raw_sign(k, em);
        assert_eq!(
            vk.verify(Algorithm::RS256, msg, &sig),
            Err(SignatureError::Invalid),
            "block {i}"
        );
    }
}

#[test]
fn rsa_refuses_signature_not_below_modulus() {
    let k = rsa_key("rsa2048");
    let vk = rsa_verifying_key("rsa2048");
    let n = k.n().to_bytes_be();
    let msg = b"m";
    // s = n, s = n + 1 and s = 2^2048 - 1 are all >= n.
    let mut n_plus_1 = n.clone();
    *n_plus_1.last_mut().unwrap() += 1; // n is odd, so no carry
    for s in [n.clone(), n_plus_1, vec![0xff; n.len()]] {
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            assert_eq!(vk.verify(alg, msg, &s), Err(SignatureError::Invalid));
        }
    }
    // s = 0 and s = 1 are below n but can never match a padding.
    let mut one = vec![0u8; n.len()];
    *one.last_mut().unwrap() = 1;
    for s in [vec![0u8; n.len()], one] {
        assert_eq!(
            vk.verify(Algorithm::RS256, msg, &s),
            Err(SignatureError::Invalid)
        );
    }
}

#[test]
fn rsa_modulus_size_limits() {
    let small = rsa_key("rsa1024");
    assert_eq!(
        key_err(rsa_jwk_value(small)),
        KeyError::RsaModulusTooSmall(1024)
    );
    // Synthetic odd moduli: the size checks do not need real keys.
    let odd = |bytes: usize, top: u8| {
        let mut n = vec![0x5a; bytes];
        n[0] = top;
        *n.last_mut().unwrap() |= 1;
        b64e(&n)
    };
    assert_eq!(
        key_err(json!({"kty": "RSA", "n": odd(256, 0x7f), "e": "AQAB"})),
        KeyError::RsaModulusTooSmall(2047)
    );
    assert_eq!(
        key_err(json!({"kty": "RSA", "n": odd(1025, 0x01), "e": "AQAB"})),
        KeyError::RsaModulusTooLarge(8193)
    );
    let big = key(json!({"kty": "RSA", "n": odd(1024, 0xc1), "e": "AQAB"}));
    assert!(format!("{big:?}").contains("RSA-8192"));
    key(json!({"kty": "RSA", "n": odd(256, 0x80), "e": "AQAB"}));
    // A leading zero byte (some producers add one) does not change the size.
    let mut n = k_n(rsa_key("rsa2048"));
    n.insert(0, 0);
    let vk = key(json!({"kty": "RSA", "n": b64e(&n), "e": "AQAB"}));
    let sig = rsa_sign(rsa_key("rsa2048"), Algorithm::RS256, b"x");
    assert_eq!(vk.verify(Algorithm::RS256, b"x", &sig), Ok(()));
    // Even modulus.
    let mut even = vec![0xc3u8; 256];
    even[255] = 0x02;
    assert_eq!(
        key_err(json!({"kty": "RSA", "n": b64e(&even), "e": "AQAB"})),
        KeyError::InvalidModulus
    );
}

fn k_n(k: &RsaPrivateKey) -> Vec<u8> {
    k.n().to_bytes_be()
}

#[test]
fn rsa_exponent_rules() {
    let n = b64e(&k_n(rsa_key("rsa2048")));
    for e in [
        &[0u8][..],
        &[1],
        &[2],
        &[1, 0, 0],             // 65536, even
        &[0, 1],                // 1 with a leading zero
        &[2, 0, 0, 0, 1],       // 2^33 + 1, too large
        &[1, 0, 0, 0, 0, 0, 1], // far too large
    ] {
        assert_eq!(
            key_err(json!({"kty": "RSA", "n": n, "e": b64e(e)})),
            KeyError::BadExponent,
            "e = {e:?}"
        );
    }
    for e in [&[3u8][..], &[1, 0, 1], &[1, 0xff, 0xff, 0xff, 0xff]] {
        key(json!({"kty": "RSA", "n": n, "e": b64e(e)}));
    }
    // e = 3 really is used as 3 (a signature for e = 65537 does not verify).
    let vk3 = key(json!({"kty": "RSA", "n": n, "e": "Aw"}));
    let sig = rsa_sign(rsa_key("rsa2048"), Algorithm::RS256, b"x");
    assert_eq!(
        vk3.verify(Algorithm::RS256, b"x", &sig),
        Err(SignatureError::Invalid)
    );
}

// Published vector: RFC 7515 Appendix A.2 (RS256).
const RFC7515_PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

#[test]
fn rfc7515_a2_rs256_vector() {
    let vk = key(json!({
        "kty": "RSA",
        "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
        "e": "AQAB",
    }));
    let input = format!("eyJhbGciOiJSUzI1NiJ9.{RFC7515_PAYLOAD}");
    let sig = b64d("cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw");
    assert_eq!(vk.verify(Algorithm::RS256, input.as_bytes(), &sig), Ok(()));
    assert_eq!(
        vk.verify(Algorithm::RS256, &input.as_bytes()[1..], &sig),
        Err(SignatureError::Invalid)
    );
}

// ---------------------------------------------------------------------------------------------
// ECDSA

const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `a - b` for equal-length big-endian numbers, `a >= b`.
fn be_sub(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    out
}

fn p256_signer(seed: u8) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn p256_jwk_value(sk: &p256::ecdsa::SigningKey) -> serde_json::Value {
    let point = sk.verifying_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    json!({"kty": "EC", "crv": "P-256", "x": b64e(&bytes[1..33]), "y": b64e(&bytes[33..65])})
}

fn p384_signer(seed: u8) -> p384::ecdsa::SigningKey {
    p384::ecdsa::SigningKey::from_slice(&[seed; 48]).unwrap()
}

fn p384_jwk_value(sk: &p384::ecdsa::SigningKey) -> serde_json::Value {
    let point = sk.verifying_key().to_sec1_point(false);
    let bytes = point.as_bytes();
    json!({"kty": "EC", "crv": "P-384", "x": b64e(&bytes[1..49]), "y": b64e(&bytes[49..97])})
}

#[test]
fn es256_verifies_and_rejects() {
    use p256::ecdsa::signature::Signer as _;
    let sk = p256_signer(7);
    let vk = key(p256_jwk_value(&sk));
    let other = key(p256_jwk_value(&p256_signer(8)));
    let msg = b"header.payload";
    let sig: p256::ecdsa::Signature = sk.sign(msg);
    let sig = sig.to_bytes().to_vec();
    assert_eq!(sig.len(), 64);
    assert_eq!(vk.verify(Algorithm::ES256, msg, &sig), Ok(()));
    for bit in [0, 255, 256, 511] {
        assert_eq!(
            vk.verify(Algorithm::ES256, msg, &flip_bit(&sig, bit)),
            Err(SignatureError::Invalid)
        );
    }
    assert_eq!(
        vk.verify(Algorithm::ES256, &flip_bit(msg, 0), &sig),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        other.verify(Algorithm::ES256, msg, &sig),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        vk.verify(Algorithm::ES256, msg, &sig[..63]),
        Err(SignatureError::BadLength)
    );
    assert_eq!(
        vk.verify(Algorithm::ES256, msg, &[&sig[..], &[0]].concat()),
        Err(SignatureError::BadLength)
    );
    // DER is not JWS: a DER-encoded signature has the wrong length (70-72 bytes).
    let (r, s) = (&sig[..32], &sig[32..]);
    let mut der_bytes = vec![0x30, 0x44, 0x02, 0x20];
    der_bytes.extend_from_slice(r);
    der_bytes.extend_from_slice(&[0x02, 0x20]);
    der_bytes.extend_from_slice(s);
    assert_eq!(
        vk.verify(Algorithm::ES256, msg, &der_bytes),
        Err(SignatureError::BadLength)
    );
    // High-S (n - s) is a valid ECDSA signature too; JWS does not require low-S.
    let high = [r, &be_sub(&P256_ORDER, s)[..]].concat();
    assert_eq!(vk.verify(Algorithm::ES256, msg, &high), Ok(()));
    // r = 0, s = 0, r = n, s = n, s = n + 1 are out of range.
    let zero = [0u8; 32];
    for bad in [
        [&zero[..], s].concat(),
        [r, &zero[..]].concat(),
        [&P256_ORDER[..], s].concat(),
        [r, &P256_ORDER[..]].concat(),
        [r, &[0xff; 32][..]].concat(),
    ] {
        assert_eq!(
            vk.verify(Algorithm::ES256, msg, &bad),
            Err(SignatureError::Invalid)
        );
    }
}

#[test]
fn es384_verifies_and_rejects() {
    use p384::ecdsa::signature::Signer as _;
    let sk = p384_signer(9);
    let vk = key(p384_jwk_value(&sk));
    let msg = b"header.payload.384";
    let sig: p384::ecdsa::Signature = sk.sign(msg);
    let sig = sig.to_bytes().to_vec();
    assert_eq!(sig.len(), 96);
    assert_eq!(vk.verify(Algorithm::ES384, msg, &sig), Ok(()));
    assert_eq!(
        vk.verify(Algorithm::ES384, msg, &flip_bit(&sig, 400)),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        vk.verify(Algorithm::ES384, b"other", &sig),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        key(p384_jwk_value(&p384_signer(10))).verify(Algorithm::ES384, msg, &sig),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        vk.verify(Algorithm::ES384, msg, &sig[..64]),
        Err(SignatureError::BadLength)
    );
    // ES256 with a P-384 key, and ES384 with a P-256 key.
    assert!(!vk.accepts(Algorithm::ES256));
    assert_eq!(
        vk.verify(Algorithm::ES256, msg, &sig[..64]),
        Err(SignatureError::AlgorithmMismatch)
    );
    let p256 = key(p256_jwk_value(&p256_signer(7)));
    assert_eq!(
        p256.verify(Algorithm::ES384, msg, &sig),
        Err(SignatureError::AlgorithmMismatch)
    );
}

#[test]
fn rfc7515_a3_es256_vector() {
    let vk = key(json!({
        "kty": "EC",
        "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }));
    let input = format!("eyJhbGciOiJFUzI1NiJ9.{RFC7515_PAYLOAD}");
    let sig = b64d(
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q",
    );
    assert_eq!(vk.verify(Algorithm::ES256, input.as_bytes(), &sig), Ok(()));
}

#[test]
fn ec_key_errors() {
    let good = p256_jwk_value(&p256_signer(7));
    let x = good["x"].as_str().unwrap().to_owned();
    let y = good["y"].as_str().unwrap().to_owned();
    // Not on the curve.
    let mut y_bytes = b64d(&y);
    y_bytes[31] ^= 1;
    assert_eq!(
        key_err(json!({"kty": "EC", "crv": "P-256", "x": x, "y": b64e(&y_bytes)})),
        KeyError::InvalidPoint
    );
    assert_eq!(
        key_err(json!({"kty": "EC", "crv": "P-256", "x": b64e(&[0; 32]), "y": b64e(&[0; 32])})),
        KeyError::InvalidPoint
    );
    // Coordinates beyond the field prime.
    assert_eq!(
        key_err(json!({"kty": "EC", "crv": "P-256", "x": b64e(&[0xff; 32]), "y": y})),
        KeyError::InvalidPoint
    );
    // Wrong lengths (a P-256 point offered as P-384, a short coordinate).
    assert_eq!(
        key_err(json!({"kty": "EC", "crv": "P-384", "x": x, "y": y})),
        KeyError::BadLength("x")
    );
    assert_eq!(
        key_err(json!({"kty": "EC", "crv": "P-256", "x": b64e(&b64d(&x)[1..]), "y": y})),
        KeyError::BadLength("x")
    );
    // Missing members.
    assert_eq!(
        key_err(json!({"kty": "EC", "x": x, "y": y})),
        KeyError::MissingParameter("crv")
    );
    assert_eq!(
        key_err(json!({"kty": "EC", "crv": "P-256", "y": y})),
        KeyError::MissingParameter("x")
    );
    assert_eq!(
        key_err(json!({"kty": "EC", "crv": "P-256", "x": x})),
        KeyError::MissingParameter("y")
    );
    // Unsupported curves.
    for crv in ["P-521", "secp256k1", "p-256"] {
        assert_eq!(
            key_err(json!({"kty": "EC", "crv": crv, "x": x, "y": y})),
            KeyError::UnsupportedCurve(crv.to_owned())
        );
    }
    assert_eq!(
        key_err(
            json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE+", "y": y})
        ),
        KeyError::BadBase64("x")
    );
}

// ---------------------------------------------------------------------------------------------
// EdDSA

fn ed_signer(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

fn ed_jwk_value(sk: &ed25519_dalek::SigningKey) -> serde_json::Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": b64e(sk.verifying_key().as_bytes())})
}

#[test]
fn eddsa_verifies_and_rejects() {
    use ed25519_dalek::ed25519::signature::Signer as _;
    let sk = ed_signer(3);
    let vk = key(ed_jwk_value(&sk));
    let msg = b"eyJhbGciOiJFZERTQSJ9.e30";
    let sig = sk.sign(msg).to_bytes();
    assert_eq!(vk.verify(Algorithm::EdDSA, msg, &sig), Ok(()));
    for bit in [0, 255, 256, 500] {
        assert_eq!(
            vk.verify(Algorithm::EdDSA, msg, &flip_bit(&sig, bit)),
            Err(SignatureError::Invalid)
        );
    }
    assert_eq!(
        vk.verify(Algorithm::EdDSA, b"other", &sig),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        key(ed_jwk_value(&ed_signer(4))).verify(Algorithm::EdDSA, msg, &sig),
        Err(SignatureError::Invalid)
    );
    assert_eq!(
        vk.verify(Algorithm::EdDSA, msg, &sig[..63]),
        Err(SignatureError::BadLength)
    );
    // Non-canonical S (S + L) is refused by strict verification.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut s_plus_l = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(s_plus_l[32 + i]) + u16::from(L[i]) + carry;
        s_plus_l[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    assert_eq!(
        vk.verify(Algorithm::EdDSA, msg, &s_plus_l),
        Err(SignatureError::Invalid)
    );
}

#[test]
fn rfc8037_eddsa_vector() {
    let vk = key(
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
    );
    let sig = b64d(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
    );
    let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    assert_eq!(vk.verify(Algorithm::EdDSA, input, &sig), Ok(()));
}

#[test]
fn okp_key_errors() {
    // The identity point (small order) is a weak key.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        key_err(json!({"kty": "OKP", "crv": "Ed25519", "x": b64e(&identity)})),
        KeyError::InvalidPoint
    );
    // An encoding that does not decompress to a point.
    let not_a_point = (2u8..=255)
        .map(|b| {
            let mut x = [0u8; 32];
            x[0] = b;
            x
        })
        .find(|x| ed25519_dalek::VerifyingKey::from_bytes(x).is_err())
        .expect("some y has no x");
    assert_eq!(
        key_err(json!({"kty": "OKP", "crv": "Ed25519", "x": b64e(&not_a_point)})),
        KeyError::InvalidPoint
    );
    assert_eq!(
        key_err(json!({"kty": "OKP", "crv": "Ed25519", "x": b64e(&[9; 31])})),
        KeyError::BadLength("x")
    );
    assert_eq!(
        key_err(json!({"kty": "OKP", "crv": "Ed25519"})),
        KeyError::MissingParameter("x")
    );
    assert_eq!(
        key_err(json!({"kty": "OKP", "x": b64e(&[9; 32])})),
        KeyError::MissingParameter("crv")
    );
    for crv in ["Ed448", "X25519", "X448"] {
        assert_eq!(
            key_err(json!({"kty": "OKP", "crv": crv, "x": b64e(&[9; 32])})),
            KeyError::UnsupportedCurve(crv.to_owned())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// HMAC

fn hmac_tag(alg: Algorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <M as KeyInit>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        Algorithm::HS256 => run::<Hmac<sha2::Sha256>>(key, msg),
        Algorithm::HS384 => run::<Hmac<sha2::Sha384>>(key, msg),
        Algorithm::HS512 => run::<Hmac<sha2::Sha512>>(key, msg),
        other => panic!("{other} is not HMAC"),
    }
}

#[test]
fn hmac_verifies_and_rejects() {
    let secret = Rng(99).bytes(64);
    let vk = key(json!({"kty": "oct", "k": b64e(&secret)}));
    let other = key(json!({"kty": "oct", "k": b64e(&Rng(100).bytes(64))}));
    let msg = b"eyJhbGciOiJIUzI1NiJ9.e30";
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let tag = hmac_tag(alg, &secret, msg);
        assert_eq!(vk.verify(alg, msg, &tag), Ok(()), "{alg}");
        assert_eq!(
            vk.verify(alg, msg, &flip_bit(&tag, 5)),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            vk.verify(alg, &flip_bit(msg, 5), &tag),
            Err(SignatureError::Invalid)
        );
        assert_eq!(other.verify(alg, msg, &tag), Err(SignatureError::Invalid));
        // Truncated or extended tags are refused.
        assert_eq!(
            vk.verify(alg, msg, &tag[..tag.len() - 1]),
            Err(SignatureError::BadLength)
        );
        assert_eq!(
            vk.verify(alg, msg, &tag[..16]),
            Err(SignatureError::BadLength)
        );
        assert_eq!(
            vk.verify(alg, msg, &[&tag[..], &[0]].concat()),
            Err(SignatureError::BadLength)
        );
    }
    // The tag of one HS* is not accepted for another.
    let tag512 = hmac_tag(Algorithm::HS512, &secret, msg);
    assert_eq!(
        vk.verify(Algorithm::HS256, msg, &tag512[..32]),
        Err(SignatureError::Invalid)
    );
}

#[test]
fn rfc7515_a1_hs256_vector() {
    let vk = key(json!({
        "kty": "oct",
        "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    }));
    let input = format!("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{RFC7515_PAYLOAD}");
    let sig = b64d("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_eq!(vk.verify(Algorithm::HS256, input.as_bytes(), &sig), Ok(()));
}

#[test]
fn hmac_key_length_rules() {
    assert_eq!(
        key_err(json!({"kty": "oct", "k": b64e(&[1; 16])})),
        KeyError::HmacKeyTooShort(128)
    );
    assert_eq!(
        key_err(json!({"kty": "oct", "k": b64e(&[1; 32]), "alg": "HS512"})),
        KeyError::HmacKeyTooShort(256)
    );
    assert_eq!(
        key_err(json!({"kty": "oct", "k": ""})),
        KeyError::MissingParameter("k")
    );
    assert_eq!(
        key_err(json!({"kty": "oct"})),
        KeyError::MissingParameter("k")
    );
    // A 32-byte key serves HS256 only; a 48-byte key HS256 and HS384.
    let k32 = key(json!({"kty": "oct", "k": b64e(&[1; 32])}));
    assert!(k32.accepts(Algorithm::HS256));
    assert!(!k32.accepts(Algorithm::HS384));
    assert!(!k32.accepts(Algorithm::HS512));
    let tag = hmac_tag(Algorithm::HS384, &[1; 32], b"m");
    assert_eq!(
        k32.verify(Algorithm::HS384, b"m", &tag),
        Err(SignatureError::AlgorithmMismatch)
    );
    let k48 = key(json!({"kty": "oct", "k": b64e(&[1; 48])}));
    assert!(k48.accepts(Algorithm::HS384));
    assert!(!k48.accepts(Algorithm::HS512));
}

// ---------------------------------------------------------------------------------------------
// JWK-level rules

#[test]
fn key_type_and_algorithm_matrix() {
    let rsa = rsa_verifying_key("rsa2048");
    let p256 = key(p256_jwk_value(&p256_signer(7)));
    let p384 = key(p384_jwk_value(&p384_signer(9)));
    let ed = key(ed_jwk_value(&ed_signer(3)));
    let oct = key(json!({"kty": "oct", "k": b64e(&[5; 64])}));
    for alg in Algorithm::ALL {
        let name = alg.name();
        assert_eq!(
            rsa.accepts(alg),
            name.starts_with("RS") || name.starts_with("PS"),
            "{alg}"
        );
        assert_eq!(p256.accepts(alg), alg == Algorithm::ES256, "{alg}");
        assert_eq!(p384.accepts(alg), alg == Algorithm::ES384, "{alg}");
        assert_eq!(ed.accepts(alg), alg == Algorithm::EdDSA, "{alg}");
        assert_eq!(oct.accepts(alg), alg.is_hmac(), "{alg}");
    }
    // HS256 with an RSA key: refused before any MAC is computed (the classic key-confusion
    // attack uses the RSA public key bytes as the HMAC secret).
    assert_eq!(
        rsa.verify(Algorithm::HS256, b"m", &[0; 32]),
        Err(SignatureError::AlgorithmMismatch)
    );
    assert_eq!(
        oct.verify(Algorithm::RS256, b"m", &[0; 256]),
        Err(SignatureError::AlgorithmMismatch)
    );
    assert_eq!(
        ed.verify(Algorithm::ES256, b"m", &[0; 64]),
        Err(SignatureError::AlgorithmMismatch)
    );
}

#[test]
fn jwk_alg_pins_the_algorithm() {
    let k = rsa_key("rsa2048");
    let mut v = rsa_jwk_value(k);
    v["alg"] = json!("RS256");
    let vk = key(v.clone());
    assert_eq!(vk.algorithm(), Some(Algorithm::RS256));
    assert!(vk.accepts(Algorithm::RS256));
    for alg in Algorithm::ALL {
        assert_eq!(vk.accepts(alg), alg == Algorithm::RS256, "{alg}");
    }
    let msg = b"pinned";
    let ps = rsa_sign(k, Algorithm::PS256, msg);
    assert_eq!(
        vk.verify(Algorithm::PS256, msg, &ps),
        Err(SignatureError::AlgorithmMismatch)
    );
    let rs = rsa_sign(k, Algorithm::RS256, msg);
    assert_eq!(vk.verify(Algorithm::RS256, msg, &rs), Ok(()));

    // An alg that does not fit the key type is refused at load.
    v["alg"] = json!("ES256");
    assert_eq!(
        key_err(v.clone()),
        KeyError::AlgorithmMismatch {
            alg: "ES256",
            kty: "RSA".to_owned()
        }
    );
    v["alg"] = json!("HS256");
    assert!(matches!(
        key_err(v.clone()),
        KeyError::AlgorithmMismatch { .. }
    ));
    // Unknown algs, `none` and encryption algs are refused.
    for alg in ["none", "None", "rs256", "RSA-OAEP", "ES512", "Ed25519", ""] {
        v["alg"] = json!(alg);
        assert_eq!(key_err(v.clone()), KeyError::UnknownAlg(alg.to_owned()));
    }
    let mut p = p384_jwk_value(&p384_signer(9));
    p["alg"] = json!("ES256");
    assert!(matches!(key_err(p), KeyError::AlgorithmMismatch { .. }));
}

#[test]
fn jwk_use_must_be_sig() {
    let mut v = rsa_jwk_value(rsa_key("rsa2048"));
    v["use"] = json!("sig");
    key(v.clone());
    v["use"] = json!("enc");
    assert_eq!(key_err(v.clone()), KeyError::WrongUse("enc".to_owned()));
    // A typical encryption key in an IdP's JWKS is refused for its use, not its alg.
    v["alg"] = json!("RSA-OAEP");
    assert_eq!(key_err(v.clone()), KeyError::WrongUse("enc".to_owned()));
    v["use"] = json!("");
    v["alg"] = json!("RS256");
    assert_eq!(key_err(v), KeyError::WrongUse(String::new()));
}

#[test]
fn jwk_type_and_parameter_errors() {
    assert_eq!(
        key_err(json!({"kty": "DSA"})),
        KeyError::UnsupportedKeyType("DSA".to_owned())
    );
    assert_eq!(
        key_err(json!({"kty": "rsa", "n": "AQAB", "e": "AQAB"})),
        KeyError::UnsupportedKeyType("rsa".to_owned())
    );
    assert!(serde_json::from_value::<Jwk>(json!({"n": "AQAB"})).is_err()); // kty required
    let n = b64e(&k_n(rsa_key("rsa2048")));
    assert_eq!(
        key_err(json!({"kty": "RSA", "e": "AQAB"})),
        KeyError::MissingParameter("n")
    );
    assert_eq!(
        key_err(json!({"kty": "RSA", "n": n})),
        KeyError::MissingParameter("e")
    );
    assert_eq!(
        key_err(json!({"kty": "RSA", "n": n, "e": ""})),
        KeyError::MissingParameter("e")
    );
    assert_eq!(
        key_err(json!({"kty": "RSA", "n": format!("{n}+"), "e": "AQAB"})),
        KeyError::BadBase64("n")
    );
    assert_eq!(
        key_err(json!({"kty": "RSA", "n": n, "e": "AQ AB"})),
        KeyError::BadBase64("e")
    );
    assert_eq!(
        key_err(json!({"kty": "oct", "k": "c2VjcmV0/c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"})),
        KeyError::BadBase64("k")
    );
    // Padded base64url is tolerated.
    key(json!({"kty": "RSA", "n": n, "e": "AQAB", "kid": "padded"}));
    key(
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}),
    );
}

#[test]
fn unsupported_versus_malformed() {
    for unsupported in [
        json!({"kty": "DSA"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
        json!({"kty": "OKP", "crv": "Ed448", "x": "AA"}),
        json!({"kty": "RSA", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"}),
        json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}),
    ] {
        assert!(
            key_err(unsupported.clone()).is_unsupported(),
            "{unsupported}"
        );
    }
    for malformed in [
        json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}), // too small
        json!({"kty": "RSA", "e": "AQAB"}),
        json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
        json!({"kty": "oct", "k": "c2hvcnQ"}),
        json!({"kty": "RSA", "alg": "ES256", "n": b64e(&k_n(rsa_key("rsa2048"))), "e": "AQAB"}),
    ] {
        assert!(!key_err(malformed.clone()).is_unsupported(), "{malformed}");
    }
}

#[test]
fn jwks_ignores_unknown_members() {
    let doc = json!({
        "keys": [
            {
                "kty": "RSA",
                "kid": "2011-04-29",
                "use": "sig",
                "alg": "RS256",
                "n": "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",
                "e": "AQAB",
                "x5c": ["MIIC..."],
                "x5t": "abc",
                "x5t#S256": "def",
                "key_ops": ["verify"],
                "ext": true,
            },
            {"kty": "EC", "crv": "P-256", "use": "enc", "alg": "ECDH-ES",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        ],
        "extra": "ignored",
    });
    let jwks: Jwks = serde_json::from_value(doc).unwrap();
    assert_eq!(jwks.keys.len(), 2);
    let k0 = VerifyingKey::from_jwk(&jwks.keys[0]).unwrap();
    assert_eq!(k0.kid(), Some("2011-04-29"));
    assert_eq!(k0.algorithm(), Some(Algorithm::RS256));
    assert_eq!(
        VerifyingKey::from_jwk(&jwks.keys[1]).unwrap_err(),
        KeyError::WrongUse("enc".to_owned())
    );
    // Round trip through Serialize keeps what we use.
    let again: Jwks = serde_json::from_str(&serde_json::to_string(&jwks).unwrap()).unwrap();
    assert_eq!(again.keys[0].n, jwks.keys[0].n);
    assert_eq!(again.keys[1].use_.as_deref(), Some("enc"));
}

#[test]
fn debug_never_shows_hmac_secret() {
    let secret_b64 =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    let j = jwk(json!({"kty": "oct", "kid": "hs", "k": secret_b64}));
    let jwk_debug = format!("{j:?}");
    assert!(!jwk_debug.contains(secret_b64), "{jwk_debug}");
    assert!(!jwk_debug.contains("AyM1"), "{jwk_debug}");
    assert!(jwk_debug.contains("<redacted>"), "{jwk_debug}");
    let jwks = Jwks {
        keys: vec![j.clone()],
    };
    assert!(!format!("{jwks:?}").contains("AyM1"));
    assert!(!format!("{jwks:#?}").contains("AyM1"));

    let vk = VerifyingKey::from_jwk(&j).unwrap();
    let secret = b64d(secret_b64);
    for text in [format!("{vk:?}"), format!("{vk:#?}")] {
        assert!(!text.contains("AyM1"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        // Nor the raw bytes in any common rendering.
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex[..16]), "{text}");
        assert!(!text.contains(&format!("{}, {}, {}", secret[0], secret[1], secret[2])));
    }
    // A JWK without k prints `k: None`.
    assert!(format!("{:?}", jwk(json!({"kty": "RSA"}))).contains("k: None"));
}

#[test]
fn algorithm_names() {
    for alg in Algorithm::ALL {
        assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        assert_eq!(alg.to_string(), alg.name());
        assert_eq!(alg.is_hmac(), alg.name().starts_with("HS"));
    }
    for name in ["none", "NONE", "", "rs256", "RS256 ", "ES512", "PS", "HS1"] {
        assert_eq!(Algorithm::from_name(name), None, "{name:?}");
    }
}
