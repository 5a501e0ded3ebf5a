//! The one error type of contextkit and its stable codes.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// Shorthand for `Result<T, ContextError>`.
///
/// ```
/// # use contextkit_core::*;
/// # futures::executor::block_on(async {
/// async fn version_of(m: &ContextManager, id: &str) -> contextkit_core::Result<u64> {
///     Ok(m.get_context(id).await?.version)
/// }
/// let m = ContextManager::new(ManagerConfig::default());
/// assert_eq!(version_of(&m, "a").await.unwrap_err().code(), "NOT_FOUND");
/// # Ok::<(), ContextError>(())
/// # }).unwrap();
/// ```
pub type Result<T, E = ContextError> = std::result::Result<T, E>;

/// Everything that can go wrong in contextkit.
///
/// Each variant has a stable [`code`](ContextError::code) that callers (and the
/// JavaScript package) can branch on; messages name the id and the numbers involved.
/// The fields say the same in structured form: which context (and which
/// recovery point) was not found, which id is not active, and for a storage
/// failure the underlying error, if any, as its [`source`](Error::source).
///
/// ```
/// use contextkit_core::{ContextError, ContextManager, ManagerConfig};
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let err = m.get_context("missing").await.unwrap_err();
/// assert_eq!(err.code(), "NOT_FOUND");
/// assert!(matches!(
///     &err,
///     ContextError::NotFound { id, recovery_point: None } if id == "missing"
/// ));
/// assert_eq!(err.to_string(), "context 'missing' not found");
/// # });
/// ```
///
/// Errors compare equal when their variant and fields are equal, except that a
/// [`Storage`](ContextError::Storage) error compares by its message only (its
/// `source` is not compared).
///
/// Changed since 0.1.0 (a breaking change of the enum's shape; codes and
/// messages are the same): `NotFound { what }` became `NotFound { id, recovery_point }`,
/// `NotActive(String)` became `NotActive { id }` and `Storage(String)` became
/// `Storage { message, source }` (build one with [`storage`](ContextError::storage)
/// or [`storage_from`](ContextError::storage_from)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ContextError {
    /// The context (or the recovery point) does not exist or has expired.
    /// Its message is "context 'a' not found" or "recovery point 3 of
    /// context 'a' not found".
    NotFound {
        /// The context id.
        id: String,
        /// The recovery point that was looked for, if it was one.
        recovery_point: Option<u64>,
    },
    /// A context with this id already exists; creates never overwrite.
    AlreadyExists {
        /// The id that is taken.
        id: String,
    },
    /// A limit was reached: contexts, recovery points or active trackers.
    CapacityExceeded {
        /// Which limit.
        what: String,
        /// The limit in force.
        limit: usize,
    },
    /// A compare-and-set found another version than the caller expected.
    VersionConflict {
        /// The context id.
        id: String,
        /// The version the caller expected.
        expected: u64,
        /// The version that is stored.
        actual: u64,
    },
    /// An argument was rejected (bad id, oversized or non-object data, bad option).
    InvalidArgument(String),
    /// A tracker operation needs an active context and there is none.
    /// Its message is "no active context", or "no active context for 'a'".
    NotActive {
        /// The id that is not active, when the call named one (an adapter's).
        id: Option<String>,
    },
    /// The tracker holds local edits that were neither synced nor discarded.
    UnsyncedChanges {
        /// The active context id.
        id: String,
    },
    /// The storage backend failed.
    ///
    /// ```
    /// use contextkit_core::ContextError;
    /// use std::error::Error;
    /// use std::io;
    /// let cause = io::Error::from(io::ErrorKind::PermissionDenied);
    /// let e = ContextError::storage_from(format!("cannot write a: {cause}"), cause);
    /// let io = e.source().and_then(|s| s.downcast_ref::<io::Error>()).unwrap();
    /// assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
    /// assert_eq!(e, ContextError::storage("cannot write a: permission denied"));
    /// ```
    Storage {
        /// What failed, as the message says after "storage error: ".
        message: String,
        /// The underlying error, when there is one (an `std::io::Error` of a
        /// file storage, a Redis client's error, ...).
        source: Option<Arc<dyn Error + Send + Sync>>,
    },
}

