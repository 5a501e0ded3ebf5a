//! Fuzz target: sequences of operations on a manager, a tracker, an adapter
//! and the adapter's trackers, checked step by step against the reference
//! model of `tests/evidence` (every result, the events, the stats and the
//! final state). Ids may be any string the fuzzer makes.
#![no_main]

extern crate contextkit_core as contextkit;

#[path = "../../tests/evidence/mod.rs"]
mod evidence;

use arbitrary::{Result, Unstructured};
use contextkit::{AdapterConfig, ConflictPolicy, ManagerConfig, TrackerConfig};
use evidence::driver::check;
use evidence::ops::{Data, Op, Setup};
use libfuzzer_sys::fuzz_target;

fn id(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=19)? {
        0..=15 => ["a", "b", "c", "d"][usize::from(u.int_in_range(0..=3_u8)?)].to_owned(),
        16 => String::new(),
        17 => "toolong".to_owned(),
        _ => u.arbitrary::<String>()?,
    })
}

fn data(u: &mut Unstructured) -> Result<Data> {
    Ok(match u.int_in_range(0..=11)? {
        0..=9 => Data::Small(u.int_in_range(0..=7)?),
        10 => Data::Big,
        _ => Data::NotObject(u.arbitrary()?),
    })
}

fn opt<T>(
    u: &mut Unstructured,
    f: impl FnOnce(&mut Unstructured) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(f(u)?) } else { None })
}

fn adapter_config(u: &mut Unstructured) -> Result<AdapterConfig> {
    Ok(AdapterConfig {
        max_contexts: u.int_in_range(0..=5)?,
        ttl_ms: opt(u, |u| u.int_in_range(0..=60))?,
        auto_cleanup: u.arbitrary()?,
        cleanup_interval_ms: u.int_in_range(0..=40)?,
        max_active_contexts: u.int_in_range(0..=3)?,
    })
}

fn setup(u: &mut Unstructured) -> Result<Setup> {
    let manager = ManagerConfig {
        max_contexts: u.int_in_range(1..=4)?,
        max_recovery_points: u.int_in_range(0..=3)?,
        default_ttl_ms: opt(u, |u| u.int_in_range(1..=80))?,
        max_id_bytes: 4,
        max_data_bytes: 40,
        sliding_ttl: false,
    };
    let conflict = *u.choose(&[
        ConflictPolicy::Reject,
        ConflictPolicy::Overwrite,
        ConflictPolicy::KeepRemote,
    ])?;
    let tracker = TrackerConfig {
        sync_interval_ms: u.int_in_range(0..=30)?,
        auto_recovery: u.arbitrary()?,
        conflict,
    };
    let a = adapter_config(u)?;
    let adapter = AdapterConfig {
        max_contexts: a.max_contexts.max(1),
        ttl_ms: a.ttl_ms.map(|t| t.max(1)),
        cleanup_interval_ms: a.cleanup_interval_ms.max(1),
        max_active_contexts: a.max_active_contexts.max(1),
        ..a
    };
    Ok(Setup {
        manager,
        // One shard: see `Setup::shards`.
        shards: 1,
        tracker,
        adapter,
    })
}

fn version(u: &mut Unstructured) -> Result<Option<u64>> {
    opt(u, |u| u.int_in_range(0..=6))
}

fn op(u: &mut Unstructured) -> Result<Op> {
    Ok(match u.choose_index(38)? {
        0 => Op::Advance(u.int_in_range(0..=40)?),
        1 => Op::Create {
            id: id(u)?,
            data: data(u)?,
            ttl: opt(u, |u| u.int_in_range(0..=60))?,
            meta: u.arbitrary()?,
        },
        2 => Op::Get(id(u)?),
        3 => Op::Update {
            id: id(u)?,
            data: data(u)?,
            expected: version(u)?,
            ttl: opt(u, |u| u.int_in_range(0..=60))?,
        },
        4 => Op::Delete(id(u)?),
        5 => Op::ListIds,
        6 => Op::Len,
        7 => Op::CreateRecoveryPoint(id(u)?),
        8 => Op::RecoveryPoints(id(u)?),
        9 => Op::Restore(id(u)?, u.int_in_range(0..=8)?),
        10 => Op::Cleanup,
        11 => Op::TActivate(id(u)?),
        12 => Op::TDeactivate,
        13 => Op::TDiscard,
        14 => Op::TActiveId,
        15 => Op::TGetState,
        16 => Op::TIsDirty,
        17 => Op::TUpdate(data(u)?),
        18 => Op::TApplyRemote(id(u)?),
        19 => Op::TSync,
        20 => Op::TSyncIfNeeded,
        21 => Op::TIsSyncNeeded,
        22 => Op::TRecoveryPoint,
        23 => Op::ACreate(id(u)?, data(u)?),
        24 => Op::AGet(id(u)?),
        25 => Op::AUpdate(id(u)?, data(u)?, version(u)?),
        26 => Op::ADelete(id(u)?),
        27 => Op::AList,
        28 => Op::ACleanup,
        29 => Op::AGetConfig,
        30 => Op::AUpdateConfig(adapter_config(u)?),
        31 => Op::AActivate(id(u)?),
        32 => Op::ADeactivate(id(u)?),
        33 => Op::AListActive,
        34 => Op::AtUpdate(id(u)?, data(u)?),
        35 => Op::AtSync(id(u)?),
        36 => Op::AtGetState(id(u)?),
        _ => Op::AtActivate(id(u)?),
    })
}

fuzz_target!(|bytes: &[u8]| {
    let mut u = Unstructured::new(bytes);
    let Ok(setup) = setup(&mut u) else { return };
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < 200 {
        match op(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    if let Err(diff) = check(&setup, &ops) {
        panic!("{diff}\nsetup: {setup:?}\nops: {ops:?}");
    }
});
