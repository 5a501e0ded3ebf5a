//! The operations of the model-based test and their proptest strategies.

use contextkit::{AdapterConfig, ConflictPolicy, ContextError, ManagerConfig, TrackerConfig};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// JSON data of an operation: valid, too large, or not an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Data {
    Small(u8),
    Big,
    NotObject(u8),
}

impl Data {
    pub fn json(self) -> Value {
        match self {
            Self::Small(n) => json!({ "v": n }),
            Self::Big => json!({ "s": "x".repeat(64) }),
            Self::NotObject(n) => json!([n]),
        }
    }
}

/// The function a modify applies to the current data (deterministic, so the
/// model can apply it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Field `n` + 1 (from 0 when absent).
    Increment,
    /// Field `k` set to this value.
    Set(u8),
    /// An array instead of the data: not a data object.
    NotObject,
    /// The data with a 64-byte string added: over `max_data_bytes`.
    Big,
    /// Refuses with an error of its own (`try_modify_context` only: an
    /// infallible modify cannot refuse).
    Refuse,
}

impl Change {
    pub fn apply(self, data: &Value) -> Result<Value, ContextError> {
        let mut next = data.clone();
        match self {
            Self::Increment => next["n"] = json!(data["n"].as_u64().unwrap_or(0) + 1),
            Self::Set(v) => next["k"] = json!(v),
            Self::NotObject => next = json!([data.clone()]),
            Self::Big => next["s"] = json!("x".repeat(64)),
            Self::Refuse => return Err(ContextError::NotActive { id: None }),
        }
        Ok(next)
    }

    /// Whether it needs `try_modify_context`.
    pub fn fallible(self) -> bool {
        self == Self::Refuse
    }
}

/// Configuration of one case.
#[derive(Debug, Clone)]
pub struct Setup {
    pub manager: ManagerConfig,
    /// Always 1 in the random cases: with several shards, a create at capacity
    /// first sweeps only its own shard, so which expired contexts leave (and
    /// when their `Expired` events come) depends on the id hash.
    pub shards: usize,
    pub tracker: TrackerConfig,
    pub adapter: AdapterConfig,
}

impl Setup {
    /// The settings of the trackers the adapter hands out: the case's tracker
    /// settings (the adapter is built with `with_trackers`) when its sync
    /// interval is odd, else `None` (built with `new`: the defaults). Derived
    /// from the other fields rather than a field of its own, so that the
    /// `ops` fuzz target, which builds a `Setup` field by field, covers it too.
    pub fn adapter_trackers(&self) -> Option<TrackerConfig> {
        (self.tracker.sync_interval_ms % 2 == 1).then_some(self.tracker)
    }
}

/// One call on the manager, the tracker (`T…`), the adapter (`A…`) or the
/// tracker the adapter handed out for an id (`At…`).
#[derive(Debug, Clone)]
pub enum Op {
    Advance(u64),
    Create {
        id: String,
        data: Data,
        ttl: Option<u64>,
        meta: bool,
    },
    Get(String),
    Update {
        id: String,
        data: Data,
        expected: Option<u64>,
        ttl: Option<u64>,
    },
    Delete(String),
    ListIds,
    List,
    Len,
    IsEmpty,
    CreateRecoveryPoint(String),
    RecoveryPoints(String),
    Restore(String, u64),
    /// `modify_context`, or `try_modify_context` when `fallible` (always
    /// for a change that refuses).
    Modify {
        id: String,
        change: Change,
        fallible: bool,
    },
    Touch(String),
    Cleanup,
    TActivate(String),
    TDeactivate,
    TDiscard,
    TActiveId,
    TGetState,
    TIsDirty,
    TUpdate(Data),
    TApplyRemote(String),
    TSync,
    TSyncIfNeeded,
    TIsSyncNeeded,
    TRecoveryPoint,
    ACreate(String, Data),
    AGet(String),
    AUpdate(String, Data, Option<u64>),
    ADelete(String),
    AList,
    ACleanup,
    AGetConfig,
    AUpdateConfig(AdapterConfig),
    AActivate(String),
    ADeactivate(String),
    AListActive,
    AModify {
        id: String,
        change: Change,
        fallible: bool,
    },
    ATouch(String),
    AtUpdate(String, Data),
    AtSync(String),
    AtGetState(String),
    AtActivate(String),
    AtDeactivate(String),
    AtDiscard(String),
    AtActiveId(String),
    AtIsDirty(String),
    /// The handle of the first id is given the stored state of the second.
    AtApplyRemote(String, String),
    AtSyncIfNeeded(String),
    AtIsSyncNeeded(String),
    AtRecoveryPoint(String),
}

pub fn metadata(on: bool) -> BTreeMap<String, String> {
    if on {
        BTreeMap::from([("owner".to_owned(), "ada".to_owned())])
    } else {
        BTreeMap::new()
    }
}

/// Mostly a few valid ids, sometimes an invalid one (empty, too long, control character).
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(String::from),
        1 => prop::sample::select(vec!["", "toolong", "a\nb", "é\u{7}"]).prop_map(String::from),
    ]
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        10 => (0_u8..8).prop_map(Data::Small),
        1 => Just(Data::Big),
        1 => (0_u8..3).prop_map(Data::NotObject),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => Just(Change::Increment),
        3 => (0_u8..8).prop_map(Change::Set),
        1 => Just(Change::NotObject),
        1 => Just(Change::Big),
        1 => Just(Change::Refuse),
    ]
}

/// The id, the change and whether the call is `try_modify_context`.
fn modify() -> impl Strategy<Value = (String, Change, bool)> {
    (id(), change(), any::<bool>())
        .prop_map(|(id, change, fallible)| (id, change, fallible || change.fallible()))
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![3 => Just(None), 3 => (1_u64..60).prop_map(Some), 1 => Just(Some(0))]
}

