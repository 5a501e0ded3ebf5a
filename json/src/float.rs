//! Decimal text to the nearest double, ties to even, without tables.
//!
//! The standard library's `str::parse::<f64>` is exact too, but its tables of
//! powers of five and its slow path add about 15 KB to the gzipped module.
//! Here a number takes the first of four ways that applies:
//!
//! 1. At most 2^53 with at most 22 as the power of ten: one exact double
//!    multiplication or division, rounded once (Clinger's fast path).
//! 2. At most 19 digits and at most 27 as the power of ten: the digits times
//!    a power of five, exact in 128 bits; or divided by the power of ten in
//!    double arithmetic, and that candidate checked against the halfway
//!    points around it exactly, in 128-bit integers.
//! 3. At most 19 digits: the digits times a power of ten computed with 128-bit
//!    mantissas. The error of that product is far below 2^-100 of it, so it
//!    decides the rounding unless it lies that close to a halfway point.
//! 4. Otherwise (more digits, subnormal or near overflow, near a halfway
//!    point): a candidate double from the approximation is moved to the
//!    right one by comparing the exact decimal value with the halfway points
//!    around it, in big integers.

use std::cmp::Ordering;

/// The bits of +infinity, one past the largest finite double.
const INF: u64 = 0x7FF0_0000_0000_0000;
/// Significant digits kept for the exact comparison. A halfway point between
/// two doubles has at most 767, so later digits only matter as "some nonzero".
const MAX_DIGITS: i64 = 768;

/// The double nearest to `text`, a number in JSON's grammar (`-`, digits, an
/// optional fraction and exponent); ±infinity past the largest double.
pub(super) fn parse(text: &[u8]) -> f64 {
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let magnitude = f64::from_bits(magnitude(text));
    if negative { -magnitude } else { magnitude }
}

/// The bits of the double nearest to unsigned `text`.
fn magnitude(text: &[u8]) -> u64 {
    // One pass over the mantissa: its first 19 significant digits, whether
    // a later one is nonzero, and how many digits follow the point.
    let (mut w, mut n, mut truncated) = (0_u64, 0_i64, false);
    let (mut in_fraction, mut fraction_digits) = (false, 0_i64);
    let mut end = 0;
    while let Some(&b) = text.get(end) {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            if b != b'.' {
                break;
            }
            in_fraction = true;
        } else {
            fraction_digits += i64::from(in_fraction);
            // Leading zeros are not significant.
            if n > 0 || d > 0 {
                if n < 19 {
                    w = w * 10 + u64::from(d);
                } else if d > 0 {
                    truncated = true;
                }
                n += 1;
            }
        }
        end += 1;
    }
    let (mantissa, exponent) = text.split_at(end);
    let mut exp: i64 = 0;
    for &b in exponent {
        if b.is_ascii_digit() {
            // Past 2^40 every nonzero number overflows or underflows anyway.
            exp = (exp * 10 + i64::from(b - b'0')).min(1 << 40);
        }
    }
    if exponent.contains(&b'-') {
        exp = -exp;
    }
    // The value is the `n` significant digits × 10^e10.
    let e10 = exp - fraction_digits;
    if w == 0 {
        return 0;
    }
    let kept = n.min(19);
    // The value is about w × 10^e_w, with w of `kept` digits.
    let e_w = e10 + (n - kept);
    if e_w + kept > 310 {
        return INF;
    }
    if e_w + kept < -324 {
        return 0;
    }
    if !truncated && w <= 1 << 53 && e_w.abs() <= 22 {
        let power = (0..e_w.abs()).fold(1.0, |p, _| p * 10.0);
        let f = w as f64;
        return if e_w >= 0 { f * power } else { f / power }.to_bits();
    }
    if !truncated && e_w.abs() <= 27 {
        // 5^27 < 2^63, so w × 5^k is exact in 128 bits.
        let k = e_w.unsigned_abs() as u32;
        let pow5 = u128::from(5_u64.pow(k));
        if e_w < 0 {
            return quotient(w, k, pow5);
        }
        let x = u128::from(w) * pow5;
        let z = x.leading_zeros();
        if let Some(bits) = round(x << z, e_w - i64::from(z), 0) {
            return bits;
        }
    }
    let (m, e2) = approximate(w, e_w);
    if !truncated && let Some(bits) = round(m, e2, APPROXIMATION_ERROR) {
        return bits;
    }
    let candidate = scale((m >> 64) as u64 as f64, e2 + 64).to_bits().min(INF);
    let (d, e_d) = digits(mantissa, n, e10);
    correct(candidate, |bits| {
        let (m, e) = decode(bits);
        compare(d.clone(), e_d, Big::from(2 * m + 1), e - 1)
    })
}

