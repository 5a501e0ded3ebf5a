//! JSON text to [`Value`], exactly.
//!
//! serde_json's own parser reads some numbers one bit off unless its
//! `float_roundtrip` feature is on, whose tables would add about 10 KB to the
//! gzipped module. This parser accepts and refuses exactly the texts
//! serde_json does (RFC 8259: no trailing commas, comments, leading zeros,
//! NaN or lone surrogate escapes) and types numbers as serde_json does, but
//! reads a number with a fraction or an exponent with the correctly rounded
//! `float::parse`, so every double written by `JSON.stringify` or serde_json
//! is read back as itself.
//!
//! It keeps the open containers in a `Vec`, not on the call stack, so no
//! input can overflow the stack; nesting past `max_depth` levels is refused
//! as soon as it is seen. No input makes it panic.

mod check;
mod controls;
mod float;

pub use check::{Refused, Shape, check, check_allowing_controls};
pub use controls::escape_controls;

/// The double nearest to `text`, a number in JSON's grammar (`-`, digits,
/// an optional fraction and exponent), correctly rounded; ±infinity past the
/// largest double. (For differential fuzzing against `str::parse`.)
pub fn parse_f64(text: &str) -> f64 {
    float::parse(text.as_bytes())
}

use serde_json::{Map, Number, Value};
use std::fmt;

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// More containers nested than the limit, which it holds.
    TooDeep(usize),
    /// Not JSON: what is wrong, and where (line and column from 1, in bytes).
    Invalid {
        /// What is wrong ("expected a value").
        what: &'static str,
        /// The line, from 1.
        line: usize,
        /// The column in bytes, from 1.
        column: usize,
    },
}

/// Continues a sentence naming the text: "context data is not valid JSON: …".
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooDeep(max) => write!(f, "is nested too deeply (the limit is {max} levels)"),
            Error::Invalid { what, line, column } => {
                write!(
                    f,
                    "is not valid JSON: {what} at line {line} column {column}"
                )
            }
        }
    }
}

/// Parses `text`, one JSON value with optional whitespace around it, nested
/// at most `max_depth` levels (`[]` is one level). With `raw_controls`,
/// strings may also hold control characters unescaped.
///
/// Integers without fraction or exponent become `u64` or, when negative,
/// `i64` numbers if they fit; all other numbers (`-0` included) become `f64`,
/// correctly rounded, and refused if out of its range.
pub fn parse(text: &str, max_depth: usize, raw_controls: bool) -> Result<Value, Error> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        raw_controls,
        error: None,
    };
    let result = p.document(max_depth);
    // Only nesting too deep fails without an error of its own.
    result.map_err(|Failed| p.error.take().unwrap_or(Error::TooDeep(max_depth)))
}

/// An open container: the items so far, or the members so far and the key
/// of the value being read.
enum Frame {
    Array(Vec<Value>),
    Object(Map<String, Value>, String),
}

/// A refusal; the parser's `error` says why (none: nested too deeply).
/// Small, so results need no more room than their values.
struct Failed;

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// The next byte to read; never past the end.
    pos: usize,
    raw_controls: bool,
    error: Option<Error>,
}

/// A position in JSON text, as the parser and the check read it: one
/// definition of the grammar's whitespace for both.
pub(crate) trait Cursor {
    fn bytes(&self) -> &[u8];
    fn pos(&self) -> usize;
    fn advance(&mut self, n: usize);

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos()).copied()
    }

    /// Reads the next byte if it is `b`.
    #[inline(always)]
    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        self.advance(usize::from(found));
        found
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.advance(1);
        }
    }
}

impl Cursor for Parser<'_> {
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        self.bytes
    }
    #[inline(always)]
    fn pos(&self) -> usize {
        self.pos
    }
    #[inline(always)]
    fn advance(&mut self, n: usize) {
        self.pos += n;
    }
}

