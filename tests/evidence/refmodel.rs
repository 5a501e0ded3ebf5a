//! A small, obviously-sequential reference model of the manager, its trackers
//! and an adapter, written from the contract that the README ("Semantics
//! worth knowing" and the sections before it) and the rustdoc of
//! `contextkit-core` state: plain maps, no locks, no sharding.
//!
//! Every method returns an [`Out`], the same normalised outcome the driver
//! builds from the real objects, and appends the events it expects.

use contextkit::{AdapterConfig, ConflictPolicy, ContextEvent, ContextState, ManagerConfig};
use contextkit::{Snapshot, Stats, TrackerConfig};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// The outcome of one call, normalised so model and real results compare with `==`.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Unit,
    Err(&'static str),
    /// A version conflict, with the version that was stored.
    Conflict(u64),
    State(ContextState),
    States(Vec<ContextState>),
    Snapshot(Snapshot),
    Snapshots(Vec<Snapshot>),
    Ids(Vec<String>),
    OptId(Option<String>),
    OptState(Option<ContextState>),
    Count(usize),
    Bool(bool),
    Config(AdapterConfig),
    /// The operation does not apply (e.g. no tracker handle for that id).
    Skip,
}

pub type R<T> = Result<T, Out>;

fn err(code: &'static str) -> Out {
    Out::Err(code)
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub state: ContextState,
    pub ttl: Option<u64>,
    pub touched: u64,
    pub snapshots: VecDeque<Snapshot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Deleted,
    Expired,
    Evicted,
}

/// The store: contexts (expired-but-unswept ones included), counters, events.
#[derive(Debug)]
pub struct Store {
    pub cfg: ManagerConfig,
    pub limit: usize,
    pub entries: BTreeMap<String, Entry>,
    pub next_snapshot: u64,
    /// The revision the next commit takes: every create, update, restore and
    /// removal takes one, a recovery point none.
    pub next_revision: u64,
    pub touch: u64,
    pub now: u64,
    pub events: Vec<ContextEvent>,
    pub stats: Stats,
}

