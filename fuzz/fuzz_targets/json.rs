//! The wasm module's JSON parser (`contextkit-json`) against serde_json with
//! `float_roundtrip` (exact) on any bytes: both accept the same texts, and
//! read them to the same value, written the same (so doubles agree to the
//! bit); with raw control characters allowed in strings (the npm package's
//! argument text), it must read a text as serde_json reads that text with
//! those characters escaped; and its double reader against
//! `str::parse::<f64>` on every number in JSON's grammar. And the core's
//! check of text kept as data (`Data::read_json`, no tree built): it holds
//! exactly the texts this parser reads, and reads to the same value.
//!
//! `cargo +nightly fuzz run json` (from fuzz/).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Deeper than serde_json goes (128), so depth is never why ours refuses.
const DEPTH: usize = 1_000;

/// Whether `s` is a number in JSON's grammar.
fn json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// `text` with each control character inside a string written as `\u00XX`.
/// A quote outside a string opens one, inside one closes it, and a backslash
/// inside one takes the next character along.
fn escape_raw_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => inside = !inside,
            '\\' if inside => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
                continue;
            }
            c if inside && c < ' ' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Our reading of `text` (`raw_controls` as given) against serde_json's of `reference`.
fn compare(text: &str, raw_controls: bool, reference: &str) {
    let theirs = serde_json::from_str::<Value>(reference);
    let ours = contextkit_json::parse(text, DEPTH, raw_controls);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "{text:?}");
            assert_eq!(
                serde_json::to_string(a).ok(),
                serde_json::to_string(b).ok(),
                "{text:?}"
            );
        }
        (Ok(_), Err(e)) if e.to_string().contains("recursion limit") => {}
        (Err(_), Err(_)) => {}
        _ => panic!("{text:?} ({raw_controls}): ours {ours:?}, serde_json {theirs:?}"),
    }
}

/// The core's check of `text` as data against a reading of it.
fn held_as_data(text: &str) {
    let parse = |t: &str, depth| contextkit_json::parse(t, depth, false).map_err(|e| e.to_string());
    let held = contextkit_core::Data::read_json(text.to_owned(), parse);
    match (held, contextkit_json::parse(text, DEPTH, false)) {
        (Ok(held), Ok(read)) => assert_eq!(*held.value(), read, "{text:?}"),
        (Err(_), Err(_)) => {}
        // Data nests at most MAX_DEPTH levels.
        (Err(_), Ok(_))
            if contextkit_core::json_depth(text.as_bytes()) > contextkit_core::MAX_DEPTH => {}
        (held, read) => panic!("{text:?}: held {held:?}, read {read:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    held_as_data(text);
    compare(text, false, text);
    compare(text, true, &escape_raw_controls(text));
    let trimmed = text.trim();
    if json_number(trimmed) {
        let want = trimmed.parse::<f64>().expect("JSON numbers parse");
        let got = contextkit_json::parse_f64(trimmed);
        assert_eq!(got.to_bits(), want.to_bits(), "{trimmed:?}");
    }
});