/// The bits of the double nearest `w` / 10^`k` for `k` ≤ 27 (a normal
/// double): a candidate from double arithmetic, within a few doubles of it,
/// moved by comparing `w` with the halfway points around it exactly, in
/// 128-bit integers: w / (5^k × 2^k) against (2m + 1) × 2^(e - 1) is w
/// against (2m + 1) × 5^k × 2^(e - 1 + k), and both sides stay near w.
fn quotient(w: u64, k: u32, pow5: u128) -> u64 {
    // Exact up to 10^22, within half a unit beyond.
    let power = (0..k).fold(1.0, |p, _| p * 10.0);
    correct((w as f64 / power).to_bits(), |bits| {
        let (m, e) = decode(bits);
        let halfway = u128::from(2 * m + 1) * pow5;
        let shift = e - 1 + i64::from(k);
        if shift >= 0 {
            u128::from(w).cmp(&(halfway << shift))
        } else {
            (u128::from(w) << -shift).cmp(&halfway)
        }
    })
}

/// `w` × 10^`e` as `m` × 2^`e2` with the top bit of `m` set, its relative
/// error below 2^-115: exponentiation by squaring of 10 or of 1/10 (rounded
/// to 128 bits), each product truncated to 128 bits.
fn approximate(w: u64, e: i64) -> (u128, i64) {
    let shift = 64 + w.leading_zeros();
    let mut x = (u128::from(w) << shift, -i64::from(shift));
    let mut base = if e >= 0 {
        (10 << 124, -124)
    } else {
        (0xCCCC_CCCC_CCCC_CCCC_CCCC_CCCC_CCCC_CCCD, -131)
    };
    let mut k = e.unsigned_abs();
    while k > 0 {
        if k & 1 == 1 {
            x = mul(x, base);
        }
        base = mul(base, base);
        k >>= 1;
    }
    x
}

/// The product of two normalized 128-bit mantissas, truncated and normalized.
fn mul((a, ea): (u128, i64), (b, eb): (u128, i64)) -> (u128, i64) {
    const LOW: u128 = u64::MAX as u128;
    let (a1, a0, b1, b0) = (a >> 64, a & LOW, b >> 64, b & LOW);
    let (high, cross1, cross2) = (a1 * b1, a1 * b0, a0 * b1);
    let middle = ((a0 * b0) >> 64) + (cross1 & LOW) + (cross2 & LOW);
    let p = high + (cross1 >> 64) + (cross2 >> 64) + (middle >> 64);
    // Both factors are at least 2^127, so the product is at least 2^126.
    if p >> 127 == 0 {
        (p << 1, ea + eb + 127)
    } else {
        (p, ea + eb + 128)
    }
}

/// A bound of the error of `approximate` in units of its `m`, far above the
/// actual bound of 2^13.
const APPROXIMATION_ERROR: u128 = 1 << 20;

/// The bits of the normal double nearest to `m` × 2^`e2`, exactly the
/// value if `error` is 0, else within `error` units of `m` of it. `None` if
/// the result is not a normal double or the error could change it.
fn round(m: u128, e2: i64, error: u128) -> Option<u64> {
    const DROPPED: u32 = 128 - 53;
    const HALF: u128 = 1 << (DROPPED - 1);
    let top = e2 + 127;
    let rest = m & ((1 << DROPPED) - 1);
    if !(-1022..=1023).contains(&top) || (error > 0 && rest.abs_diff(HALF) <= error) {
        return None;
    }
    let mantissa = (m >> DROPPED) as u64;
    // Past halfway, or halfway exactly with an odd mantissa: round up.
    let up = rest > HALF || (rest == HALF && mantissa & 1 == 1);
    let mut mantissa = mantissa + u64::from(up);
    let mut top = top;
    if mantissa == 1 << 53 {
        mantissa >>= 1;
        top += 1;
    }
    if top > 1023 {
        return Some(INF);
    }
    Some((((top + 1023) as u64) << 52) | (mantissa & ((1 << 52) - 1)))
}

/// `f` × 2^`k`, rounded (twice at most, for subnormal results).
fn scale(mut f: f64, mut k: i64) -> f64 {
    let pow2 = |k: i64| f64::from_bits(((k + 1023) as u64) << 52);
    while k > 1000 {
        f *= pow2(1000);
        k -= 1000;
    }
    while k < -1000 {
        f *= pow2(-1000);
        k += 1000;
    }
    f * pow2(k)
}