impl Store {
    pub fn new(cfg: ManagerConfig, now: u64) -> Self {
        Self {
            limit: cfg.max_contexts,
            cfg,
            entries: BTreeMap::new(),
            next_snapshot: 1,
            next_revision: 1,
            touch: 0,
            now,
            events: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The counters, with the number of stored contexts (expired-but-unswept included).
    pub fn stats(&self) -> Stats {
        Stats {
            contexts: self.entries.len(),
            ..self.stats
        }
    }

    pub fn check_id(&self, id: &str) -> R<()> {
        let bad =
            id.is_empty() || id.len() > self.cfg.max_id_bytes || id.chars().any(char::is_control);
        if bad {
            Err(err("INVALID_ARGUMENT"))
        } else {
            Ok(())
        }
    }

    pub fn check_data(&self, data: &Value) -> R<()> {
        let size = serde_json::to_vec(data).map_or(usize::MAX, |v| v.len());
        if !data.is_object() || size > self.cfg.max_data_bytes {
            return Err(err("INVALID_ARGUMENT"));
        }
        Ok(())
    }

    fn check_ttl(ttl: Option<u64>) -> R<()> {
        if ttl == Some(0) {
            Err(err("INVALID_ARGUMENT"))
        } else {
            Ok(())
        }
    }

    fn expired(&self, e: &Entry) -> bool {
        e.state.expires_at_ms.is_some_and(|at| at <= self.now)
    }

    fn live(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id).filter(|e| !self.expired(e))
    }

    fn take_revision(&mut self) -> u64 {
        self.next_revision += 1;
        self.next_revision - 1
    }

    fn remove(&mut self, id: &str, why: Why) {
        let Some(e) = self.entries.remove(id) else {
            return;
        };
        let (id, version, revision) = (id.to_owned(), e.state.version, self.take_revision());
        let ev = match why {
            Why::Deleted => {
                self.stats.deletes += 1;
                ContextEvent::Deleted {
                    id,
                    version,
                    revision,
                }
            }
            Why::Expired => {
                self.stats.expirations += 1;
                ContextEvent::Expired {
                    id,
                    version,
                    revision,
                }
            }
            Why::Evicted => {
                self.stats.evictions += 1;
                ContextEvent::Evicted {
                    id,
                    version,
                    revision,
                }
            }
        };
        self.events.push(ev);
    }

    /// What a write that meets `id` sees: expired entries are removed first.
    fn live_for_write(&mut self, id: &str) -> R<&mut Entry> {
        if self.entries.get(id).is_some_and(|e| self.expired(e)) {
            self.remove(id, Why::Expired);
        }
        self.entries.get_mut(id).ok_or(err("NOT_FOUND"))
    }

    pub fn sweep(&mut self) -> usize {
        let ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| self.expired(e))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.remove(id, Why::Expired);
        }
        ids.len()
    }

    fn next_touch(&mut self) -> u64 {
        self.touch += 1;
        self.touch
    }

    pub fn create(
        &mut self,
        id: &str,
        data: Value,
        ttl: Option<u64>,
        meta: BTreeMap<String, String>,
    ) -> R<ContextState> {
        self.check_id(id)?;
        self.check_data(&data)?;
        let meta_bytes: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
        if meta_bytes > self.cfg.max_data_bytes {
            return Err(err("INVALID_ARGUMENT"));
        }
        let ttl = ttl.or(self.cfg.default_ttl_ms);
        Self::check_ttl(ttl)?;
        if self.live_for_write(id).is_ok() {
            return Err(err("ALREADY_EXISTS"));
        }
        if self.entries.len() >= self.limit {
            self.sweep();
            if self.entries.len() >= self.limit {
                return Err(err("CAPACITY_EXCEEDED"));
            }
        }
        let now = self.now;
        let revision = self.take_revision();
        let state = ContextState {
            id: id.to_owned(),
            version: 1,
            revision,
            created_at_ms: now,
            updated_at_ms: now,
            expires_at_ms: ttl.map(|t| now.saturating_add(t)),
            data: data.into(),
            metadata: meta,
        };
        let touched = self.next_touch();
        self.entries.insert(
            id.to_owned(),
            Entry {
                state: state.clone(),
                ttl,
                touched,
                snapshots: VecDeque::new(),
            },
        );
        self.stats.creates += 1;
        self.events.push(ContextEvent::Created {
            id: id.to_owned(),
            version: 1,
            revision,
        });
        Ok(state)
    }

    pub fn get(&mut self, id: &str) -> R<ContextState> {
        self.check_id(id)?;
        let found = self.live(id).map(|e| e.state.clone());
        if found.is_some() {
            self.stats.hits += 1
        } else {
            self.stats.misses += 1
        }
        self.stats.reads += 1;
        found.ok_or(err("NOT_FOUND"))
    }

    /// Installs the next version with `data`, restarting the expiry.
    fn commit(&mut self, id: &str, data: Value) -> ContextState {
        let (now, touched) = (self.now, self.next_touch());
        let revision = self.take_revision();
        let e = self.entries.get_mut(id).expect("committing a live entry");
        let prev = &e.state;
        let state = ContextState {
            version: prev.version + 1,
            revision,
            updated_at_ms: now.max(prev.updated_at_ms),
            expires_at_ms: e.ttl.map(|t| now.saturating_add(t)),
            data: data.into(),
            ..prev.clone()
        };
        e.state = state.clone();
        e.touched = touched;
        self.stats.updates += 1;
        state
    }

    pub fn update(
        &mut self,
        id: &str,
        data: Value,
        expected: Option<u64>,
        ttl: Option<u64>,
    ) -> R<ContextState> {
        self.update_at(id, data, expected, None, ttl)
    }

    /// An update that may also expect the state committed at `revision` (a
    /// tracker's sync: a version repeats after a delete and a create).
    pub fn update_at(
        &mut self,
        id: &str,
        data: Value,
        expected: Option<u64>,
        revision: Option<u64>,
        ttl: Option<u64>,
    ) -> R<ContextState> {
        self.check_id(id)?;
        self.check_data(&data)?;
        Self::check_ttl(ttl)?;
        let e = self.live_for_write(id)?;
        let actual = e.state.version;
        // Versions, unless they match and only the revision differs: then
        // the conflict names revisions.
        let conflict = if expected.is_some_and(|v| v != actual) {
            Some(actual)
        } else {
            revision
                .filter(|&r| r != e.state.revision)
                .map(|_| e.state.revision)
        };
        if let Some(actual) = conflict {
            self.stats.conflicts += 1;
            return Err(Out::Conflict(actual));
        }
        if ttl.is_some() {
            e.ttl = ttl;
        }
        let state = self.commit(id, data);
        self.events.push(ContextEvent::Updated {
            id: id.to_owned(),
            version: state.version,
            revision: state.revision,
        });
        Ok(state)
    }

    /// An update to `f` of the current data, decided on it in one step: no
    /// expected version, the context's own TTL restarted.
    pub fn modify(&mut self, id: &str, f: impl FnOnce(&Value) -> R<Value>) -> R<ContextState> {
        self.check_id(id)?;
        let data = f(&self.live_for_write(id)?.state.data)?;
        self.check_data(&data)?;
        let state = self.commit(id, data);
        self.events.push(ContextEvent::Updated {
            id: id.to_owned(),
            version: state.version,
            revision: state.revision,
        });
        Ok(state)
    }

    /// The expiry restarts from now with the context's TTL; nothing else
    /// changes (no version, revision, event, counter or eviction order).
    pub fn touch(&mut self, id: &str) -> R<ContextState> {
        self.check_id(id)?;
        let now = self.now;
        let e = self.live_for_write(id)?;
        e.state.expires_at_ms = e.ttl.map(|t| now.saturating_add(t));
        Ok(e.state.clone())
    }

    pub fn delete(&mut self, id: &str) -> R<()> {
        self.check_id(id)?;
        self.live_for_write(id)?;
        self.remove(id, Why::Deleted);
        Ok(())
    }

    pub fn live_states(&self) -> Vec<ContextState> {
        self.entries
            .values()
            .filter(|e| !self.expired(e))
            .map(|e| e.state.clone())
            .collect()
    }

    pub fn create_recovery_point(&mut self, id: &str) -> R<Snapshot> {
        self.check_id(id)?;
        let max = self.cfg.max_recovery_points;
        if max == 0 {
            return Err(err("CAPACITY_EXCEEDED"));
        }
        let (now, snapshot_id) = (self.now, self.next_snapshot);
        let e = self.live_for_write(id)?;
        let snap = Snapshot {
            id: snapshot_id,
            context_id: id.to_owned(),
            version: e.state.version,
            created_at_ms: now,
            data: e.state.data.clone(),
        };
        e.snapshots.push_back(snap.clone());
        while e.snapshots.len() > max {
            e.snapshots.pop_front();
        }
        self.next_snapshot += 1;
        Ok(snap)
    }

    pub fn recovery_points(&self, id: &str) -> R<Vec<Snapshot>> {
        self.check_id(id)?;
        let e = self.live(id).ok_or(err("NOT_FOUND"))?;
        Ok(e.snapshots.iter().cloned().collect())
    }

    pub fn restore(&mut self, id: &str, snapshot_id: u64) -> R<ContextState> {
        self.check_id(id)?;
        let e = self.live(id).ok_or(err("NOT_FOUND"))?;
        let p = e
            .snapshots
            .iter()
            .find(|p| p.id == snapshot_id)
            .ok_or(err("NOT_FOUND"))?;
        let data = p.data.value().clone();
        let state = self.commit(id, data);
        self.events.push(ContextEvent::Restored {
            id: id.to_owned(),
            version: state.version,
            revision: state.revision,
        });
        Ok(state)
    }

    /// Sweeps, then evicts the least recently written contexts over the limit.
    pub fn evict_to_capacity(&mut self) -> usize {
        self.sweep();
        let excess = self.entries.len().saturating_sub(self.limit);
        let mut by_age: Vec<(u64, String)> = self
            .entries
            .iter()
            .map(|(id, e)| (e.touched, id.clone()))
            .collect();
        by_age.sort();
        for (_, id) in by_age.iter().take(excess) {
            self.remove(id, Why::Evicted);
        }
        excess
    }
}

