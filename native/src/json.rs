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

/// JSON text as a value, numbers exact (serde_json with `float_roundtrip`),
/// nested at most `max_depth` levels: the [`ParseJson`](crate::ParseJson)
/// of this crate, for [`Data::from_json`](crate::Data::from_json).
///
/// ```
/// use contextkit::{ContextManager, Data, ManagerConfig, parse_json};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let body = r#"{"cart":[{"sku":"a-1","price":0.1}]}"#.to_string();
/// let s = m.create_context("s", Data::from_json(body, parse_json)?).await?;
/// assert_eq!(s.data.json_text(), r#"{"cart":[{"sku":"a-1","price":0.1}]}"#);
/// assert_eq!(s.data["cart"][0]["price"], 0.1);
/// # Ok::<(), contextkit::ContextError>(())
/// # }).unwrap();
/// ```
pub fn parse_json(text: &str, max_depth: usize) -> Result<serde_json::Value, String> {
    from_json(text.as_bytes(), max_depth).map_err(|e| e.to_string())
}
