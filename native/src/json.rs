//! JSON as deep as the core accepts. serde_json's default recursion limit
//! (128) is lower than that, so the depth is checked first and the parser
//! then runs without its limit.

use serde::de::DeserializeOwned;
use std::fmt;

/// Why a JSON text could not be read.
#[derive(Debug)]
pub(crate) enum JsonError {
    /// Nested deeper than the limit it was read with.
    TooDeep(usize),
    Invalid(serde_json::Error),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooDeep(max) => write!(f, "nested deeper than {max} levels"),
            Self::Invalid(e) => e.fmt(f),
        }
    }
}

/// `json` as a `T`, nested at most `max_depth` levels.
pub(crate) fn from_json<T: DeserializeOwned>(
    json: &[u8],
    max_depth: usize,
) -> Result<T, JsonError> {
    if contextkit_core::json_depth(json) > max_depth {
        return Err(JsonError::TooDeep(max_depth));
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    de.disable_recursion_limit();
    T::deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value))
        .map_err(JsonError::Invalid)
}