/// A tracker's working copy.
#[derive(Debug, Clone)]
pub struct Active {
    pub base: ContextState,
    pub local: Option<Value>,
    pub last_sync: u64,
}

#[derive(Debug, Clone)]
pub struct Tracker {
    pub cfg: TrackerConfig,
    pub active: Option<Active>,
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        Self { cfg, active: None }
    }

    fn active(&mut self) -> R<&mut Active> {
        self.active.as_mut().ok_or(err("NOT_ACTIVE"))
    }

    pub fn copy(&self) -> Option<ContextState> {
        self.active.as_ref().map(|a| match &a.local {
            None => a.base.clone(),
            Some(d) => ContextState {
                data: d.clone().into(),
                ..a.base.clone()
            },
        })
    }

    pub fn dirty(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.local.is_some())
    }

    pub fn activate(&mut self, store: &mut Store, id: &str) -> R<ContextState> {
        let state = store.get(id)?;
        if self.dirty() {
            return Err(err("UNSYNCED_CHANGES"));
        }
        self.active = Some(Active {
            base: state.clone(),
            local: None,
            last_sync: store.now,
        });
        Ok(state)
    }

    pub fn deactivate(&mut self) -> R<()> {
        if self.active()?.local.is_some() {
            return Err(err("UNSYNCED_CHANGES"));
        }
        self.active = None;
        Ok(())
    }

    pub fn discard(&mut self) -> R<ContextState> {
        let a = self.active()?;
        a.local = None;
        Ok(a.base.clone())
    }

    pub fn update_state(&mut self, store: &Store, data: Value) -> R<ContextState> {
        store.check_data(&data)?;
        self.active()?.local = Some(data);
        Ok(self.copy().expect("active"))
    }

    pub fn apply_remote(&mut self, state: ContextState) -> bool {
        match self.active.as_mut() {
            // Newer by revision (a context created again is newer at a lower
            // version); by version for states stored before revisions.
            Some(a)
                if a.local.is_none()
                    && a.base.id == state.id
                    && if a.base.revision == 0 || state.revision == 0 {
                        state.version > a.base.version
                    } else {
                        state.revision > a.base.revision
                    } =>
            {
                a.base = state;
                true
            }
            _ => false,
        }
    }

    pub fn sync(&mut self, store: &mut Store) -> R<ContextState> {
        let a = self.active()?.clone();
        let Some(local) = a.local else {
            return Ok(a.base);
        };
        let id = a.base.id.clone();
        let revision = Some(a.base.revision).filter(|&r| r != 0);
        let pushed = match store.update_at(&id, local.clone(), Some(a.base.version), revision, None)
        {
            Err(Out::Conflict(actual)) => match self.cfg.conflict {
                ConflictPolicy::Reject => return Err(Out::Conflict(actual)),
                ConflictPolicy::Overwrite => store.update(&id, local, None, None)?,
                ConflictPolicy::KeepRemote => {
                    // Drop the local edits and adopt what is stored, whatever its version
                    // (a context deleted and created again starts over at version 1).
                    let remote = store.get(&id)?;
                    let now = store.now;
                    let a = self.active()?;
                    a.base = remote.clone();
                    a.local = None;
                    a.last_sync = now;
                    return Ok(remote);
                }
            },
            other => other?,
        };
        let now = store.now;
        let a = self.active()?;
        // What it pushed is its new base, whatever the version (a context
        // deleted and created again starts over at version 1).
        a.base = pushed.clone();
        a.local = None;
        a.last_sync = now;
        // The push committed: a recovery point that cannot be taken
        // (`max_recovery_points` is 0) does not fail the sync.
        if self.cfg.auto_recovery {
            let _ = store.create_recovery_point(&id);
        }
        Ok(pushed)
    }

    pub fn sync_needed(&self, now: u64) -> bool {
        self.active.as_ref().is_some_and(|a| {
            a.local.is_some() && now.saturating_sub(a.last_sync) >= self.cfg.sync_interval_ms
        })
    }
}

