//! Fixed-width Montgomery arithmetic for RSA public-key operations.
//!
//! Numbers are little-endian limbs. The limb type is chosen per target ([`NativeLimb`]):
//! - `u32` limbs with `u64` products where there is no fast 64×64→128 multiply — in particular
//!   wasm32, which multiplies `i64` natively but would emulate `u128` products with a libcall;
//! - `u64` limbs with `u128` products on 64-bit native targets (about 2.5× faster there).
//!
//! The code is generic over [`Limb`], so the tests run both widths on the host. Everything a
//! verification needs from the modulus (limbs, `-n⁻¹ mod 2^w`, `R² mod n`) is computed once when
//! the key is loaded; a verification then allocates nothing.
//!
//! Public-key operations handle public data only, so nothing here tries to be constant-time.

use core::fmt::Debug;
use core::ops::{BitAnd, BitOr, Shl, Shr};

/// Largest supported modulus in bits.
pub(crate) const MAX_BITS: usize = 8192;
/// Scratch capacity in limbs (enough for the narrowest limb).
pub(crate) const MAX_LIMBS: usize = MAX_BITS / 32;

/// The limb width used for RSA on this target.
#[cfg(target_pointer_width = "64")]
pub(crate) type NativeLimb = u64;
/// The limb width used for RSA on this target.
#[cfg(not(target_pointer_width = "64"))]
pub(crate) type NativeLimb = u32;

/// An unsigned machine word with a double-width product.
pub(crate) trait Limb:
    Copy
    + Eq
    + Ord
    + Debug
    + Shl<u32, Output = Self>
    + Shr<u32, Output = Self>
    + BitOr<Output = Self>
    + BitAnd<Output = Self>
{
    const BITS: u32;
    const BYTES: usize;
    const ZERO: Self;
    const ONE: Self;
    /// `a·b + c + d` as `(low, high)`; cannot overflow the double width.
    fn mac(a: Self, b: Self, c: Self, d: Self) -> (Self, Self);
    /// `a + b + c` as `(low, high)` with `c` a carry.
    fn add3(a: Self, b: Self, c: Self) -> (Self, Self);
    /// `a - b - borrow` as `(difference, borrow)`, `borrow` being 0 or 1.
    fn sbb(a: Self, b: Self, borrow: Self) -> (Self, Self);
    fn wrapping_mul(self, b: Self) -> Self;
    fn wrapping_sub(self, b: Self) -> Self;
    fn wrapping_neg(self) -> Self;
    fn leading_zeros(self) -> u32;
    fn from_u8(b: u8) -> Self;
    /// Byte `i` counted from the least significant end.
    fn byte(self, i: usize) -> u8;
}

macro_rules! impl_limb {
    ($t:ty, $wide:ty) => {
        impl Limb for $t {
            const BITS: u32 = <$t>::BITS;
            const BYTES: usize = core::mem::size_of::<$t>();
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline(always)]
            fn mac(a: Self, b: Self, c: Self, d: Self) -> (Self, Self) {
                let w = <$wide>::from(a) * <$wide>::from(b) + <$wide>::from(c) + <$wide>::from(d);
                (w as $t, (w >> <$t>::BITS) as $t)
            }
            #[inline(always)]
            fn add3(a: Self, b: Self, c: Self) -> (Self, Self) {
                let w = <$wide>::from(a) + <$wide>::from(b) + <$wide>::from(c);
                (w as $t, (w >> <$t>::BITS) as $t)
            }
            #[inline(always)]
            fn sbb(a: Self, b: Self, borrow: Self) -> (Self, Self) {
                let w = <$wide>::from(a)
                    .wrapping_sub(<$wide>::from(b))
                    .wrapping_sub(<$wide>::from(borrow));
                (w as $t, (w >> (2 * <$t>::BITS - 1)) as $t)
            }
            #[inline(always)]
            fn wrapping_mul(self, b: Self) -> Self {
                <$t>::wrapping_mul(self, b)
            }
            #[inline(always)]
            fn wrapping_sub(self, b: Self) -> Self {
                <$t>::wrapping_sub(self, b)
            }
            #[inline(always)]
            fn wrapping_neg(self) -> Self {
                <$t>::wrapping_neg(self)
            }
            #[inline(always)]
            fn leading_zeros(self) -> u32 {
                <$t>::leading_zeros(self)
            }
            #[inline(always)]
            fn from_u8(b: u8) -> Self {
                Self::from(b)
            }
            #[inline(always)]
            fn byte(self, i: usize) -> u8 {
                (self >> (8 * i as u32)) as u8
            }
        }
    };
}

impl_limb!(u32, u64);
impl_limb!(u64, u128);

