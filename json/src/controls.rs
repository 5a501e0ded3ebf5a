//! [`escape_controls`]: raw control characters in JSON strings, escaped.

/// The index of the first control character (below 0x20) in `bytes` at or
/// after `from`, eight bytes at a time.
fn next_control(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut at = from;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        // The high bit of a byte below 0x20 survives; a borrow only flags
        // bytes above a match, so the lowest flag is exact.
        let found = word.wrapping_sub(ONES * 0x20) & !word & (ONES << 7);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = chunks.remainder().iter().position(|&b| b < 0x20)?;
    Some(at + tail)
}

/// `text` with every control character (below 0x20) escaped as
/// `JSON.stringify` and serde_json write it (`\n`, `\r`, `\t`, `\b`, `\f`,
/// else `\u00XX`), so that a byte limit counts what they count. For JSON
/// text whose strings may hold such characters raw and which has none
/// between tokens (the npm package's `toJson` writes its long strings so);
/// text without any is returned as it is.
///
/// ```
/// use contextkit_json::escape_controls;
/// assert_eq!(escape_controls("{\"a\":\"x\ny\u{1}\"}".into()), r#"{"a":"x\ny\u0001"}"#);
/// assert_eq!(escape_controls("[1]".into()), "[1]");
/// ```
pub fn escape_controls(text: String) -> String {
    let bytes = text.as_bytes();
    let Some(mut at) = next_control(bytes, 0) else {
        return text;
    };
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut run = 0;
    loop {
        out.push_str(text.get(run..at).unwrap_or_default());
        let b = bytes.get(at).copied().unwrap_or_default();
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
        run = at + 1;
        match next_control(bytes, run) {
            Some(next) => at = next,
            None => break,
        }
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
}
