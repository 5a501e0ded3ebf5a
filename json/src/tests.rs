//! The parser against serde_json, which natively has `float_roundtrip` on
//! (through contextkit-core's non-wasm dependency), so its numbers are exact.

use super::{Error, check, check_allowing_controls, parse, special};
use serde_json::{Map, Number, Value, json};

/// Deep enough for anything generated here; serde_json itself stops at 128.
const DEPTH: usize = 1000;

/// splitmix64: reproducible inputs without a dependency.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn finite_f64(&mut self) -> f64 {
        loop {
            let f = f64::from_bits(self.next());
            if f.is_finite() {
                return f;
            }
        }
    }
}

/// Equal, and written the same (so floats agree to the bit, -0 included).
fn same(a: &Value, b: &Value) -> bool {
    a == b && serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
}

/// Asserts that the parser and serde_json agree on `text`: both refuse it,
/// or both read the same value; and that with raw control characters
/// allowed it reads `text` as serde_json reads it with those escaped.
fn agree(text: &str) {
    judge(text, &parse(text, DEPTH, false), text);
    let escaped = escape_raw_controls(text);
    judge(text, &parse(text, DEPTH, true), &escaped);
}

/// Asserts that `ours`, read from `text`, is what serde_json makes of `reference`.
fn judge(text: &str, ours: &Result<Value, Error>, reference: &str) {
    let theirs = serde_json::from_str::<Value>(reference);
    match (ours, &theirs) {
        (Ok(a), Ok(b)) => assert!(same(a, b), "{text:?}: {a} != {b}"),
        (Err(_), Err(_)) => {}
        _ => panic!("{text:?}: ours {ours:?}, serde_json {theirs:?} of {reference:?}"),
    }
}

/// `text` with each control character inside a string written as `\u00XX`:
/// the JSON a text with raw control characters stands for. Strings are
/// found as a reader finds them: a quote outside one opens it, inside one
/// closes it, and a backslash inside one takes the next character along.
fn escape_raw_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut inside, mut after_backslash) = (false, false);
    for c in text.chars() {
        if inside && !after_backslash && c < ' ' {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
            continue;
        }
        out.push(c);
        if after_backslash {
            after_backslash = false;
        } else if inside && c == '\\' {
            after_backslash = true;
        } else if c == '"' {
            inside = !inside;
        }
    }
    out
}

fn f64_of(text: &str) -> f64 {
    parse(text, DEPTH, false)
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("{text:?} is not a number"))
}

#[test]
fn hard_numbers_are_read_exactly() {
    let texts = [
        "2.001484629778296e-19",
        "3.3928531589008594e-121",
        "9.111190022525008e+20",
        "9.111190022525008e20",
        "911119002252500900021",
        "0.1",
        "0.30000000000000004",
        "5e-324",
        "4.9406564584124654e-324",
        "2.2250738585072014e-308",
        "2.225073858507201e-308",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1e308",
        "-1e308",
        "1e-400",
        "-1e-400",
        "0e99999999999999999999",
        "1e-99999999999999999999",
        "123456789012345678901234567890e-30",
        "9007199254740993",
        "-9007199254740993.0",
        "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124",
        "1.00000000000000011102230246251565404236316680908203126",
        "7.2057594037927933e16",
        "0.0",
        "-0.0",
        "1E5",
        "1e+5",
        "1.5E-5",
    ];
    for text in texts {
        agree(text);
        assert_eq!(
            f64_of(text).to_bits(),
            text.parse::<f64>().unwrap().to_bits(),
            "{text}"
        );
    }
    // Long texts: every digit counts.
    let long = format!("0.{}1e310", "0".repeat(300));
    agree(&long);
    assert_eq!(f64_of(&long), 1e9);
    // 2^53 + 1 is halfway between two doubles, and ties go to the even one.
    // (serde_json 1.0.154 with float_roundtrip reads it as 2^53 + 2 when
    // written with more than about 760 digits.)
    let halfway = format!("9007199254740993{}e-800", "0".repeat(800));
    assert_eq!(f64_of(&halfway), 9007199254740992.0);
    let above = format!("9007199254740993{}1e-801", "0".repeat(800));
    assert_eq!(f64_of(&above), 9007199254740994.0);
}

