//! Fixed-width Montgomery arithmetic for RSA public-key operations.
//!
//! Numbers are little-endian `u32` limbs; products go through `u64`, which wasm32 multiplies
//! natively (it has no 64×64→128 multiply, so `u64` limbs would be slower there). Everything
//! a verification needs from the modulus (limbs, `-n⁻¹ mod 2³²`, `R² mod n`) is computed once when
//! the key is loaded; a verification then allocates nothing.
//!
//! Public-key operations handle public data only, so nothing here tries to be constant-time.

/// Largest supported modulus, in limbs (8192 bits).
pub(crate) const MAX_LIMBS: usize = 256;

/// An odd modulus prepared for Montgomery multiplication with `R = 2^(32·len)`.
#[derive(Clone)]
pub(crate) struct Modulus {
    /// Little-endian limbs; the top limb is non-zero.
    n: Box<[u32]>,
    /// `-n⁻¹ mod 2³²`.
    n0inv: u32,
    /// `R² mod n`, used to enter Montgomery form.
    rr: Box<[u32]>,
    /// Bit length of `n`.
    bits: usize,
}

/// Scratch buffer big enough for any supported modulus.
type Limbs = [u32; MAX_LIMBS];

impl Modulus {
    /// Prepares a big-endian modulus. `None` unless it is odd, has at most [`MAX_LIMBS`] limbs and
    /// is greater than 1. Leading zero bytes are allowed.
    pub(crate) fn new(n_be: &[u8]) -> Option<Modulus> {
        let first = n_be.iter().position(|&b| b != 0)?;
        let n_be = &n_be[first..];
        let len = n_be.len().div_ceil(4);
        if len > MAX_LIMBS || n_be.last().is_none_or(|&b| b & 1 == 0) {
            return None;
        }
        let mut n = vec![0u32; len];
        limbs_from_be(n_be, &mut n)?;
        let top = *n.last()?;
        let bits = 32 * len - top.leading_zeros() as usize;
        if bits < 2 {
            return None;
        }
        // Newton iteration for n0⁻¹ mod 2³²: each step doubles the number of correct low bits,
        // starting from 1 correct bit (n0 is odd): 1, 2, 4, 8, 16, 32.
        let n0 = n[0];
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let mut m = Modulus {
            n: n.into_boxed_slice(),
            n0inv: inv.wrapping_neg(),
            rr: Box::new([]),
            bits,
        };
        m.rr = m.compute_rr().into_boxed_slice();
        Some(m)
    }

    /// Number of limbs.
    pub(crate) fn len(&self) -> usize {
        self.n.len()
    }

    /// Bit length of the modulus.
    pub(crate) fn bits(&self) -> usize {
        self.bits
    }

    /// Byte length of the modulus (`k` in RFC 8017).
    pub(crate) fn byte_len(&self) -> usize {
        self.bits.div_ceil(8)
    }

    /// `R² mod n`: start from `2^(bits-1)` (< n), double modulo n until reaching
    /// `R·2^len mod n` — the Montgomery form of `2^len` — then square five times in Montgomery
    /// form: `(2^len)^(2⁵) = 2^(32·len) = R`, whose Montgomery form is `R² mod n`.
    fn compute_rr(&self) -> Vec<u32> {
        let l = self.len();
        let mut x = vec![0u32; l];
        let top = self.bits - 1;
        x[top / 32] = 1 << (top % 32);
        for _ in 0..(32 * l - top + l) {
            self.double_mod(&mut x);
        }
        let mut y = vec![0u32; l];
        for _ in 0..5 {
            self.mont_sqr(&mut y, &x);
            core::mem::swap(&mut x, &mut y);
        }
        x
    }