/// The first `MAX_DIGITS` of the `n` significant digits of `mantissa` as an
/// integer `d`, and `e` with `d` × 10^`e` the value; a nonzero digit dropped
/// becomes a digit 1 after them, which is on the same side of every halfway
/// point.
fn digits(mantissa: &[u8], n: i64, e10: i64) -> (Big, i64) {
    let mut d = Big(Vec::new());
    let (mut kept, mut chunk, mut chunk_len, mut sticky) = (0, 0, 0, false);
    for &b in mantissa {
        let digit = b.wrapping_sub(b'0');
        // The point and leading zeros.
        if digit > 9 || (kept == 0 && digit == 0) {
            continue;
        }
        if kept == MAX_DIGITS {
            if digit > 0 {
                sticky = true;
                break;
            }
            continue;
        }
        chunk = chunk * 10 + u32::from(digit);
        chunk_len += 1;
        kept += 1;
        if chunk_len == 9 {
            d.mul_add(1_000_000_000, chunk);
            (chunk, chunk_len) = (0, 0);
        }
    }
    d.mul_add(10_u32.pow(chunk_len), chunk);
    let mut e = e10 + (n - kept);
    if sticky {
        d.mul_add(10, 1);
        e -= 1;
    }
    (d, e)
}

/// Moves `candidate` to the double nearest the value, ties to even, given
/// how the value compares with the point halfway between the doubles with
/// bits `bits` and `bits + 1`. Positive doubles are ordered as their bits,
/// and the largest finite one is followed by infinity.
fn correct(mut candidate: u64, halfway_above: impl Fn(u64) -> Ordering) -> u64 {
    loop {
        if candidate >= INF {
            return INF;
        }
        match halfway_above(candidate) {
            Ordering::Greater => {
                candidate += 1;
                continue;
            }
            Ordering::Equal => return candidate + (candidate & 1),
            Ordering::Less => {}
        }
        if candidate == 0 {
            return 0;
        }
        match halfway_above(candidate - 1) {
            Ordering::Less => candidate -= 1,
            Ordering::Equal => return candidate - (candidate & 1),
            Ordering::Greater => return candidate,
        }
    }
}

/// The double with bits `bits` (positive) as m × 2^e; the next double up is
/// (m + 1) × 2^e, so the point halfway to it is (2m + 1) × 2^(e - 1).
fn decode(bits: u64) -> (u64, i64) {
    let biased = (bits >> 52) as i64;
    let fraction = bits & ((1 << 52) - 1);
    match biased {
        0 => (fraction, -1074),
        _ => (fraction | (1 << 52), biased - 1075),
    }
}

/// Compares `d` × 10^`e10` with `x` × 2^`e2`: d × 5^e10 × 2^e10 against
/// x × 2^e2, either side times powers of 5 and 2 so that both are integers.
fn compare(mut d: Big, e10: i64, mut x: Big, e2: i64) -> Ordering {
    if e10 >= 0 {
        d.mul_pow5(e10.unsigned_abs());
    } else {
        x.mul_pow5(e10.unsigned_abs());
    }
    let shift = e2 - e10;
    if shift >= 0 {
        x.shl(shift.unsigned_abs());
    } else {
        d.shl(shift.unsigned_abs());
    }
    d.cmp(&x)
}

/// A natural number in base 2^32, least significant limb first, without
/// leading zero limbs (zero is empty).
#[derive(Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl From<u64> for Big {
    fn from(v: u64) -> Big {
        let mut limbs = vec![v as u32, (v >> 32) as u32];
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
        Big(limbs)
    }
}

impl Big {
    /// `self` × `k` + `add`.
    fn mul_add(&mut self, k: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let p = u64::from(*limb) * u64::from(k) + carry;
            *limb = p as u32;
            carry = p >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow5(&mut self, mut k: u64) {
        while k > 0 {
            let step = k.min(13) as u32;
            self.mul_add(5_u32.pow(step), 0);
            k -= u64::from(step);
        }
    }

    fn shl(&mut self, bits: u64) {
        self.mul_add(1 << (bits % 32), 0);
        let limbs = (bits / 32) as usize;
        self.0.splice(0..0, std::iter::repeat_n(0, limbs));
    }
}

impl PartialOrd for Big {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Big {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.0, &other.0);
        a.len()
            .cmp(&b.len())
            .then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }
}

#[cfg(test)]
mod tests;