#[test]
fn numbers_past_the_largest_double_are_out_of_range() {
    for text in [
        "1e309",
        "-1e309",
        "1.8e308",
        "1e99999999999999999999",
        &"9".repeat(400),
    ] {
        agree(text);
        match parse(text, DEPTH, false) {
            Err(Error::Invalid { what, .. }) => assert_eq!(what, "number out of range", "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn integers_are_typed_like_serde_json() {
    let cases: [(&str, Value); 9] = [
        ("0", json!(0_u64)),
        ("-0", Value::Number(Number::from_f64(-0.0).unwrap())),
        ("-1", json!(-1_i64)),
        ("18446744073709551615", json!(u64::MAX)),
        ("18446744073709551616", json!(18446744073709551616.0)),
        ("-9223372036854775808", json!(i64::MIN)),
        ("-9223372036854775809", json!(-9223372036854775809.0)),
        ("-18446744073709551616", json!(-18446744073709551616.0)),
        ("911119002252500900021", json!(911119002252500900021.0)),
    ];
    for (text, want) in cases {
        agree(text);
        let got = parse(text, DEPTH, false).unwrap();
        assert!(same(&got, &want), "{text}: {got} != {want}");
    }
    assert_eq!(parse("-0", DEPTH, false).unwrap().to_string(), "-0.0");
    // Around the 64-bit limits, where the 20th digit decides.
    for text in [
        "9999999999999999999",
        "10000000000000000000",
        "18446744073709551610",
        "18446744073709551619",
        "18446744073709551620",
        "29999999999999999999",
        "99999999999999999999",
        "-9223372036854775807",
        "-9223372036854775810",
        "-10000000000000000000",
        "-18446744073709551615",
        "00",
        "-00",
        "100000000000000000000",
    ] {
        agree(text);
    }
}

#[test]
fn random_doubles_round_trip_in_every_notation() {
    let mut rng = Rng(1);
    for _ in 0..100_000 {
        let f = rng.finite_f64();
        let shortest = serde_json::to_string(&f).unwrap();
        // Rust's `{}` writes every digit before the point; `{:e}` is close to
        // JavaScript's exponent form, which also writes "+" for positive exponents.
        let plain = format!("{f}");
        let exp = format!("{f:e}");
        let js = if exp.contains("e-") {
            exp.clone()
        } else {
            exp.replace('e', "e+")
        };
        for text in [&shortest, &plain, &exp, &js] {
            assert_eq!(f64_of(text).to_bits(), f.to_bits(), "{text}");
        }
        agree(&shortest);
    }
}

fn random_string(rng: &mut Rng) -> String {
    const PIECES: [&str; 12] = [
        "a", "Z", " ", "\"", "\\", "/", "\n", "\u{1}", "\u{1f}", "é", "€", "😀",
    ];
    let len = rng.below(12);
    let mut s = String::new();
    for _ in 0..len {
        if rng.below(4) == 0 {
            s.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
        } else {
            let run = "abcdefghij".repeat(3);
            s.push_str(&run[..rng.below(run.len() as u64) as usize]);
        }
    }
    s
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let pick = if depth == 0 {
        rng.below(6)
    } else {
        rng.below(8)
    };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.next() >> rng.below(64)),
        3 => json!(-((rng.next() >> (rng.below(63) + 1)) as i64)),
        4 => json!(rng.finite_f64()),
        5 => Value::String(random_string(rng)),
        6 => (0..rng.below(5))
            .map(|_| random_value(rng, depth - 1))
            .collect(),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(5) {
                map.insert(random_string(rng), random_value(rng, depth - 1));
            }
            Value::Object(map)
        }
    }
}

#[test]
fn random_values_round_trip() {
    let mut rng = Rng(2);
    for _ in 0..20_000 {
        let depth = rng.below(7) as u32;
        let value = random_value(&mut rng, depth);
        for text in [
            value.to_string(),
            serde_json::to_string_pretty(&value).unwrap(),
        ] {
            let got = parse(&text, DEPTH, false).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(same(&got, &value), "{text}");
            agree(&text);
        }
        let text = raw_text(&value);
        let got = parse(&text, DEPTH, true).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(same(&got, &value), "{text:?}");
        agree(&text);
    }
}

/// `value` as `toJson` (wasm/npm/support.js) writes data with long strings:
/// a string without `"` and `\` as it is between quotes, control characters
/// and all; other strings, and the rest, as serde_json writes them.
fn raw_text(value: &Value) -> String {
    let quote = |s: &str| {
        if s.contains(['"', '\\']) {
            Value::from(s).to_string()
        } else {
            format!("\"{s}\"")
        }
    };
    let join = |items: Vec<String>| items.join(",");
    match value {
        Value::String(s) => quote(s),
        Value::Array(items) => format!("[{}]", join(items.iter().map(raw_text).collect())),
        Value::Object(map) => {
            let members = map
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), raw_text(v)));
            format!("{{{}}}", join(members.collect()))
        }
        other => other.to_string(),
    }
}