    /// `x = 2x mod n` for `x < n`.
    fn double_mod(&self, x: &mut [u32]) {
        let mut carry = 0u32;
        for limb in x.iter_mut() {
            let next = *limb >> 31;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        if carry != 0 || !lt(x, &self.n) {
            sub_in_place(x, &self.n);
        }
    }

    /// Whether `a < n`.
    pub(crate) fn is_reduced(&self, a: &[u32]) -> bool {
        lt(a, &self.n)
    }

    /// Montgomery product `out = a·b·R⁻¹ mod n`, for `a, b < n` (coarsely integrated operand
    /// scanning with the two carry chains fused into one loop).
    fn mont_mul(&self, out: &mut [u32], a: &[u32], b: &[u32]) {
        let l = self.len();
        let n = &self.n[..l];
        let a = &a[..l];
        let b = &b[..l];
        let mut t_buf = [0u32; MAX_LIMBS + 1];
        let t = &mut t_buf[..l + 1];
        let n0inv = u64::from(self.n0inv);
        for &bi in b {
            let bi = u64::from(bi);
            let x = u64::from(t[0]) + u64::from(a[0]) * bi;
            let m = u64::from((x as u32).wrapping_mul(n0inv as u32));
            let y = u64::from(x as u32) + m * u64::from(n[0]);
            let mut c1 = x >> 32;
            let mut c2 = y >> 32;
            for j in 1..l {
                let x = u64::from(t[j]) + u64::from(a[j]) * bi + c1;
                c1 = x >> 32;
                let y = (x & 0xffff_ffff) + m * u64::from(n[j]) + c2;
                c2 = y >> 32;
                t[j - 1] = y as u32;
            }
            let x = u64::from(t[l]) + c1 + c2;
            t[l - 1] = x as u32;
            t[l] = (x >> 32) as u32;
        }
        self.final_reduce(out, &t[..l], t[l]);
    }

    /// Montgomery square `out = a²·R⁻¹ mod n`, for `a < n`: the full square computes each cross
    /// product once, then a separate Montgomery reduction (about 1.5·l² multiplications instead of
    /// 2·l²).
    fn mont_sqr(&self, out: &mut [u32], a: &[u32]) {
        let l = self.len();
        let n = &self.n[..l];
        let a = &a[..l];
        let mut p_buf = [0u32; 2 * MAX_LIMBS];
        let p = &mut p_buf[..2 * l];

        // Cross products a[i]·a[j], i < j.
        for i in 0..l {
            let ai = u64::from(a[i]);
            let mut c = 0u64;
            for (pj, &aj) in p[2 * i + 1..i + l].iter_mut().zip(&a[i + 1..]) {
                let x = u64::from(*pj) + ai * u64::from(aj) + c;
                *pj = x as u32;
                c = x >> 32;
            }
            p[i + l] = c as u32;
        }
        // Double them and add the squares a[i]².
        let mut shift_carry = 0u32;
        let mut c = 0u64;
        for i in 0..l {
            let lo = p[2 * i];
            let hi = p[2 * i + 1];
            let lo2 = (lo << 1) | shift_carry;
            let hi2 = (hi << 1) | (lo >> 31);
            shift_carry = hi >> 31;
            let sq = u64::from(a[i]) * u64::from(a[i]);
            let x = u64::from(lo2) + (sq & 0xffff_ffff) + c;
            p[2 * i] = x as u32;
            let y = u64::from(hi2) + (sq >> 32) + (x >> 32);
            p[2 * i + 1] = y as u32;
            c = y >> 32;
        }
        // a < n < 2^(32l), so a² < 2^(64l): no carry out of the top limb.

        // Montgomery reduction: clear the low l limbs one at a time.
        let n0inv = self.n0inv;
        let mut top = 0u64;
        for i in 0..l {
            let m = u64::from(p[i].wrapping_mul(n0inv));
            let mut c = 0u64;
            for (pj, &nj) in p[i..i + l].iter_mut().zip(n) {
                let x = u64::from(*pj) + m * u64::from(nj) + c;
                *pj = x as u32;
                c = x >> 32;
            }
            let x = u64::from(p[i + l]) + c + top;
            p[i + l] = x as u32;
            top = x >> 32;
        }
        self.final_reduce(out, &p[l..2 * l], top as u32);
    }

    /// `out = t mod n` for `t + top·R < 2n`.
    fn final_reduce(&self, out: &mut [u32], t: &[u32], top: u32) {
        let out = &mut out[..t.len()];
        out.copy_from_slice(t);
        if top != 0 || !lt(out, &self.n) {
            sub_in_place(out, &self.n);
        }
    }

    /// `out = s^e mod n` for `s < n` and odd `e >= 3`, left-to-right square-and-multiply in
    /// Montgomery form. The final multiply (for the always-set low bit of `e`) uses `s` itself
    /// rather than its Montgomery form, which leaves Montgomery form for free.
    pub(crate) fn pow_odd(&self, s: &[u32], e: u64, out: &mut [u32]) {
        let l = self.len();
        let mut a_buf: Limbs = [0; MAX_LIMBS];
        let mut x_buf: Limbs = [0; MAX_LIMBS];
        let mut y_buf: Limbs = [0; MAX_LIMBS];
        let a = &mut a_buf[..l];
        self.mont_mul(a, s, &self.rr); // a = s·R mod n
        let mut acc = &mut x_buf[..l];
        let mut tmp = &mut y_buf[..l];
        acc.copy_from_slice(a);
        let top_bit = 63 - e.leading_zeros();
        for i in (0..top_bit).rev() {
            self.mont_sqr(tmp, acc);
            core::mem::swap(&mut acc, &mut tmp);
            if i == 0 {
                // e is odd: acc·s·R⁻¹ = s^(e-1)·R·s·R⁻¹ = s^e, out of Montgomery form.
                self.mont_mul(out, acc, s);
                return;
            }
            if (e >> i) & 1 == 1 {
                self.mont_mul(tmp, acc, a);
                core::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Only reached for e = 1, which callers refuse; stay total anyway.
        out[..l].copy_from_slice(s);
    }
}

/// Big-endian bytes into little-endian limbs filling `out`; `None` if they do not fit.
pub(crate) fn limbs_from_be(bytes: &[u8], out: &mut [u32]) -> Option<()> {
    if bytes.len() > 4 * out.len() {
        return None;
    }
    out.fill(0);
    for (i, &b) in bytes.iter().rev().enumerate() {
        out[i / 4] |= u32::from(b) << (8 * (i % 4));
    }
    Some(())
}

/// Little-endian limbs into exactly `out.len()` big-endian bytes; `None` if the value does not
/// fit.
pub(crate) fn limbs_to_be(limbs: &[u32], out: &mut [u8]) -> Option<()> {
    let k = out.len();
    for (i, limb) in limbs.iter().enumerate() {
        for (byte_idx, byte) in limb.to_le_bytes().into_iter().enumerate() {
            let pos = 4 * i + byte_idx; // position from the least significant end
            if pos < k {
                out[k - 1 - pos] = byte;
            } else if byte != 0 {
                return None;
            }
        }
    }
    if 4 * limbs.len() < k {
        out[..k - 4 * limbs.len()].fill(0);
    }
    Some(())
}

/// `a < b` for equal-length limb slices.
fn lt(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` modulo `2^(32·len)`.
fn sub_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = u64::from(*x)
            .wrapping_sub(u64::from(y))
            .wrapping_sub(borrow);
        *x = d as u32;
        borrow = (d >> 63) & 1;
    }
}
