//! One pass over JSON text that checks it without building anything: it
//! accepts exactly the texts [`parse`](crate::parse) reads, bar what only
//! reading tells (see [`Shape::read_now`]).

use crate::{Cursor, special};

/// What a check of JSON text found: how deeply its arrays and objects nest,
/// and whether only reading it tells if it is all in range (a number with a
/// positive exponent or of more than 300 digits may be past a double's range; a
/// `\u` escape of a surrogate must pair with another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// How deeply arrays and objects nest (`[]` is one level).
    pub depth: usize,
    /// Whether a number or an escape needs a reading to be sure of.
    pub read_now: bool,
}

/// Why text was refused, and at which byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// What is wrong, in [`parse`](crate::parse)'s words.
    pub what: &'static str,
    /// The byte it was found at.
    pub at: usize,
}

impl Refused {
    /// Continues a sentence naming the text: "is not valid JSON: … at line
    /// 1 column 6" (columns in bytes, from 1).
    pub fn describe(&self, text: &str) -> String {
        let before = text.as_bytes().get(..self.at).unwrap_or(text.as_bytes());
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let end = self.at + usize::from(self.at < text.len());
        let column = (end - line_start).max(1);
        format!(
            "is not valid JSON: {} at line {line} column {column}",
            self.what
        )
    }
}

/// Checks that `text` is one JSON value (RFC 8259, as serde_json reads it:
/// no control characters in strings, no trailing commas, no leading zeros)
/// with optional whitespace around it. Containers are counted, not
/// recursed into, so no text can overflow the stack.
pub fn check(text: &[u8]) -> Result<Shape, Refused> {
    let mut c = Checker::new(text, false);
    let depth = c.document()?;
    Ok(c.shape(depth))
}

/// [`check`] of text whose strings may also hold control characters raw
/// (the npm package's argument text: see
/// [`escape_controls`](crate::escape_controls)): `None` at the first one,
/// for such text needs them escaped and then a check of its own. So text
/// without any costs one pass, as for [`check`].
pub fn check_allowing_controls(text: &[u8]) -> Result<Option<Shape>, Refused> {
    let mut c = Checker::new(text, true);
    match c.document() {
        Ok(depth) => Ok(Some(c.shape(depth))),
        Err(_) if c.saw_control => Ok(None),
        Err(refused) => Err(refused),
    }
}

struct Checker<'a> {
    text: &'a [u8],
    pos: usize,
    read_now: bool,
    /// Whether a control character in a string ends the check with
    /// `saw_control` rather than refusing the text.
    stop_at_control: bool,
    saw_control: bool,
}

impl Cursor for Checker<'_> {
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        self.text
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

impl<'a> Checker<'a> {
    fn new(text: &'a [u8], stop_at_control: bool) -> Self {
        Self {
            text,
            pos: 0,
            read_now: false,
            stop_at_control,
            saw_control: false,
        }
    }

    fn shape(&self, depth: usize) -> Shape {
        Shape {
            depth,
            read_now: self.read_now,
        }
    }

    fn document(&mut self) -> Result<usize, Refused> {
        // The open containers, innermost last: true for an object.
        let mut open: Vec<bool> = Vec::new();
        let mut max = 0;
        'value: loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.word(b"true")?,
                Some(b'f') => self.word(b"false")?,
                Some(b'n') => self.word(b"null")?,
                Some(bracket @ (b'[' | b'{')) => {
                    self.pos += 1;
                    self.skip_whitespace();
                    let object = bracket == b'{';
                    let close = if object { b'}' } else { b']' };
                    max = max.max(open.len() + 1);
                    if !self.eat(close) {
                        open.push(object);
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                Some(_) => return Err(self.refuse("expected value")),
                None => return Err(self.refuse("EOF while parsing a value")),
            }
            // A value is complete: what follows it in each container it
            // closes.
            while let Some(&object) = open.last() {
                self.skip_whitespace();
                match (self.peek(), object) {
                    (Some(b','), _) => {
                        self.pos += 1;
                        if object {
                            self.skip_whitespace();
                            self.key()?;
                        }
                        continue 'value;
                    }
                    (Some(b']'), false) | (Some(b'}'), true) => {
                        self.pos += 1;
                        open.pop();
                    }
                    (Some(_), false) => return Err(self.refuse("expected `,` or `]`")),
                    (Some(_), true) => return Err(self.refuse("expected `,` or `}`")),
                    (None, false) => return Err(self.refuse("EOF while parsing a list")),
                    (None, true) => return Err(self.refuse("EOF while parsing an object")),
                }
            }
            self.skip_whitespace();
            return match self.peek() {
                None => Ok(max),
                Some(_) => Err(self.refuse("trailing characters")),
            };
        }
    }

    fn refuse(&self, what: &'static str) -> Refused {
        Refused { what, at: self.pos }
    }

    fn word(&mut self, word: &[u8]) -> Result<(), Refused> {
        let rest = self.text.get(self.pos..).unwrap_or_default();
        if rest.starts_with(word) {
            self.pos += word.len();
            return Ok(());
        }
        self.pos += rest.iter().zip(word).take_while(|(a, b)| a == b).count();
        Err(self.refuse(if self.pos < self.text.len() {
            "expected ident"
        } else {
            "EOF while parsing a value"
        }))
    }

    /// An object key and its colon.
    fn key(&mut self) -> Result<(), Refused> {
        match self.peek() {
            Some(b'"') => self.string()?,
            Some(_) => return Err(self.refuse("key must be a string")),
            None => return Err(self.refuse("EOF while parsing an object")),
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b':') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(self.refuse("expected `:`")),
            None => Err(self.refuse("EOF while parsing an object")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), Refused> {
        self.eat(b'-');
        let int_start = self.pos;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.text.get(int_start) == Some(&b'0')) {
            return Err(self.refuse("invalid number"));
        }
        self.read_now |= int_digits > 300;
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.refuse("invalid number"));
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            // Past a double's range only upwards (a number too small reads
            // as 0): a negative exponent of a number of at most 300 digits
            // is in range.
            self.read_now |= !self.eat(b'-');
            self.eat(b'+');
            if self.digits() == 0 {
                return Err(self.refuse("invalid number"));
            }
        }
        Ok(())
    }

    /// A string, whose opening quote is next.
    fn string(&mut self) -> Result<(), Refused> {
        self.pos += 1;
        loop {
            self.pos = special(self.text, self.pos);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape()?;
                }
                Some(_) => {
                    self.saw_control = self.stop_at_control;
                    return Err(self.refuse(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ));
                }
                None => return Err(self.refuse("EOF while parsing a string")),
            }
        }
    }

    /// An escape whose backslash has been read.
    fn escape(&mut self) -> Result<(), Refused> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'u') => {
                self.pos += 1;
                for _ in 0..4 {
                    match self.peek() {
                        Some(b) if b.is_ascii_hexdigit() => self.pos += 1,
                        Some(_) => return Err(self.refuse("invalid escape")),
                        None => return Err(self.refuse("EOF while parsing a string")),
                    }
                }
                // A surrogate: whether it pairs is left to the reading.
                self.read_now |= matches!(self.text.get(self.pos - 4), Some(b'd' | b'D'))
                    && matches!(
                        self.text.get(self.pos - 3),
                        Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                    );
                Ok(())
            }
            Some(_) => Err(self.refuse("invalid escape")),
            None => Err(self.refuse("EOF while parsing a string")),
        }
    }
}