const VALID: [&str; 6] = [
    r#"{"a":[1,-2,3.5e-7,true,false,null],"b":{"c":"d\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"},"":0}"#,
    " [ 0 , -0.0 , 1E+2 , {} , [ ] , \"\" ] ",
    r#"{"k":"v","k":[{"x":{}}]}"#,
    "-12.5e-3",
    r#""é€😀 plain text that is long enough to be scanned eight bytes at a time""#,
    "\t\r\n[\"\\u0041\\uD834\\uDD1E\"]\n",
];

#[test]
fn truncated_texts_are_refused_like_serde_json() {
    for text in VALID {
        agree(text);
        for (end, _) in text.char_indices() {
            agree(&text[..end]);
        }
    }
}

#[test]
fn every_single_byte_mutation_is_judged_like_serde_json() {
    let mut replacements: Vec<u8> = (0..=127).collect();
    replacements.extend([0xC3, 0xE2, 0xF0, 0xFF]);
    for text in VALID {
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            for &b in &replacements {
                let mut replaced = bytes.to_vec();
                if i < bytes.len() {
                    replaced[i] = b;
                    check_bytes(&replaced);
                }
                let mut inserted = bytes.to_vec();
                inserted.insert(i, b);
                check_bytes(&inserted);
            }
            if i < bytes.len() {
                let mut removed = bytes.to_vec();
                removed.remove(i);
                check_bytes(&removed);
            }
        }
    }
}

/// `agree` on `bytes` if they are UTF-8 (the parser takes `&str`).
fn check_bytes(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        agree(text);
    }
}

#[test]
fn invalid_texts_are_refused_like_serde_json() {
    let texts = [
        "",
        " ",
        "[",
        "]",
        "{",
        "}",
        "[1,]",
        "[,1]",
        "{\"a\":1,}",
        "{,}",
        "{\"a\"}",
        "{\"a\" 1}",
        "{1:2}",
        "{a:1}",
        "[1 2]",
        "[1,,2]",
        "01",
        "-01",
        "00",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "1.e5",
        "0x10",
        "NaN",
        "Infinity",
        "-Infinity",
        "nul",
        "tru",
        "fals",
        "nulll",
        "True",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\\ud800\\ud800\\udc00\"",
        "\"\\ud800x\"",
        "\"\\ud800\\n\"",
        "\"\u{0}\"",
        "\"\n\"",
        "\"\u{1f}\"",
        "\"\u{7f}\"",
        "//c\n1",
        "/*c*/1",
        "[1]//",
        "1 2",
        "[1] x",
        "\u{feff}1",
        "'a'",
        "[\"a\":1]",
        "{\"a\":1]",
        "[1}",
        "\u{a0}1",
        "1\u{0}",
        "[-]",
        "[--1]",
        "[1e5.5]",
        "[1.5.5]",
        "\"\\uD834\\uDD1E\"",
        "\"\\/\"",
        "\"\\U0041\"",
    ];
    for text in texts {
        agree(text);
    }
}

#[test]
fn random_bytes_are_judged_like_serde_json() {
    const ALPHABET: &[u8] = b"[]{},:\"\\ 0123456789.eE+-tfnrulsaxu\n\t\x00\x01\x1f";
    let mut rng = Rng(3);
    for _ in 0..200_000 {
        let len = rng.below(16) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
            .collect();
        check_bytes(&bytes);
    }
}

