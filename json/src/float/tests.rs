//! `float::parse` against the standard library's `str::parse::<f64>`, which
//! is correctly rounded, and against exact halfway points.

use super::{
    APPROXIMATION_ERROR, Big, INF, approximate, compare, correct, decode, digits, magnitude, parse,
    round,
};
use crate::tests::Rng;
use std::cmp::Ordering;

fn same_as_std(text: &str) {
    let want = text.parse::<f64>().unwrap();
    let got = parse(text.as_bytes());
    assert_eq!(got.to_bits(), want.to_bits(), "{text}: {got:e} != {want:e}");
}

#[test]
fn edge_cases_match_std() {
    let max_plus_half = "17976931348623158079372897140530341507993413271003782693617377898044\
        49682927647509466490179775872070963302864166928879109465555478519404026306574886715058\
        20681908902000708383676273854845817711531764475730270069855571366959622842914819860834\
        93647529271907416844436551070434271155969950809304288017790417449779";
    for text in [
        "0",
        "-0",
        "0.0",
        "0e0",
        "0e-99999",
        "0.000e99999",
        "1",
        "-1",
        "5e-324",
        "4e-324",
        "3e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1e-324",
        "-1e-324",
        "2.2250738585072011e-308",
        "2.2250738585072012e-308",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.7976931348623159e308",
        "1e308",
        "1e309",
        "-1e309",
        "1e400",
        "1e-400",
        "9007199254740993",
        "9007199254740992",
        "9007199254740994",
        "9007199254740995",
        "18014398509481985",
        "1e22",
        "1e23",
        "8.5e22",
        "123456789012345678e-40",
        "0.1",
        "0.2",
        "0.3",
        "1.1",
        "2.5",
        "7e-10",
        "1e-7",
        "1e21",
        "1e+21",
        "4.35679e-317",
        "1.0000000000000002",
        "0.9999999999999999",
        "0.99999999999999994",
        "0.99999999999999995",
        "3.0517578125e-05",
        max_plus_half,
        &format!("{max_plus_half}1"),
        &format!("{max_plus_half}e-1"),
        &format!("0.{}1", "0".repeat(400)),
        &format!("1{}", "0".repeat(308)),
        &format!("1{}", "0".repeat(309)),
        &format!("{}e-700", "9".repeat(1000)),
    ] {
        same_as_std(text);
    }
}

#[test]
fn random_decimal_texts_match_std() {
    let mut rng = Rng(11);
    for _ in 0..300_000 {
        let longest = if rng.below(10) == 0 { 60 } else { 20 };
        let len = 1 + rng.below(longest) as usize;
        let mut text: String = (0..len)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect();
        if rng.below(2) == 0 {
            text.insert(rng.below(len as u64) as usize, '.');
            if text.starts_with('.') {
                text.insert(0, '0');
            }
        }
        let exp = rng.below(700) as i64 - 350;
        text.push_str(&format!("e{exp}"));
        same_as_std(&text);
    }
}

#[test]
fn random_doubles_read_back() {
    let mut rng = Rng(12);
    for _ in 0..300_000 {
        let f = f64::from_bits(rng.next() & !(1 << 63));
        if !f.is_finite() {
            continue;
        }
        for text in [format!("{f:?}"), format!("{f:e}"), format!("{f}")] {
            assert_eq!(parse(text.as_bytes()).to_bits(), f.to_bits(), "{text}");
        }
    }
}

/// A natural number in base 10^9 for writing halfway points exactly.
struct Decimal(Vec<u64>);

impl Decimal {
    fn mul(&mut self, k: u64) {
        let mut carry = 0;
        for limb in &mut self.0 {
            let p = *limb * k + carry;
            *limb = p % 1_000_000_000;
            carry = p / 1_000_000_000;
        }
        while carry > 0 {
            self.0.push(carry % 1_000_000_000);
            carry /= 1_000_000_000;
        }
    }

    fn text(&self) -> String {
        let mut limbs = self.0.iter().rev();
        let mut s = limbs.next().map_or("0".into(), u64::to_string);
        for limb in limbs {
            s.push_str(&format!("{limb:09}"));
        }
        s
    }
}

/// The point halfway between the doubles with bits `bits` and `bits + 1`, as
/// digits and a power of ten: (2m + 1) × 2^(e - 1).
fn halfway(bits: u64) -> (String, i64) {
    let biased = (bits >> 52) as i64;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    let mut x = Decimal(vec![
        (2 * m + 1) % 1_000_000_000,
        (2 * m + 1) / 1_000_000_000,
    ]);
    let e2 = e - 1;
    if e2 >= 0 {
        (0..e2).for_each(|_| x.mul(2));
        (x.text(), 0)
    } else {
        (0..-e2).for_each(|_| x.mul(5));
        (x.text(), e2)
    }
}

