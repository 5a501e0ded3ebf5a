//! A linearizability checker (Wing & Gong's search with Lowe's memoization)
//! and the sequential specification of the manager it checks histories against.
//!
//! A history is a list of completed calls, each with its invocation and
//! response order and the clock values seen just before and just after it.
//! The checker searches for an order of the calls that respects real time
//! (a call that returned before another began comes first) and in which each
//! call, applied to the specification, gives the result it really gave.
//!
//! Time: clock advances are calls in the history too. Each call acts with one
//! clock reading, taken between its invocation and the moment it takes effect
//! (so at most the clock at that moment), and the readings never go back along
//! the order: a call that comes later never uses an earlier time than one
//! before it. A store that read its clock before waiting for a lock, and then
//! committed after a call that used a later time, breaks that.
//!
//! Expired contexts are invisible, yet they stay stored until a write meets
//! them or a sweep removes them, and `cleanup_expired` counts what it removes.
//! A create that finds the store full drops expired contexts before its final
//! attempt: its own id's on a failed attempt, or all of them in a sweep. The
//! search lets a create that is in progress take those steps at any moment
//! before it takes effect (no other call can observe them except through
//! cleanup's count). Such a step reads the clock at that moment, and that is
//! the create's one reading: it then takes effect with no earlier one.

use std::collections::HashSet;