impl Parser<'_> {
    /// The whole text: one value and whitespace (see [`parse`]).
    fn document(&mut self, max_depth: usize) -> Result<Value, Failed> {
        // The containers open around the value being read, innermost last.
        let mut open: Vec<Frame> = Vec::new();
        'value: loop {
            self.skip_whitespace();
            let mut value = match self.peek() {
                Some(b'"') => Value::String(self.string()?),
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.word(b"true", Value::Bool(true))?,
                Some(b'f') => self.word(b"false", Value::Bool(false))?,
                Some(b'n') => self.word(b"null", Value::Null)?,
                Some(bracket @ (b'[' | b'{')) => {
                    if open.len() >= max_depth {
                        return Err(Failed);
                    }
                    self.pos += 1;
                    self.skip_whitespace();
                    if bracket == b'[' {
                        if !self.eat(b']') {
                            open.push(Frame::Array(Vec::new()));
                            continue 'value;
                        }
                        Value::Array(Vec::new())
                    } else {
                        if !self.eat(b'}') {
                            let key = self.key()?;
                            open.push(Frame::Object(Map::new(), key));
                            continue 'value;
                        }
                        Value::Object(Map::new())
                    }
                }
                Some(_) => return Err(self.fail("expected value")),
                None => return Err(self.fail("EOF while parsing a value")),
            };
            // `value` is complete: it joins the innermost open container, and
            // each container it completes joins the next one out.
            while let Some(frame) = open.last_mut() {
                self.skip_whitespace();
                let next = self.peek();
                match frame {
                    Frame::Array(items) => {
                        items.push(value);
                        match next {
                            Some(b',') => {
                                self.pos += 1;
                                continue 'value;
                            }
                            Some(b']') => {}
                            Some(_) => return Err(self.fail("expected `,` or `]`")),
                            None => return Err(self.fail("EOF while parsing a list")),
                        }
                    }
                    Frame::Object(map, key) => {
                        // A repeated key keeps its last value, as in serde_json.
                        map.insert(std::mem::take(key), value);
                        match next {
                            Some(b',') => {
                                self.pos += 1;
                                self.skip_whitespace();
                                *key = self.key()?;
                                continue 'value;
                            }
                            Some(b'}') => {}
                            Some(_) => return Err(self.fail("expected `,` or `}`")),
                            None => return Err(self.fail("EOF while parsing an object")),
                        }
                    }
                }
                self.pos += 1;
                value = match open.pop() {
                    Some(Frame::Array(items)) => Value::Array(items),
                    Some(Frame::Object(map, _)) => Value::Object(map),
                    None => Value::Null,
                };
            }
            self.skip_whitespace();
            return match self.peek() {
                None => Ok(value),
                Some(_) => Err(self.fail("trailing characters")),
            };
        }
    }

    /// Records the error `what` at the current byte (at the last one at the end).
    fn fail(&mut self, what: &'static str) -> Failed {
        let before = self.bytes.get(..self.pos).unwrap_or_default();
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let end = self.pos + usize::from(self.pos < self.bytes.len());
        self.error = Some(Error::Invalid {
            what,
            line: 1 + before.iter().filter(|&&b| b == b'\n').count(),
            column: (end - line_start).max(1),
        });
        Failed
    }

    /// `true`, `false` or `null`, whose first byte is next.
    fn word(&mut self, word: &[u8], value: Value) -> Result<Value, Failed> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        if rest.starts_with(word) {
            self.pos += word.len();
            return Ok(value);
        }
        // Point at the first byte that differs.
        self.pos += rest.iter().zip(word).take_while(|(a, b)| a == b).count();
        Err(self.fail(if self.pos < self.bytes.len() {
            "expected ident"
        } else {
            "EOF while parsing a value"
        }))
    }

    /// Skips ASCII digits; returns how many.
    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number, whose first byte (`-` or a digit) is next.
    fn number(&mut self) -> Result<Value, Failed> {
        let start = self.pos;
        let negative = self.eat(b'-');
        let int_start = self.pos;
        // The integer part's value modulo 2^64, and before its last digit.
        let (mut n, mut before_last) = (0_u64, 0_u64);
        while let Some(d @ b'0'..=b'9') = self.peek() {
            before_last = n;
            n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.pos += 1;
        }
        let int_digits = self.pos - int_start;
        if int_digits == 0 || (int_digits > 1 && self.bytes.get(int_start) == Some(&b'0')) {
            return Err(self.fail("invalid number"));
        }
        let mut integer = true;
        if self.eat(b'.') {
            integer = false;
            if self.digits() == 0 {
                return Err(self.fail("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            integer = false;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(self.fail("invalid number"));
            }
        }
        if integer {
            // 19 digits always fit in 64 bits, 20 if the last one does.
            let last = n.wrapping_sub(before_last.wrapping_mul(10));
            let magnitude = match int_digits {
                ..=19 => Some(n),
                20 if before_last <= (u64::MAX - last) / 10 => Some(n),
                _ => None,
            };
            match (negative, magnitude) {
                (false, Some(n)) => return Ok(Value::from(n)),
                // -0 stays a float, as in serde_json.
                (true, Some(n)) if n > 0 => {
                    if let Some(n) = 0_i64.checked_sub_unsigned(n) {
                        return Ok(Value::from(n));
                    }
                }
                // Integers past i64 and u64 become floats, as in serde_json.
                _ => {}
            }
        }
        let float = float::parse(self.bytes.get(start..self.pos).unwrap_or_default());
        // Infinite (out of range) numbers have no `Number`.
        match Number::from_f64(float) {
            Some(n) => Ok(Value::Number(n)),
            None => {
                self.pos = start;
                Err(self.fail("number out of range"))
            }
        }
    }

    /// An object key, whose opening quote should be next, and its colon.
    fn key(&mut self) -> Result<String, Failed> {
        match self.peek() {
            Some(b'"') => {}
            Some(_) => return Err(self.fail("key must be a string")),
            None => return Err(self.fail("EOF while parsing an object")),
        }
        let key = self.string()?;
        self.skip_whitespace();
        match self.peek() {
            Some(b':') => {
                self.pos += 1;
                Ok(key)
            }
            Some(_) => Err(self.fail("expected `:`")),
            None => Err(self.fail("EOF while parsing an object")),
        }
    }

    /// A string, whose opening quote is next. Runs without escapes are
    /// copied whole.
    fn string(&mut self) -> Result<String, Failed> {
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            self.pos = special(self.bytes, self.pos);
            let Some(b) = self.peek() else {
                return Err(self.fail("EOF while parsing a string"));
            };
            if b < 0x20 {
                if !self.raw_controls {
                    return Err(self
                        .fail("control character (\\u0000-\\u001F) found while parsing a string"));
                }
                self.pos += 1;
                continue;
            }
            // `"` and `\` are ASCII, so the run ends on a character boundary.
            let text = self.text.get(run..self.pos).unwrap_or_default();
            self.pos += 1;
            if b == b'"' {
                if out.is_empty() {
                    return Ok(text.to_owned());
                }
                out.push_str(text);
                return Ok(out);
            }
            out.push_str(text);
            out.push(self.escape()?);
            run = self.pos;
        }
    }

    /// The character of an escape whose backslash has been read.
    fn escape(&mut self) -> Result<char, Failed> {
        let Some(b) = self.peek() else {
            return Err(self.fail("EOF while parsing a string"));
        };
        self.pos += 1;
        Ok(match b {
            b'"' | b'\\' | b'/' => char::from(b),
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let mut code = self.hex4()?;
                // A leading surrogate must be followed by an escaped trailing one.
                if (0xD800..0xDC00).contains(&code) {
                    if !(self.eat(b'\\') && self.eat(b'u')) {
                        return Err(self.fail("unexpected end of hex escape"));
                    }
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.fail("lone leading surrogate in hex escape"));
                    }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                }
                // Only a lone trailing surrogate is left to refuse.
                match char::from_u32(code) {
                    Some(c) => c,
                    None => return Err(self.fail("lone leading surrogate in hex escape")),
                }
            }
            _ => {
                self.pos -= 1;
                return Err(self.fail("invalid escape"));
            }
        })
    }

    /// Four hex digits after `\u`.
    fn hex4(&mut self) -> Result<u32, Failed> {
        let mut code = 0;
        for _ in 0..4 {
            let Some(b) = self.peek() else {
                return Err(self.fail("EOF while parsing a string"));
            };
            let Some(digit) = char::from(b).to_digit(16) else {
                return Err(self.fail("invalid escape"));
            };
            self.pos += 1;
            code = (code << 4) | digit;
        }
        Ok(code)
    }
}

/// The index of the first `"`, `\` or control character at or after `i` in
/// `bytes`, or its length. Eight bytes at a time: a byte is flagged in
/// `found` if it is below 0x20 or equal to one of the two after an xor (each
/// test sets the high bit of the byte it matches, and only borrows from a
/// match can flag the bytes above it, so the lowest flag is exact; bytes from
/// 0x80 up, and only they, are excluded by `!word`).
#[inline(always)]
pub(crate) fn special(bytes: &[u8], i: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let rest = bytes.get(i..).unwrap_or_default();
    let mut chunks = rest.chunks_exact(8);
    let mut at = i;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let found = (word.wrapping_sub(ONES * 0x20)
            | quote.wrapping_sub(ONES)
            | backslash.wrapping_sub(ONES))
            & !word
            & HIGH;
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    for &b in chunks.remainder() {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests;