/// An odd modulus prepared for Montgomery multiplication with `R = 2^(w·len)`.
#[derive(Clone)]
pub(crate) struct Modulus<L: Limb> {
    /// Little-endian limbs; the top limb is non-zero.
    n: Box<[L]>,
    /// `-n⁻¹ mod 2^w`.
    n0inv: L,
    /// `R² mod n`, used to enter Montgomery form.
    rr: Box<[L]>,
    /// Bit length of `n`.
    bits: usize,
}

impl<L: Limb> Modulus<L> {
    /// Prepares a big-endian modulus. `None` unless it is odd, greater than 1 and at most
    /// [`MAX_BITS`] bits. Leading zero bytes are allowed.
    pub(crate) fn new(n_be: &[u8]) -> Option<Modulus<L>> {
        let first = n_be.iter().position(|&b| b != 0)?;
        let n_be = &n_be[first..];
        if n_be.len() * 8 > MAX_BITS || n_be.last().is_none_or(|&b| b & 1 == 0) {
            return None;
        }
        let len = n_be.len().div_ceil(L::BYTES);
        let mut n = vec![L::ZERO; len];
        limbs_from_be(n_be, &mut n)?;
        let top = *n.last()?;
        let bits = L::BITS as usize * len - top.leading_zeros() as usize;
        if bits < 2 {
            return None;
        }
        // Newton iteration for n0⁻¹ mod 2^w: each step doubles the number of correct low bits,
        // starting from 1 (n0 is odd): 5 steps reach 32 bits, 6 reach 64.
        let n0 = n[0];
        let two = L::ONE << 1;
        let mut inv = L::ONE;
        for _ in 0..L::BITS.trailing_zeros() {
            inv = inv.wrapping_mul(two.wrapping_sub(n0.wrapping_mul(inv)));
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
    /// `R·2^len mod n` — the Montgomery form of `2^len` — then square log2(w) times in Montgomery
    /// form: `(2^len)^w = 2^(w·len) = R`, whose Montgomery form is `R² mod n`.
    fn compute_rr(&self) -> Vec<L> {
        let l = self.len();
        let w = L::BITS as usize;
        let mut x = vec![L::ZERO; l];
        let top = self.bits - 1;
        x[top / w] = L::ONE << (top % w) as u32;
        for _ in 0..(w * l - top + l) {
            self.double_mod(&mut x);
        }
        let mut y = vec![L::ZERO; l];
        for _ in 0..L::BITS.trailing_zeros() {
            self.mont_sqr(&mut y, &x);
            core::mem::swap(&mut x, &mut y);
        }
        x
    }

    /// `x = 2x mod n` for `x < n`.
    fn double_mod(&self, x: &mut [L]) {
        let mut carry = L::ZERO;
        for limb in x.iter_mut() {
            let next = *limb >> (L::BITS - 1);
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        if carry != L::ZERO || !lt(x, &self.n) {
            sub_in_place(x, &self.n);
        }
    }

    /// Whether `a < n`.
    pub(crate) fn is_reduced(&self, a: &[L]) -> bool {
        lt(a, &self.n)
    }

    /// Montgomery product `out = a·b·R⁻¹ mod n`, for `a, b < n` (operand scanning with the
    /// multiplication and reduction carry chains fused into one loop).
    fn mont_mul(&self, out: &mut [L], a: &[L], b: &[L]) {
        let l = self.len();
        let n = &self.n[..l];
        let a = &a[..l];
        let b = &b[..l];
        let mut t_buf = [L::ZERO; MAX_LIMBS + 1];
        let t = &mut t_buf[..l + 1];
        for &bi in b {
            let (x, mut c1) = L::mac(a[0], bi, t[0], L::ZERO);
            let m = x.wrapping_mul(self.n0inv);
            let (_, mut c2) = L::mac(m, n[0], x, L::ZERO); // low limb is zero by choice of m
            for j in 1..l {
                let (x, hi) = L::mac(a[j], bi, t[j], c1);
                c1 = hi;
                let (y, hi) = L::mac(m, n[j], x, c2);
                c2 = hi;
                t[j - 1] = y;
            }
            let (lo, hi) = L::add3(t[l], c1, c2);
            t[l - 1] = lo;
            t[l] = hi;
        }
        self.final_reduce(out, &t[..l], t[l]);
    }

    /// Montgomery square `out = a²·R⁻¹ mod n`, for `a < n`: the full square computes each cross
    /// product once, then a separate Montgomery reduction (about 1.5·l² multiplications instead
    /// of 2·l²).
    fn mont_sqr(&self, out: &mut [L], a: &[L]) {
        let l = self.len();
        let n = &self.n[..l];
        let a = &a[..l];
        let mut p_buf = [L::ZERO; 2 * MAX_LIMBS];
        let p = &mut p_buf[..2 * l];

        // Cross products a[i]·a[j], i < j.
        for i in 0..l {
            let ai = a[i];
            let mut c = L::ZERO;
            for (pj, &aj) in p[2 * i + 1..i + l].iter_mut().zip(&a[i + 1..]) {
                let (lo, hi) = L::mac(ai, aj, *pj, c);
                *pj = lo;
                c = hi;
            }
            p[i + l] = c;
        }
        // Double them and add the squares a[i]².
        let top_shift = L::BITS - 1;
        let mut shift_carry = L::ZERO;
        let mut c = L::ZERO;
        for (i, &ai) in a.iter().enumerate() {
            let lo = p[2 * i];
            let hi = p[2 * i + 1];
            let lo2 = (lo << 1) | shift_carry;
            let hi2 = (hi << 1) | (lo >> top_shift);
            shift_carry = hi >> top_shift;
            let (sq_lo, sq_hi) = L::mac(ai, ai, L::ZERO, L::ZERO);
            let (x, cx) = L::add3(lo2, sq_lo, c);
            p[2 * i] = x;
            let (y, cy) = L::add3(hi2, sq_hi, cx);
            p[2 * i + 1] = y;
            c = cy;
        }
        // a < n < R, so a² < R²: nothing carries out of the top limb.

        // Montgomery reduction: clear the low l limbs one at a time.
        let mut top = L::ZERO;
        for i in 0..l {
            let m = p[i].wrapping_mul(self.n0inv);
            let mut c = L::ZERO;
            for (pj, &nj) in p[i..i + l].iter_mut().zip(n) {
                let (lo, hi) = L::mac(m, nj, *pj, c);
                *pj = lo;
                c = hi;
            }
            let (lo, hi) = L::add3(p[i + l], c, top);
            p[i + l] = lo;
            top = hi;
        }
        self.final_reduce(out, &p[l..2 * l], top);
    }

    /// `out = t mod n` for `t + top·R < 2n`.
    fn final_reduce(&self, out: &mut [L], t: &[L], top: L) {
        let out = &mut out[..t.len()];
        out.copy_from_slice(t);
        if top != L::ZERO || !lt(out, &self.n) {
            sub_in_place(out, &self.n);
        }
    }

    /// `out = s^e mod n` for `s < n` and odd `e >= 3`, left-to-right square-and-multiply in
    /// Montgomery form. The final multiply (for the always-set low bit of `e`) uses `s` itself
    /// rather than its Montgomery form, which leaves Montgomery form for free.
    pub(crate) fn pow_odd(&self, s: &[L], e: u64, out: &mut [L]) {
        let l = self.len();
        let mut a_buf = [L::ZERO; MAX_LIMBS];
        let mut x_buf = [L::ZERO; MAX_LIMBS];
        let mut y_buf = [L::ZERO; MAX_LIMBS];
        let a = &mut a_buf[..l];
        self.mont_mul(a, s, &self.rr); // a = s·R mod n
        let mut acc = &mut x_buf[..l];
        let mut tmp = &mut y_buf[..l];
        acc.copy_from_slice(a);
        let top_bit = 63u32.saturating_sub(e.leading_zeros());
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
pub(crate) fn limbs_from_be<L: Limb>(bytes: &[u8], out: &mut [L]) -> Option<()> {
    if bytes.len() > L::BYTES * out.len() {
        return None;
    }
    out.fill(L::ZERO);
    for (i, &b) in bytes.iter().rev().enumerate() {
        let limb = &mut out[i / L::BYTES];
        *limb = *limb | (L::from_u8(b) << (8 * (i % L::BYTES)) as u32);
    }
    Some(())
}

/// Little-endian limbs into exactly `out.len()` big-endian bytes; `None` if the value does not
/// fit.
pub(crate) fn limbs_to_be<L: Limb>(limbs: &[L], out: &mut [u8]) -> Option<()> {
    let k = out.len();
    out.fill(0);
    for (i, &limb) in limbs.iter().enumerate() {
        for byte_idx in 0..L::BYTES {
            let byte = limb.byte(byte_idx);
            let pos = L::BYTES * i + byte_idx; // position from the least significant end
            if pos < k {
                out[k - 1 - pos] = byte;
            } else if byte != 0 {
                return None;
            }
        }
    }
    Some(())
}

/// `a < b` for equal-length limb slices.
fn lt<L: Limb>(a: &[L], b: &[L]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` modulo `2^(w·len)`.
fn sub_in_place<L: Limb>(a: &mut [L], b: &[L]) {
    let mut borrow = L::ZERO;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, br) = L::sbb(*x, y, borrow);
        *x = d;
        borrow = br;
    }
}