#[test]
fn a_repeated_key_keeps_its_last_value() {
    let v = parse(r#"{"a":1,"b":2,"a":{"c":3}}"#, DEPTH, false).unwrap();
    assert!(same(&v, &json!({"a": {"c": 3}, "b": 2})));
    agree(r#"{"a":1,"b":2,"a":{"c":3}}"#);
}

#[test]
fn escapes_and_unicode() {
    let v = parse(
        r#""\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\ud83d\ude00é😀""#,
        DEPTH,
        false,
    )
    .unwrap();
    assert_eq!(v, json!("\"\\/\u{8}\u{c}\n\r\tAé€😀é😀"));
}

#[test]
fn nesting_is_limited_without_recursion() {
    for max in [1, 5, 128, 131] {
        let ok = format!("{}{}", "[".repeat(max), "]".repeat(max));
        assert!(parse(&ok, max, false).is_ok());
        let objects = format!("{}1{}", r#"{"a":"#.repeat(max), "}".repeat(max));
        assert!(parse(&objects, max, false).is_ok());
        let over = format!("[{ok}]");
        assert_eq!(parse(&over, max, false), Err(Error::TooDeep(max)));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(max + 1), "}".repeat(max + 1));
        assert_eq!(parse(&objects, max, false), Err(Error::TooDeep(max)));
    }
    let hostile = "[".repeat(1_000_000);
    assert_eq!(parse(&hostile, 128, false), Err(Error::TooDeep(128)));
    let hostile = r#"{"a":[{"b":"#.repeat(300_000);
    assert_eq!(parse(&hostile, 131, false), Err(Error::TooDeep(131)));
    // Unclosed containers all the way down: a heap of open frames, no stack.
    let unclosed = "[".repeat(200_000);
    assert!(matches!(
        parse(&unclosed, usize::MAX, false),
        Err(Error::Invalid { .. })
    ));
    assert_eq!(
        Error::TooDeep(128).to_string(),
        "is nested too deeply (the limit is 128 levels)"
    );
}

#[test]
fn raw_control_characters_only_inside_strings_and_only_when_allowed() {
    let long = "x".repeat(100);
    for code in 0..0x20_u32 {
        let c = char::from_u32(code).unwrap();
        let e = format!("\\u{code:04x}");
        // In a key, in a short value, and after runs longer than the scan's
        // eight-byte steps, next to an escape.
        for (raw, escaped) in [
            (
                format!(r#"{{"k{c}":"{c}"}}"#),
                format!(r#"{{"k{e}":"{e}"}}"#),
            ),
            (
                format!(r#"["{long}{c}{long}\n{c}{c}"]"#),
                format!(r#"["{long}{e}{long}\n{e}{e}"]"#),
            ),
        ] {
            assert!(parse(&raw, DEPTH, false).is_err(), "{raw:?}");
            // The check that lets them through stops at the first one.
            assert!(check(raw.as_bytes()).is_err(), "{raw:?}");
            assert_eq!(check_allowing_controls(raw.as_bytes()), Ok(None), "{raw:?}");
            let shape = check(escaped.as_bytes());
            assert_eq!(check_allowing_controls(escaped.as_bytes()), shape.map(Some));
            let want = parse(&escaped, DEPTH, false).unwrap();
            assert_eq!(parse(&raw, DEPTH, true).unwrap(), want, "{raw:?}");
            agree(&raw);
        }
        // Outside strings only JSON's whitespace may stand, in either mode.
        let outside = format!("[1,{c}2]");
        let whitespace = matches!(c, '\t' | '\n' | '\r');
        for raw_controls in [false, true] {
            let accepted = parse(&outside, DEPTH, raw_controls).is_ok();
            assert_eq!(accepted, whitespace, "{outside:?}");
        }
        assert_eq!(check(outside.as_bytes()).is_ok(), whitespace, "{outside:?}");
        let checked = check_allowing_controls(outside.as_bytes());
        assert_eq!(checked.is_ok(), whitespace, "{outside:?}");
        assert!(!matches!(checked, Ok(None)), "{outside:?}");
        // An escape is a backslash and a letter, never a control character.
        assert!(parse(&format!("\"\\{c}\""), DEPTH, true).is_err());
    }
    for outside in ["[1,\u{1}2]", "\u{0}{}", "{\"a\":1}\u{1}", "\"a\"\u{b}"] {
        assert!(parse(outside, DEPTH, true).is_err(), "{outside:?}");
    }
    assert_eq!(
        parse(&format!("\"{long}\u{1}\""), DEPTH, false)
            .unwrap_err()
            .to_string(),
        "is not valid JSON: control character (\\u0000-\\u001F) found while parsing a string \
         at line 1 column 102"
    );
}

#[test]
fn errors_say_what_and_where() {
    let message = |text: &str| parse(text, DEPTH, false).unwrap_err().to_string();
    assert_eq!(
        message("[1,]"),
        "is not valid JSON: expected value at line 1 column 4"
    );
    assert_eq!(
        message("{\n  \"a\": tru\n}"),
        "is not valid JSON: expected ident at line 2 column 11"
    );
    assert_eq!(
        message("[1"),
        "is not valid JSON: EOF while parsing a list at line 1 column 2"
    );
    assert_eq!(
        message("1e400"),
        "is not valid JSON: number out of range at line 1 column 1"
    );
    assert_eq!(
        message(""),
        "is not valid JSON: EOF while parsing a value at line 1 column 1"
    );
    assert_eq!(
        message("[] x"),
        "is not valid JSON: trailing characters at line 1 column 4"
    );
}

#[test]
fn the_scan_finds_the_first_special_byte() {
    let mut rng = Rng(4);
    for _ in 0..50_000 {
        let len = rng.below(40) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| match rng.below(8) {
                0 => b'"',
                1 => b'\\',
                2 => rng.below(0x20) as u8,
                3 => 0x80 | rng.below(0x80) as u8,
                _ => 0x20 + rng.below(0x60) as u8,
            })
            .collect();
        let start = rng.below(len as u64 + 1) as usize;
        let naive = (start..len)
            .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0..=0x1f))
            .unwrap_or(len);
        assert_eq!(special(&bytes, start), naive, "{bytes:?} from {start}");
    }
}