/// Ids are small numbers; the store sees them as `"k0"`, `"k1"`, …
pub const IDS: usize = 3;
/// `max_contexts` of the store under test.
pub const CAPACITY: usize = 2;
/// `max_recovery_points` of the store under test.
pub const SNAPSHOTS: usize = 2;
/// What [`Op::Modify`] adds to the tag: its function maps `{ "w": w }` to
/// `{ "w": w + MODIFY_STEP }`. Tags a workload gives its calls stay below it,
/// so a tag reads as "the write of tag % step, then tag / step modifies".
pub const MODIFY_STEP: u32 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create {
        id: u8,
        ttl: Option<u64>,
        tag: u32,
    },
    Get(u8),
    Update {
        id: u8,
        tag: u32,
        expected: Option<u64>,
    },
    Delete(u8),
    Snapshot(u8),
    Restore(u8, u64),
    /// `modify_context` with a function adding [`MODIFY_STEP`] to the tag:
    /// it must act on the data of the write just before it in the order, so
    /// two modifies never both build on the same data.
    Modify(u8),
    /// `touch_context`: the expiry restarts from the call's clock reading,
    /// with the same version and tag.
    Touch(u8),
    Cleanup,
    /// The clock was set to this value.
    Advance(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Out {
    State {
        version: u64,
        tag: u32,
        expires: Option<u64>,
    },
    Snapshot {
        id: u64,
        version: u64,
    },
    Unit,
    Count(usize),
    Conflict(u64),
    Err(&'static str),
}

/// One completed call.
#[derive(Debug, Clone)]
pub struct Rec {
    pub op: Op,
    pub out: Out,
    /// Position of the invocation and of the response in one global order.
    pub inv: u64,
    pub resp: u64,
    /// The clock just before the call and just after it returned.
    pub clock_inv: u64,
    pub clock_resp: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Entry {
    version: u64,
    tag: u32,
    expires: Option<u64>,
    ttl: Option<u64>,
    /// (snapshot id, tag of the data it holds), oldest first.
    snapshots: Vec<(u64, u32)>,
}

impl Entry {
    fn expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

/// The specification's state: stored contexts (expired-but-unswept ones too),
/// the next recovery point id and the clock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spec {
    entries: [Option<Entry>; IDS],
    next_snapshot: u64,
    clock: u64,
    /// The latest clock reading a call in the order so far acted with.
    used: u64,
}

impl Spec {
    pub fn new(clock: u64) -> Self {
        Self {
            entries: Default::default(),
            next_snapshot: 1,
            clock,
            used: clock,
        }
    }

    fn count(&self) -> usize {
        self.entries.iter().flatten().count()
    }

    fn sweep(&mut self, now: u64) -> usize {
        let mut n = 0;
        for slot in &mut self.entries {
            if slot.as_ref().is_some_and(|e| e.expired(now)) {
                *slot = None;
                n += 1;
            }
        }
        n
    }

    /// The live entry, after removing it if it has expired (what writes do).
    fn live_for_write(&mut self, id: u8, now: u64) -> Option<&mut Entry> {
        let slot = &mut self.entries[usize::from(id)];
        if slot.as_ref().is_some_and(|e| e.expired(now)) {
            *slot = None;
        }
        slot.as_mut()
    }

    fn next_version(e: &mut Entry, tag: u32, now: u64) -> Out {
        e.version += 1;
        e.tag = tag;
        e.expires = e.ttl.map(|t| now + t);
        Out::State {
            version: e.version,
            tag,
            expires: e.expires,
        }
    }

    /// Every (state, result) the call can lead to at time `now`.
    fn apply(&self, op: Op, now: u64) -> Vec<(Spec, Out)> {
        let mut s = self.clone();
        let nf = Out::Err("NOT_FOUND");
        let out = match op {
            Op::Create { id, ttl, tag } => {
                if s.live_for_write(id, now).is_some() {
                    Out::Err("ALREADY_EXISTS")
                } else if s.count() >= CAPACITY && {
                    s.sweep(now);
                    s.count() >= CAPACITY
                } {
                    Out::Err("CAPACITY_EXCEEDED")
                } else {
                    let expires = ttl.map(|t| now + t);
                    s.entries[usize::from(id)] = Some(Entry {
                        version: 1,
                        tag,
                        expires,
                        ttl,
                        snapshots: Vec::new(),
                    });
                    Out::State {
                        version: 1,
                        tag,
                        expires,
                    }
                }
            }
            Op::Get(id) => match &s.entries[usize::from(id)] {
                Some(e) if !e.expired(now) => Out::State {
                    version: e.version,
                    tag: e.tag,
                    expires: e.expires,
                },
                _ => nf,
            },
            Op::Update { id, tag, expected } => match s.live_for_write(id, now) {
                None => nf,
                Some(e) if expected.is_some_and(|v| v != e.version) => Out::Conflict(e.version),
                Some(e) => Self::next_version(e, tag, now),
            },
            Op::Delete(id) => match s.live_for_write(id, now) {
                None => nf,
                Some(_) => {
                    s.entries[usize::from(id)] = None;
                    Out::Unit
                }
            },
            Op::Snapshot(id) => {
                let sid = s.next_snapshot;
                match s.live_for_write(id, now) {
                    None => nf,
                    Some(e) => {
                        e.snapshots.push((sid, e.tag));
                        if e.snapshots.len() > SNAPSHOTS {
                            e.snapshots.remove(0);
                        }
                        let version = e.version;
                        s.next_snapshot += 1;
                        Out::Snapshot { id: sid, version }
                    }
                }
            }
            Op::Restore(id, sid) => {
                let slot = &self.entries[usize::from(id)];
                if slot.as_ref().is_some_and(|e| e.expired(now)) {
                    // Found expired by the read (nothing removed) or by the write (removed).
                    let mut swept = self.clone();
                    swept.entries[usize::from(id)] = None;
                    return vec![(self.clone(), nf), (swept, nf)];
                }
                match s.entries[usize::from(id)].as_mut() {
                    None => nf,
                    Some(e) => match e.snapshots.iter().find(|p| p.0 == sid) {
                        None => nf,
                        Some(&(_, tag)) => Self::next_version(e, tag, now),
                    },
                }
            }
            Op::Modify(id) => match s.live_for_write(id, now) {
                None => nf,
                Some(e) => {
                    let tag = e.tag.wrapping_add(MODIFY_STEP);
                    Self::next_version(e, tag, now)
                }
            },
            Op::Touch(id) => match s.live_for_write(id, now) {
                None => nf,
                Some(e) => {
                    e.expires = e.ttl.map(|t| now + t);
                    Out::State {
                        version: e.version,
                        tag: e.tag,
                        expires: e.expires,
                    }
                }
            },
            Op::Cleanup => Out::Count(s.sweep(now)),
            Op::Advance(to) => {
                s.clock = to;
                Out::Unit
            }
        };
        vec![(s, out)]
    }

    /// What a create of `id` still in progress may already have done at the
    /// current clock: drop its own id's expired context, or sweep them all.
    /// Either step reads the clock, so it raises `used`: the create (and every
    /// call after it in the order) then acts with a reading no earlier than
    /// the one the step used; one call, one reading.
    fn create_side_steps(&self, id: u8) -> Vec<Spec> {
        let now = self.clock;
        let mut own = self.clone();
        own.live_for_write(id, now);
        let mut all = self.clone();
        all.sweep(now);
        [own, all]
            .into_iter()
            .filter(|s| s.entries != self.entries)
            .map(|mut s| {
                s.used = s.used.max(now);
                s
            })
            .collect()
    }

    /// The states after `rec` that give its real result.
    fn step(&self, rec: &Rec) -> Vec<Spec> {
        let mut next: Vec<Spec> = Vec::new();
        if let Op::Advance(_) = rec.op {
            for (s, _) in self.apply(rec.op, self.clock) {
                next.push(s);
            }
            return next;
        }
        if !(rec.clock_inv..=rec.clock_resp).contains(&self.clock) {
            return next;
        }
        // Any reading from the later of its invocation's and the last one
        // used, up to the clock now.
        for now in rec.clock_inv.max(self.used)..=self.clock {
            for (mut s, out) in self.apply(rec.op, now) {
                s.used = now;
                if out == rec.out && !next.contains(&s) {
                    next.push(s);
                }
            }
        }
        next
    }
}

/// Why a history was not accepted.
#[derive(Debug)]
pub enum Verdict {
    Linearizable,
    Violation(String),
    /// The search gave up after this many states (never seen at the sizes used).
    TooHard(usize),
}

const BUDGET: usize = 5_000_000;

/// Searches for a linearization of `history` (at most 128 calls).
pub fn check(history: &[Rec], start_clock: u64) -> Verdict {
    assert!(history.len() <= 128, "the checker takes at most 128 calls");
    let mut search = Search {
        history,
        seen: HashSet::new(),
        deepest: 0,
    };
    let all = if history.len() == 128 {
        u128::MAX
    } else {
        (1_u128 << history.len()) - 1
    };
    match search.dfs(0, Spec::new(start_clock), all) {
        Some(true) => Verdict::Linearizable,
        Some(false) => Verdict::Violation(describe(history, search.deepest)),
        None => Verdict::TooHard(search.seen.len()),
    }
}

struct Search<'h> {
    history: &'h [Rec],
    seen: HashSet<(u128, Spec)>,
    deepest: u32,
}

impl Search<'_> {
    /// `Some(found)`, or `None` when over budget.
    fn dfs(&mut self, done: u128, state: Spec, all: u128) -> Option<bool> {
        if done == all {
            return Some(true);
        }
        self.deepest = self.deepest.max(done.count_ones());
        if self.seen.len() > BUDGET {
            return None;
        }
        if !self.seen.insert((done, state.clone())) {
            return Some(false);
        }
        let pending = || (0..self.history.len()).filter(move |i| done & (1 << i) == 0);
        let first_resp = pending()
            .map(|i| self.history[i].resp)
            .min()
            .unwrap_or(u64::MAX);
        let ready: Vec<usize> = pending()
            .filter(|&i| self.history[i].inv < first_resp)
            .collect();
        for &i in &ready {
            let rec = &self.history[i];
            let in_progress = (rec.clock_inv..=rec.clock_resp).contains(&state.clock);
            if let (Op::Create { id, .. }, true) = (rec.op, in_progress) {
                for next in state.create_side_steps(id) {
                    if self.dfs(done, next, all)? {
                        return Some(true);
                    }
                }
            }
        }
        for i in ready {
            for next in state.step(&self.history[i]) {
                if self.dfs(done | (1 << i), next, all)? {
                    return Some(true);
                }
            }
        }
        Some(false)
    }
}

fn describe(history: &[Rec], deepest: u32) -> String {
    let mut calls: Vec<&Rec> = history.iter().collect();
    calls.sort_by_key(|r| r.inv);
    let mut s = format!(
        "no linearization of {} calls (longest prefix {deepest}):\n",
        history.len()
    );
    for r in calls {
        s += &format!(
            "  [{:>3}..{:>3}] clock {}..{}  {:?} -> {:?}\n",
            r.inv, r.resp, r.clock_inv, r.clock_resp, r.op, r.out
        );
    }
    s
}