impl ContextError {
    /// The stable, upper-case code of this error, e.g. `"VERSION_CONFLICT"`.
    ///
    /// ```
    /// # use contextkit_core::*;
    /// # futures::executor::block_on(async {
    /// let e = ContextError::VersionConflict { id: "a".into(), expected: 1, actual: 2 };
    /// assert_eq!(e.code(), "VERSION_CONFLICT");
    /// assert!(ContextError::CODES.contains(&e.code()));
    /// # Ok::<(), ContextError>(())
    /// # }).unwrap();
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NOT_FOUND",
            Self::AlreadyExists { .. } => "ALREADY_EXISTS",
            Self::CapacityExceeded { .. } => "CAPACITY_EXCEEDED",
            Self::VersionConflict { .. } => "VERSION_CONFLICT",
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::NotActive { .. } => "NOT_ACTIVE",
            Self::UnsyncedChanges { .. } => "UNSYNCED_CHANGES",
            Self::Storage { .. } => "STORAGE",
        }
    }

    /// Every code this type can return, in declaration order.
    pub const CODES: [&'static str; 8] = [
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "CAPACITY_EXCEEDED",
        "VERSION_CONFLICT",
        "INVALID_ARGUMENT",
        "NOT_ACTIVE",
        "UNSYNCED_CHANGES",
        "STORAGE",
    ];

    /// `NOT_FOUND` of the context `id`.
    ///
    /// ```
    /// use contextkit_core::ContextError;
    /// assert_eq!(ContextError::not_found("a").to_string(), "context 'a' not found");
    /// ```
    pub fn not_found(id: impl Into<String>) -> Self {
        Self::NotFound {
            id: id.into(),
            recovery_point: None,
        }
    }

    /// `NOT_FOUND` of recovery point `recovery_point` of the context `id`.
    ///
    /// ```
    /// use contextkit_core::ContextError;
    /// let e = ContextError::recovery_point_not_found("a", 3);
    /// assert_eq!(e.to_string(), "recovery point 3 of context 'a' not found");
    /// ```
    pub fn recovery_point_not_found(id: impl Into<String>, recovery_point: u64) -> Self {
        Self::NotFound {
            id: id.into(),
            recovery_point: Some(recovery_point),
        }
    }

    /// `STORAGE` with `message` and no underlying error.
    ///
    /// ```
    /// use contextkit_core::ContextError;
    /// let e = ContextError::storage("disk full");
    /// assert_eq!((e.code(), e.to_string()), ("STORAGE", "storage error: disk full".into()));
    /// ```
    pub fn storage(message: impl Into<String>) -> Self {
        Self::Storage {
            message: message.into(),
            source: None,
        }
    }

    /// `STORAGE` with `message` caused by `source`, which
    /// [`Error::source`] returns. The message is not derived from the source:
    /// say what failed, usually with the source's own text.
    pub fn storage_from<E: Error + Send + Sync + 'static>(
        message: impl Into<String>,
        source: E,
    ) -> Self {
        Self::Storage {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    pub(crate) fn capacity(what: impl Into<String>, limit: usize) -> Self {
        Self::CapacityExceeded {
            what: what.into(),
            limit,
        }
    }
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound {
                id,
                recovery_point: None,
            } => write!(f, "context '{id}' not found"),
            Self::NotFound {
                id,
                recovery_point: Some(point),
            } => write!(f, "recovery point {point} of context '{id}' not found"),
            Self::AlreadyExists { id } => write!(f, "context '{id}' already exists"),
            Self::CapacityExceeded { what, limit } => {
                write!(f, "capacity exceeded: {what} (limit {limit})")
            }
            Self::VersionConflict {
                id,
                expected,
                actual,
            } => write!(
                f,
                "version conflict on '{id}': expected {expected}, found {actual}"
            ),
            Self::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Self::NotActive { id: None } => f.write_str("no active context"),
            Self::NotActive { id: Some(id) } => write!(f, "no active context for '{id}'"),
            Self::UnsyncedChanges { id } => write!(f, "context '{id}' has unsynced changes"),
            Self::Storage { message, .. } => write!(f, "storage error: {message}"),
        }
    }
}

// `Display` and `Error` are written by hand: thiserror's `#[source]` on an
// `Option<Arc<dyn Error>>` would return the `Arc` itself as the source, which
// callers cannot downcast to the error inside.
impl Error for ContextError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Storage {
                source: Some(source),
                ..
            } => Some(&**source),
            _ => None,
        }
    }
}

/// Variants and fields compared, except a storage error's `source`.
impl PartialEq for ContextError {
    fn eq(&self, other: &Self) -> bool {
        use ContextError::*;
        match (self, other) {
            (
                NotFound { id, recovery_point },
                NotFound {
                    id: id2,
                    recovery_point: point2,
                },
            ) => (id, recovery_point) == (id2, point2),
            (AlreadyExists { id }, AlreadyExists { id: id2 })
            | (UnsyncedChanges { id }, UnsyncedChanges { id: id2 }) => id == id2,
            (CapacityExceeded { what, limit }, CapacityExceeded { what: w, limit: l }) => {
                (what, limit) == (w, l)
            }
            (
                VersionConflict {
                    id,
                    expected,
                    actual,
                },
                VersionConflict {
                    id: i,
                    expected: e,
                    actual: a,
                },
            ) => (id, expected, actual) == (i, e, a),
            (InvalidArgument(m), InvalidArgument(m2)) => m == m2,
            (NotActive { id }, NotActive { id: id2 }) => id == id2,
            (Storage { message, .. }, Storage { message: m, .. }) => message == m,
            _ => false,
        }
    }
}

impl Eq for ContextError {}

#[cfg(test)]
mod tests;
