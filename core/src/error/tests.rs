use super::ContextError;
use crate::{AdapterConfig, ContextAdapter, ContextManager, ContextTracker, ManagerConfig};
use futures::executor::block_on;
use serde_json::json;
use std::error::Error;
use std::io;

#[test]
fn every_variant_keeps_its_message_and_code() {
    let cases = [
        (
            ContextError::not_found("a"),
            "context 'a' not found",
            "NOT_FOUND",
        ),
        (
            ContextError::recovery_point_not_found("a", 3),
            "recovery point 3 of context 'a' not found",
            "NOT_FOUND",
        ),
        (
            ContextError::AlreadyExists { id: "a".into() },
            "context 'a' already exists",
            "ALREADY_EXISTS",
        ),
        (
            ContextError::capacity("contexts", 10),
            "capacity exceeded: contexts (limit 10)",
            "CAPACITY_EXCEEDED",
        ),
        (
            ContextError::VersionConflict {
                id: "a".into(),
                expected: 3,
                actual: 4,
            },
            "version conflict on 'a': expected 3, found 4",
            "VERSION_CONFLICT",
        ),
        (
            ContextError::invalid("context id must not be empty"),
            "invalid argument: context id must not be empty",
            "INVALID_ARGUMENT",
        ),
        (
            ContextError::NotActive { id: None },
            "no active context",
            "NOT_ACTIVE",
        ),
        (
            ContextError::NotActive {
                id: Some("a".into()),
            },
            "no active context for 'a'",
            "NOT_ACTIVE",
        ),
        (
            ContextError::UnsyncedChanges { id: "a".into() },
            "context 'a' has unsynced changes",
            "UNSYNCED_CHANGES",
        ),
        (
            ContextError::storage("disk full"),
            "storage error: disk full",
            "STORAGE",
        ),
        (
            ContextError::storage_from("cannot write a: denied", io::Error::other("denied")),
            "storage error: cannot write a: denied",
            "STORAGE",
        ),
    ];
    for (err, message, code) in cases {
        assert_eq!((err.to_string(), err.code()), (message.to_owned(), code));
    }
}

#[test]
fn a_storage_error_has_its_cause_as_source() {
    let cause = io::Error::from(io::ErrorKind::PermissionDenied);
    let err = ContextError::storage_from("cannot write", cause);
    let source = err.source().expect("a source");
    let io = source.downcast_ref::<io::Error>().expect("the io::Error");
    assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
    // Clones share it.
    let clone = err.clone();
    let again = clone.source().and_then(|s| s.downcast_ref::<io::Error>());
    assert_eq!(
        again.map(io::Error::kind),
        Some(io::ErrorKind::PermissionDenied)
    );
}

#[test]
fn only_a_storage_error_with_a_cause_has_a_source() {
    assert!(ContextError::storage("disk full").source().is_none());
    assert!(ContextError::not_found("a").source().is_none());
    assert!(ContextError::NotActive { id: None }.source().is_none());
}

#[test]
fn storage_errors_compare_by_message() {
    let with_cause = ContextError::storage_from("disk full", io::Error::other("ENOSPC"));
    assert_eq!(with_cause, ContextError::storage("disk full"));
    assert_ne!(with_cause, ContextError::storage("disk gone"));
    assert_ne!(
        ContextError::not_found("a"),
        ContextError::recovery_point_not_found("a", 1)
    );
    assert_ne!(
        ContextError::NotActive { id: None },
        ContextError::NotActive {
            id: Some("a".into())
        }
    );
    assert_ne!(ContextError::not_found("a"), ContextError::storage("a"));
}

#[test]
fn not_found_names_the_context_and_the_recovery_point() {
    block_on(async {
        let m = ContextManager::new(ManagerConfig::default());
        let missing = m.get_context("gone").await.unwrap_err();
        assert!(matches!(
            &missing,
            ContextError::NotFound { id, recovery_point: None } if id == "gone"
        ));
        m.create_context("a", json!({})).await.unwrap();
        let point = m.restore_recovery_point("a", 7).await.unwrap_err();
        assert_eq!(point, ContextError::recovery_point_not_found("a", 7));
        assert!(matches!(
            &point,
            ContextError::NotFound { id, recovery_point: Some(7) } if id == "a"
        ));
        // A missing context is reported as such, whichever point was asked for.
        let both = m.restore_recovery_point("gone", 7).await.unwrap_err();
        assert_eq!(both, ContextError::not_found("gone"));
    });
}

#[test]
fn not_active_names_the_id_an_adapter_call_gave() {
    block_on(async {
        let m = ContextManager::new(ManagerConfig::default());
        let tracker = ContextTracker::new(m.clone(), Default::default());
        let none = tracker.get_state().await.unwrap_err();
        assert_eq!(none, ContextError::NotActive { id: None });
        let adapter = ContextAdapter::new(m, AdapterConfig::default());
        let named = adapter.deactivate_context("a").await.unwrap_err();
        assert_eq!(
            named,
            ContextError::NotActive {
                id: Some("a".into())
            }
        );
    });
}

#[test]
fn config_messages_name_the_rust_fields() {
    let refused = |cfg: ManagerConfig| ContextManager::try_new(cfg).err().map(|e| e.to_string());
    let base = ManagerConfig::default;
    let cases = [
        (
            ManagerConfig {
                max_contexts: 0,
                ..base()
            },
            "invalid argument: max_contexts must be at least 1",
        ),
        (
            ManagerConfig {
                max_data_bytes: 1,
                ..base()
            },
            "invalid argument: max_data_bytes must be at least 2 (the size of {})",
        ),
    ];
    for (cfg, message) in cases {
        assert_eq!(refused(cfg).as_deref(), Some(message));
    }
    let adapter = |cfg: AdapterConfig| {
        let m = ContextManager::new(ManagerConfig::default());
        ContextAdapter::try_new(m, cfg).err().map(|e| e.to_string())
    };
    assert_eq!(
        adapter(AdapterConfig {
            max_active_contexts: 0,
            ..AdapterConfig::default()
        })
        .as_deref(),
        Some("invalid argument: max_active_contexts must be at least 1")
    );
    assert_eq!(
        adapter(AdapterConfig {
            cleanup_interval_ms: 0,
            ..AdapterConfig::default()
        })
        .as_deref(),
        Some("invalid argument: cleanup_interval_ms must be at least 1")
    );
}
