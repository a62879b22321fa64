//! The id table alone against a `HashMap` model (the `ids` fuzz target):
//! stale ids are always rejected, a slot's generations strictly increase,
//! and no two live ids alias.

use std::collections::HashMap;

use arbitrary::{Arbitrary, Unstructured};
use tether_core::{ChannelId, IdError, IdTable};

/// One operation on the table.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum IdOp {
    /// Insert a value.
    Insert,
    /// Remove the live id at `pick % live`.
    Remove {
        /// Which.
        pick: u16,
    },
    /// Look up the live id at `pick % live`.
    Get {
        /// Which.
        pick: u16,
    },
    /// Look up (and try to remove) a dead id at `pick % dead`.
    Stale {
        /// Which.
        pick: u16,
    },
    /// Look up a made-up id.
    Forged {
        /// Raw id bits.
        raw: u64,
    },
}

/// What the model found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("id table step {step}: {message}")]
pub struct IdViolation {
    /// The op index.
    pub step: usize,
    /// What went wrong.
    pub message: String,
}

/// The model: live ids and values, dead ids, last generation per slot.
#[derive(Debug, Default)]
struct IdModel {
    live: HashMap<ChannelId, u32>,
    order: Vec<ChannelId>,
    dead: Vec<ChannelId>,
    generations: HashMap<u32, u32>,
    next_value: u32,
}

/// Runs `ops` against a fresh table (shard 3) and the model.
pub fn check_ids(ops: &[IdOp]) -> Result<(), IdViolation> {
    let mut table: IdTable<u32> = IdTable::new(3);
    let mut m = IdModel::default();
    for (step, op) in ops.iter().enumerate() {
        let fail = |message: String| Err(IdViolation { step, message });
        match *op {
            IdOp::Insert => {
                let value = m.next_value;
                m.next_value += 1;
                let Ok(id) = table.insert(value) else {
                    return fail("table full after a few inserts".into());
                };
                if id.shard() != 3 {
                    return fail(format!("{id} has the wrong shard"));
                }
                if m.live.keys().any(|l| l.slot() == id.slot()) {
                    return fail(format!("{id} aliases a live id on slot {}", id.slot()));
                }
                let last = m
                    .generations
                    .insert(id.slot(), id.generation())
                    .unwrap_or(0);
                if id.generation() <= last {
                    return fail(format!("{id}: generation not above {last}"));
                }
                m.live.insert(id, value);
                m.order.push(id);
            }
            IdOp::Remove { pick } | IdOp::Get { pick } => {
                if m.order.is_empty() {
                    continue;
                }
                let i = usize::from(pick) % m.order.len();
                let id = m.order[i];
                let want = m.live[&id];
                if let IdOp::Remove { .. } = op {
                    if table.remove(id) != Ok(want) {
                        return fail(format!("remove {id} did not return {want}"));
                    }
                    m.live.remove(&id);
                    m.order.remove(i);
                    m.dead.push(id);
                } else if table.get(id) != Ok(&want) {
                    return fail(format!("get {id} did not return {want}"));
                }
            }
            IdOp::Stale { pick } => {
                if m.dead.is_empty() {
                    continue;
                }
                let id = m.dead[usize::from(pick) % m.dead.len()];
                if table.get(id) != Err(IdError::Stale(id)) || table.contains(id) {
                    return fail(format!("dead id {id} not rejected as stale"));
                }
                if table.remove(id).is_ok() {
                    return fail(format!("dead id {id} removed a live entry"));
                }
            }
            IdOp::Forged { raw } => {
                let id = ChannelId::from_raw(raw);
                match (table.get(id), m.live.get(&id)) {
                    (Ok(v), Some(want)) if v == want => {}
                    (Err(_), None) => {}
                    (got, want) => {
                        return fail(format!("forged {id}: got {got:?}, model {want:?}"));
                    }
                }
            }
        }
        if table.len() != m.live.len() {
            return fail(format!(
                "len {} but model has {}",
                table.len(),
                m.live.len()
            ));
        }
    }
    Ok(())
}

/// Fuzz entry: bytes to id ops (at most 4,096), then [`check_ids`].
pub fn fuzz_ids(data: &[u8]) -> Result<(), IdViolation> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < 4096 {
        match IdOp::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    check_ids(&ops)
}