/// An adapter over the store: its config, its auto-cleanup clock and its trackers.
#[derive(Debug)]
pub struct Adapter {
    pub cfg: AdapterConfig,
    /// The settings of the trackers it hands out.
    pub tracker_cfg: TrackerConfig,
    pub last_cleanup: u64,
    /// The latest tracker handed out per id, and whether it was released.
    pub trackers: BTreeMap<String, (Tracker, bool)>,
}

impl Adapter {
    pub fn new(store: &mut Store, cfg: AdapterConfig, tracker_cfg: TrackerConfig) -> Self {
        store.limit = cfg.max_contexts.min(store.cfg.max_contexts);
        Self {
            cfg,
            tracker_cfg,
            last_cleanup: store.now,
            trackers: BTreeMap::new(),
        }
    }

    pub fn maybe_cleanup(&mut self, store: &mut Store) {
        if self.cfg.auto_cleanup
            && store.now.saturating_sub(self.last_cleanup) >= self.cfg.cleanup_interval_ms
        {
            self.last_cleanup = store.now;
            store.sweep();
        }
    }

    pub fn cleanup(&mut self, store: &mut Store) -> usize {
        self.last_cleanup = store.now;
        store.sweep()
    }

    pub fn update_config(&mut self, store: &mut Store, cfg: AdapterConfig) -> R<usize> {
        let bad = cfg.max_contexts == 0
            || cfg.max_active_contexts == 0
            || cfg.cleanup_interval_ms == 0
            || cfg.ttl_ms == Some(0);
        if bad {
            return Err(err("INVALID_ARGUMENT"));
        }
        self.cfg = cfg;
        store.limit = cfg.max_contexts.min(store.cfg.max_contexts);
        Ok(store.evict_to_capacity())
    }