fn version() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![1 => Just(None), 2 => (0_u64..6).prop_map(Some)]
}

fn adapter_config() -> impl Strategy<Value = AdapterConfig> {
    (
        0_usize..5,
        prop::option::of(0_u64..60),
        any::<bool>(),
        0_u64..40,
        0_usize..3,
    )
        .prop_map(
            |(max_contexts, ttl_ms, auto_cleanup, cleanup_interval_ms, max_active_contexts)| {
                AdapterConfig {
                    max_contexts,
                    ttl_ms,
                    auto_cleanup,
                    cleanup_interval_ms,
                    max_active_contexts,
                }
            },
        )
}

/// A valid starting configuration: small limits so every edge is reached.
pub fn setup() -> impl Strategy<Value = Setup> {
    let manager = (1_usize..5, 0_usize..4, prop::option::of(5_u64..80)).prop_map(
        |(max_contexts, max_recovery_points, default_ttl_ms)| ManagerConfig {
            max_contexts,
            max_recovery_points,
            default_ttl_ms,
            max_id_bytes: 4,
            max_data_bytes: 40,
            sliding_ttl: false,
        },
    );
    let policy = prop::sample::select(vec![
        ConflictPolicy::Reject,
        ConflictPolicy::Overwrite,
        ConflictPolicy::KeepRemote,
    ]);
    let tracker = (0_u64..30, any::<bool>(), policy).prop_map(
        |(sync_interval_ms, auto_recovery, conflict)| TrackerConfig {
            sync_interval_ms,
            auto_recovery,
            conflict,
        },
    );
    let adapter = adapter_config().prop_map(|c| AdapterConfig {
        max_contexts: c.max_contexts.max(1) + 1,
        ttl_ms: c.ttl_ms.map(|t| t.max(1)),
        cleanup_interval_ms: c.cleanup_interval_ms.max(1),
        max_active_contexts: c.max_active_contexts.max(1),
        ..c
    });
    (manager, Just(1_usize), tracker, adapter).prop_map(|(manager, shards, tracker, adapter)| {
        Setup {
            manager,
            shards,
            tracker,
            adapter,
        }
    })
}

pub fn op() -> impl Strategy<Value = Op> {
    let manager = prop_oneof![
        4 => (0_u64..40).prop_map(Op::Advance),
        6 => (id(), data(), ttl(), any::<bool>()).prop_map(|(id, data, ttl, meta)| Op::Create { id, data, ttl, meta }),
        4 => id().prop_map(Op::Get),
        6 => (id(), data(), version(), prop_oneof![4 => Just(None), 1 => ttl()])
            .prop_map(|(id, data, expected, ttl)| Op::Update { id, data, expected, ttl }),
        3 => id().prop_map(Op::Delete),
        1 => Just(Op::ListIds),
        1 => Just(Op::List),
        1 => Just(Op::Len),
        1 => Just(Op::IsEmpty),
        3 => id().prop_map(Op::CreateRecoveryPoint),
        2 => id().prop_map(Op::RecoveryPoints),
        3 => (id(), 1_u64..8).prop_map(|(id, p)| Op::Restore(id, p)),
        4 => modify().prop_map(|(id, change, fallible)| Op::Modify { id, change, fallible }),
        2 => id().prop_map(Op::Touch),
        2 => Just(Op::Cleanup),
    ];
    let tracker = prop_oneof![
        3 => id().prop_map(Op::TActivate),
        1 => Just(Op::TDeactivate),
        1 => Just(Op::TDiscard),
        1 => Just(Op::TActiveId),
        1 => Just(Op::TGetState),
        1 => Just(Op::TIsDirty),
        3 => data().prop_map(Op::TUpdate),
        1 => id().prop_map(Op::TApplyRemote),
        3 => Just(Op::TSync),
        1 => Just(Op::TSyncIfNeeded),
        1 => Just(Op::TIsSyncNeeded),
        1 => Just(Op::TRecoveryPoint),
    ];
    let adapter = prop_oneof![
        3 => (id(), data()).prop_map(|(id, d)| Op::ACreate(id, d)),
        2 => id().prop_map(Op::AGet),
        3 => (id(), data(), version()).prop_map(|(id, d, v)| Op::AUpdate(id, d, v)),
        1 => id().prop_map(Op::ADelete),
        1 => Just(Op::AList),
        1 => Just(Op::ACleanup),
        1 => Just(Op::AGetConfig),
        1 => adapter_config().prop_map(Op::AUpdateConfig),
        2 => id().prop_map(Op::AActivate),
        2 => id().prop_map(Op::ADeactivate),
        1 => Just(Op::AListActive),
        2 => modify().prop_map(|(id, change, fallible)| Op::AModify { id, change, fallible }),
        1 => id().prop_map(Op::ATouch),
        2 => (id(), data()).prop_map(|(id, d)| Op::AtUpdate(id, d)),
        2 => id().prop_map(Op::AtSync),
        1 => id().prop_map(Op::AtGetState),
        1 => id().prop_map(Op::AtActivate),
        1 => id().prop_map(Op::AtDeactivate),
        1 => id().prop_map(Op::AtDiscard),
        1 => id().prop_map(Op::AtActiveId),
        1 => id().prop_map(Op::AtIsDirty),
        1 => (id(), id()).prop_map(|(id, from)| Op::AtApplyRemote(id, from)),
        1 => id().prop_map(Op::AtSyncIfNeeded),
        1 => id().prop_map(Op::AtIsSyncNeeded),
        1 => id().prop_map(Op::AtRecoveryPoint),
    ];
    prop_oneof![5 => manager, 3 => tracker, 3 => adapter]
}
