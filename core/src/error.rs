//! The one error type of contextkit and its stable codes.

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
///
/// ```
/// use contextkit_core::{ContextError, ContextManager, ManagerConfig};
/// # futures::executor::block_on(async {
/// let m = ContextManager::new(ManagerConfig::default());
/// let err = m.get_context("missing").await.unwrap_err();
/// assert_eq!(err.code(), "NOT_FOUND");
/// assert!(matches!(err, ContextError::NotFound { .. }));
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The context (or the recovery point) does not exist or has expired.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `context 'a'`.
        what: String,
    },
    /// A context with this id already exists; creates never overwrite.
    #[error("context '{id}' already exists")]
    AlreadyExists {
        /// The id that is taken.
        id: String,
    },
    /// A limit was reached: contexts, recovery points or active trackers.
    #[error("capacity exceeded: {what} (limit {limit})")]
    CapacityExceeded {
        /// Which limit.
        what: String,
        /// The limit in force.
        limit: usize,
    },
    /// A compare-and-set found another version than the caller expected.
    #[error("version conflict on '{id}': expected {expected}, found {actual}")]
    VersionConflict {
        /// The context id.
        id: String,
        /// The version the caller expected.
        expected: u64,
        /// The version that is stored.
        actual: u64,
    },
    /// An argument was rejected (bad id, oversized or non-object data, bad option).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A tracker operation needs an active context and there is none.
    #[error("no active context{0}")]
    NotActive(String),
    /// The tracker holds local edits that were neither synced nor discarded.
    #[error("context '{id}' has unsynced changes")]
    UnsyncedChanges {
        /// The active context id.
        id: String,
    },
    /// The storage backend failed.
    #[error("storage error: {0}")]
    Storage(String),
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
            Self::NotActive(_) => "NOT_ACTIVE",
            Self::UnsyncedChanges { .. } => "UNSYNCED_CHANGES",
            Self::Storage(_) => "STORAGE",
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

    pub(crate) fn context_not_found(id: &str) -> Self {
        Self::NotFound {
            what: format!("context '{id}'"),
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
