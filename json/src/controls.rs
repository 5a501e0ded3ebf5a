//! [`escape_controls`]: raw control characters in JSON strings, escaped.

use crate::special;

/// `text` with every control character (below 0x20) inside its strings
/// escaped as `JSON.stringify` and serde_json write it (`\n`, `\r`, `\t`,
/// `\b`, `\f`, else `\u00XX`), so that a byte limit counts what they
/// count; whitespace between tokens stays as it is. For JSON text whose
/// strings may hold such characters raw (the npm package's `toJson` writes
/// its long strings so); text without any is returned as it is. Strings are
/// found eight bytes at a time, as a reader finds them: a quote outside one
/// opens it, inside one closes it, and a backslash inside one takes the next
/// byte along (a control character there stays, for the check to refuse).
///
/// ```
/// use contextkit_json::escape_controls;
/// assert_eq!(escape_controls("{\"a\":\"x\ny\u{1}\"}".into()), r#"{"a":"x\ny\u0001"}"#);
/// assert_eq!(escape_controls("[1,\n2]".into()), "[1,\n2]");
/// ```
pub fn escape_controls(text: String) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    // Bytes before `run` are in `out`; `at` is where the scan goes on.
    let (mut run, mut at, mut inside) = (0, 0, false);
    loop {
        at = special(bytes, at);
        let Some(&b) = bytes.get(at) else {
            break;
        };
        at += 1;
        match b {
            b'"' => inside = !inside,
            b'\\' if inside => at += 1,
            _ if !inside || b >= 0x20 => {}
            _ => {
                if out.is_empty() {
                    out.reserve(text.len() + text.len() / 8);
                }
                out.push_str(text.get(run..at - 1).unwrap_or_default());
                run = at;
                match b {
                    b'\n' => out.push_str("\\n"),
                    b'\r' => out.push_str("\\r"),
                    b'\t' => out.push_str("\\t"),
                    0x08 => out.push_str("\\b"),
                    0x0c => out.push_str("\\f"),
                    _ => {
                        const HEX: &[u8; 16] = b"0123456789abcdef";
                        out.push_str("\\u00");
                        out.push(char::from(HEX[usize::from(b >> 4)]));
                        out.push(char::from(HEX[usize::from(b & 15)]));
                    }
                }
            }
        }
    }
    if run == 0 {
        return text;
    }
    out.push_str(text.get(run..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every control character, at every offset of an 8-byte word and in
    /// the tail, escaped as serde_json writes it; other bytes (multi-byte
    /// UTF-8 and DEL included) untouched.
    #[test]
    fn escapes_what_serde_json_escapes_and_nothing_else() {
        for c in (0..0x20_u8).map(char::from).chain(['\u{7f}', 'é', '€']) {
            for before in 0..17 {
                let s = format!("{}{c}{}", "a".repeat(before), "b".repeat(before % 5));
                let raw = format!("[\"{s}\"]");
                let want = serde_json::to_string(&[&s]).unwrap();
                assert_eq!(escape_controls(raw), want, "{c:?} after {before} bytes");
            }
        }
    }

    #[test]
    fn runs_of_controls_and_text_between_them() {
        let s: String = (0..64_u8)
            .map(|i| if i % 3 == 0 { char::from(i % 32) } else { 'x' })
            .collect();
        let want = serde_json::to_string(&s).unwrap();
        assert_eq!(escape_controls(format!("\"{s}\"")), want);
    }

    /// Only what is inside strings: whitespace between tokens stays, and
    /// so does a control character after a backslash (not JSON either way).
    #[test]
    fn only_inside_strings() {
        let raw = "{\"a\n\":\t[\"\\\"\u{1}\", \"\\\\\u{1f}\"],\r\n\"b\":\"\\\u{1}\"}\n";
        let want = "{\"a\\n\":\t[\"\\\"\\u0001\", \"\\\\\\u001f\"],\r\n\"b\":\"\\\u{1}\"}\n";
        assert_eq!(escape_controls(raw.into()), want);
        let plain = "[1,\n2]".to_string();
        assert_eq!(escape_controls(plain.clone()), plain);
    }
}