#[test]
fn halfway_points_round_to_even_and_their_neighbours_do_not() {
    let mut rng = Rng(13);
    let mut cases: Vec<u64> = vec![0, 1, 2, 3, (1 << 52) - 1, 1 << 52, INF - 2, INF - 1];
    cases.extend((0..300).map(|_| rng.below(INF)));
    cases.extend((0..100).map(|_| rng.below(1 << 53)));
    cases.extend((0..100).map(|_| INF - 1 - rng.below(1 << 53)));
    // Halfway points around 2^53, the integers of doubles.
    cases.extend((0..50).map(|i| 0x4340_0000_0000_0000 - 25 + i));
    for bits in cases {
        let (digits, e) = halfway(bits);
        let even = bits + (bits & 1);
        let texts = [
            (format!("{digits}e{e}"), even),
            (format!("{digits}{}e{}", "0".repeat(800), e - 800), even),
            (format!("{digits}1e{}", e - 1), bits + 1),
            (
                format!("{digits}{}1e{}", "0".repeat(800), e - 801),
                bits + 1,
            ),
            (format!("{}9e{}", minus_one(&digits), e - 1), bits),
        ];
        for (text, want) in texts {
            let got = magnitude(text.as_bytes());
            assert_eq!(got, want, "{bits:#x}: {}…", &text[..text.len().min(60)]);
            if text.len() < 700 {
                // Longer texts take std's slow path, slow in debug builds:
                // they are checked against the expected bits only.
                same_as_std(&text);
            }
        }
    }
}

/// `digits` minus one (positive digits without leading zeros).
fn minus_one(digits: &str) -> String {
    let mut bytes = digits.as_bytes().to_vec();
    for b in bytes.iter_mut().rev() {
        if *b > b'0' {
            *b -= 1;
            break;
        }
        *b = b'9';
    }
    String::from_utf8(bytes).unwrap()
}

#[test]
fn the_approximation_is_as_close_as_rounding_assumes() {
    let mut rng = Rng(14);
    for _ in 0..20_000 {
        let w = rng.next() >> rng.below(64);
        if w == 0 {
            continue;
        }
        let e10 = rng.below(700) as i64 - 360;
        let (m, e2) = approximate(w, e10);
        let big = |v: u128| {
            let mut limbs: Vec<u32> = (0..4).map(|i| (v >> (32 * i)) as u32).collect();
            while limbs.last() == Some(&0) {
                limbs.pop();
            }
            Big(limbs)
        };
        // The error bound `round` relies on, with room to spare: 2^13 units.
        let d = Big::from(w);
        assert_eq!(
            compare(d.clone(), e10, big(m - (1 << 13)), e2),
            Ordering::Greater,
            "{w}e{e10}"
        );
        assert_eq!(
            compare(d, e10, big(m + (1 << 13)), e2),
            Ordering::Less,
            "{w}e{e10}"
        );
    }
}

#[test]
fn the_shortcut_agrees_with_the_exact_comparison() {
    let mut rng = Rng(15);
    let mut shortcuts = 0;
    for _ in 0..50_000 {
        let w = rng.next() >> rng.below(64);
        let e10 = rng.below(660) as i64 - 340;
        if w == 0 {
            continue;
        }
        let (m, e2) = approximate(w, e10);
        if let Some(bits) = round(m, e2, APPROXIMATION_ERROR) {
            shortcuts += 1;
            let mantissa = w.to_string();
            let (d, e) = digits(mantissa.as_bytes(), mantissa.len() as i64, e10);
            // From a candidate a few doubles away, the comparisons find the same one.
            let start = bits.saturating_sub(3).min(INF);
            let halfway_above = |bits| {
                let (m, e2) = decode(bits);
                compare(d.clone(), e, Big::from(2 * m + 1), e2 - 1)
            };
            assert_eq!(correct(start, halfway_above), bits, "{w}e{e10}");
            assert_eq!(
                correct((bits + 3).min(INF), halfway_above),
                bits,
                "{w}e{e10}"
            );
        }
    }
    assert!(shortcuts > 40_000, "{shortcuts}");
}

#[test]
fn small_powers_of_ten_are_exact() {
    let mut rng = Rng(16);
    for _ in 0..200_000 {
        let w = rng.next() >> rng.below(64);
        let e = rng.below(55) as i64 - 27;
        same_as_std(&format!("{w}e{e}"));
    }
    // Halfway points m × 2^-j = (m × 5^j) × 10^-j for odd 54-bit m, and
    // their neighbours.
    for _ in 0..20_000 {
        let m = (1 << 53) | rng.next() >> 11 | 1;
        for j in 1..=3 {
            let w = m * 5_u64.pow(j);
            for w in [w - 1, w, w + 1] {
                same_as_std(&format!("{w}e-{j}"));
            }
        }
    }
}