    pub fn active_ids(&self) -> Vec<String> {
        self.trackers
            .iter()
            .filter(|(_, (_, released))| !released)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// `Ok(true)` when the id was already active (the same tracker is returned).
    pub fn activate(&mut self, store: &mut Store, id: &str) -> R<bool> {
        if self.trackers.get(id).is_some_and(|(_, released)| !released) {
            return Ok(true);
        }
        let state = store.get(id)?;
        if self.active_ids().len() >= self.cfg.max_active_contexts {
            return Err(err("CAPACITY_EXCEEDED"));
        }
        let mut t = Tracker::new(self.tracker_cfg);
        t.active = Some(Active {
            base: state,
            local: None,
            last_sync: store.now,
        });
        self.trackers.insert(id.to_owned(), (t, false));
        Ok(false)
    }

    /// The tracker handed out for `id` deactivates itself: released if it succeeds.
    pub fn tracker_deactivate(&mut self, id: &str) -> Option<R<()>> {
        let (t, released) = self.trackers.get_mut(id)?;
        let done = t.deactivate();
        if done.is_ok() {
            *released = true;
        }
        Some(done)
    }

    pub fn deactivate(&mut self, id: &str) -> R<()> {
        let (t, released) = self
            .trackers
            .get_mut(id)
            .filter(|(_, r)| !r)
            .ok_or(err("NOT_ACTIVE"))?;
        t.deactivate()?;
        *released = true;
        Ok(())
    }
}
