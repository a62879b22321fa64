//! Generational channel ids and the table that hands them out.
//!
//! A [`ChannelId`] names one slot *and* one use of it: when a slot is reused
//! its generation goes up, so an id kept from an earlier connection can never
//! alias the next one (invariant 6 of docs/design.md §4). This is the seed's bug:
//! its id pool handed a freed id to the next client while stale events for the
//! old one were still in flight.

use std::fmt;
use std::str::FromStr;

/// Bits of a raw id given to the slot index.
const SLOT_BITS: u32 = 24;
/// Largest number of slots one table (one shard) can hold: 16,777,216.
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;

/// The id of one channel: a slot index, the slot's generation, and a shard.
///
/// Ids are small (`u64`), `Copy` and cheap to hash. They are only made by an
/// [`IdTable`] (and so by a [`Hub`](crate::Hub)), or parsed back from their
/// [`Display`](fmt::Display) form or [`ChannelId::to_raw`]; a parsed or
/// forged id is checked against the table on every use and rejected with a
/// typed [`IdError`] when it does not name a live channel.
///
/// The shard number leaves room to run several hubs side by side, one per
/// thread: ids of one shard are rejected by another.
///
/// ```
/// use tether_core::ChannelId;
/// let id: ChannelId = "#12.3".parse().unwrap();
/// assert_eq!((id.slot(), id.generation(), id.shard()), (12, 3, 0));
/// assert_eq!(id.to_string(), "#12.3");
/// let sharded: ChannelId = "#2:7.1".parse().unwrap();
/// assert_eq!(sharded.shard(), 2);
/// assert_eq!(sharded.to_string(), "#2:7.1");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(u64);

impl ChannelId {
    /// Builds an id from its parts; `None` if `slot` does not fit in 24 bits.
    ///
    /// Useful for tests and tools; a hub accepts such an id only if it names
    /// a live channel.
    pub const fn from_parts(shard: u8, slot: u32, generation: u32) -> Option<ChannelId> {
        if slot as u64 > SLOT_MASK {
            return None;
        }
        Some(ChannelId(
            (shard as u64) << 56 | (slot as u64) << 32 | generation as u64,
        ))
    }

    /// The id as one `u64` (shard, slot and generation packed), for storage
    /// or the wire. [`ChannelId::from_raw`] reverses it.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// The id from [`ChannelId::to_raw`]; any `u64` is a well-formed id.
    pub const fn from_raw(raw: u64) -> ChannelId {
        ChannelId(raw)
    }

    /// The slot index within its table.
    pub const fn slot(self) -> u32 {
        ((self.0 >> 32) & SLOT_MASK) as u32
    }

    /// How many times the slot had been used when this id was made (from 1).
    pub const fn generation(self) -> u32 {
        self.0 as u32
    }

    /// The shard (hub) this id belongs to.
    pub const fn shard(self) -> u8 {
        (self.0 >> 56) as u8
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shard() == 0 {
            write!(f, "#{}.{}", self.slot(), self.generation())
        } else {
            write!(f, "#{}:{}.{}", self.shard(), self.slot(), self.generation())
        }
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a channel id (see [`ChannelId`]'s `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed channel id {input:?}: expected `#slot.generation` or `#shard:slot.generation`")]
pub struct ParseIdError {
    input: String,
}

impl FromStr for ChannelId {
    type Err = ParseIdError;

    /// Parses `#12.3`, `12.3`, `#2:12.3` or `2:12.3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseIdError {
            input: s.chars().take(64).collect(),
        };
        let body = s.trim().strip_prefix('#').unwrap_or(s.trim());
        let (shard, rest) = match body.split_once(':') {
            Some((shard, rest)) => (shard.parse::<u8>().map_err(|_| err())?, rest),
            None => (0, body),
        };
        let (slot, generation) = rest.split_once('.').ok_or_else(err)?;
        let slot = slot.parse::<u32>().map_err(|_| err())?;
        let generation = generation.parse::<u32>().map_err(|_| err())?;
        ChannelId::from_parts(shard, slot, generation).ok_or_else(err)
    }
}

/// Why an id does not name a live entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id named this slot once, but the slot was released since (and
    /// maybe reused): the id is dead for good.
    #[error("channel {0} is stale: it was released and its id will never be valid again")]
    Stale(ChannelId),
    /// The id never named a channel of this table: slot out of range, a
    /// generation not handed out yet, or another shard's id.
    #[error("channel {0} is unknown: no such id was ever handed out by this hub")]
    Unknown(ChannelId),
}

impl IdError {
    /// The id that was rejected.
    pub fn id(&self) -> ChannelId {
        match *self {
            IdError::Stale(id) | IdError::Unknown(id) => id,
        }
    }
}

/// The table is full: every slot is in use (or retired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("id table is full: all {MAX_SLOTS} slots are in use or retired")]
pub struct TableFull;

#[derive(Clone)]
enum Entry<T> {
    Occupied { generation: u32, value: T },
    Vacant { generation: u32, next_free: u32 },
}

impl<T> Entry<T> {
    /// The generation of the slot's current or latest use.
    #[inline]
    fn generation(&self) -> u32 {
        match *self {
            Entry::Occupied { generation, .. } | Entry::Vacant { generation, .. } => generation,
        }
    }
}

/// Classifies an id that does not name a live entry, given the generation of
/// the slot it points at (`None`: no such slot in this table, or another
/// shard's id).
#[cold]
fn miss(id: ChannelId, current: Option<u32>) -> IdError {
    match current {
        Some(current) if id.generation() != 0 && id.generation() <= current => IdError::Stale(id),
        _ => IdError::Unknown(id),
    }
}

const NO_FREE: u32 = u32::MAX;

/// A slot table with generational ids: `O(1)` insert, lookup and remove,
/// no allocation once it has grown to its working size.
///
/// Freed slots are reused last-in first-out; every reuse bumps the slot's
/// generation, so an id from an earlier use is [`IdError::Stale`]. A slot
/// whose generation reaches `u32::MAX` is retired rather than wrapped, so
/// generations of a slot strictly increase (invariant 6).
///
/// ```
/// use tether_core::{IdTable, IdError};
/// let mut table = IdTable::new(0);
/// let a = table.insert("alice").unwrap();
/// table.remove(a).unwrap();
/// let b = table.insert("bob").unwrap();
/// assert_eq!(a.slot(), b.slot()); // the slot is reused...
/// assert_eq!(table.get(a), Err(IdError::Stale(a))); // ...but `a` never aliases `b`
/// assert_eq!(table.get(b), Ok(&"bob"));
/// ```
#[derive(Clone)]
pub struct IdTable<T> {
    entries: Vec<Entry<T>>,
    free_head: u32,
    len: usize,
    shard: u8,
}

impl<T> IdTable<T> {
    /// An empty table whose ids carry `shard`.
    pub fn new(shard: u8) -> Self {
        Self::with_capacity(shard, 0)
    }

    /// An empty table with room for `capacity` entries before it allocates.
    pub fn with_capacity(shard: u8, capacity: usize) -> Self {
        IdTable {
            entries: Vec::with_capacity(capacity.min(MAX_SLOTS)),
            free_head: NO_FREE,
            len: 0,
            shard,
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds no live entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of slots ever created (live, free and retired).
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    /// The shard number this table's ids carry.
    pub fn shard(&self) -> u8 {
        self.shard
    }

    /// Stores `value` and returns its new id.
    // Inlined so the value is built in its slot, not built and then copied
    // (a channel record is ~200 bytes; `Hub::accept`).
    #[inline(always)]
    pub fn insert(&mut self, value: T) -> Result<ChannelId, TableFull> {
        if self.free_head != NO_FREE {
            let slot = self.free_head;
            let entry = &mut self.entries[slot as usize];
            let Entry::Vacant {
                generation,
                next_free,
            } = *entry
            else {
                unreachable!("free list points at an occupied slot");
            };
            self.free_head = next_free;
            let generation = generation + 1; // never overflows: MAX is retired
            *entry = Entry::Occupied { generation, value };
            self.len += 1;
            return Ok(self.make_id(slot, generation));
        }
        let slot = self.entries.len();
        if slot >= MAX_SLOTS {
            return Err(TableFull);
        }
        self.entries.push(Entry::Occupied {
            generation: 1,
            value,
        });
        self.len += 1;
        Ok(self.make_id(slot as u32, 1))
    }

    fn make_id(&self, slot: u32, generation: u32) -> ChannelId {
        ChannelId((self.shard as u64) << 56 | (slot as u64) << 32 | generation as u64)
    }

    /// The index of `id`'s slot in `entries`, or an index past the end when
    /// `id` belongs to another shard: the shard bits of the raw id are XORed
    /// with this table's, so one bounds check also rejects foreign ids.
    #[inline]
    fn index(&self, id: ChannelId) -> usize {
        // `(raw >> 32) as u32` is `shard << 24 | slot`; the slot fits in 24
        // bits, so a foreign shard leaves bits 24.. set and the index is at
        // least `MAX_SLOTS`, which `entries` never reaches.
        (((id.0 >> 32) as u32) ^ ((self.shard as u32) << SLOT_BITS)) as usize
    }

    /// The value `id` names, if it is live.
    #[inline]
    pub fn get(&self, id: ChannelId) -> Result<&T, IdError> {
        match self.entries.get(self.index(id)) {
            Some(Entry::Occupied { generation, value }) if *generation == id.generation() => {
                Ok(value)
            }
            other => Err(miss(id, other.map(Entry::generation))),
        }
    }

    /// The value `id` names, mutably, if it is live.
    #[inline]
    pub fn get_mut(&mut self, id: ChannelId) -> Result<&mut T, IdError> {
        let index = self.index(id);
        let Some(entry) = self.entries.get_mut(index) else {
            return Err(miss(id, None));
        };
        // Read first (both variants keep it at the same place): the miss arm
        // cannot borrow `entry` again while the hit arm returns it.
        let current = entry.generation();
        match entry {
            Entry::Occupied { value, .. } if current == id.generation() => Ok(value),
            _ => Err(miss(id, Some(current))),
        }
    }

    /// Whether `id` names a live entry.
    #[inline]
    pub fn contains(&self, id: ChannelId) -> bool {
        self.get(id).is_ok()
    }

    /// Removes the entry `id` names and returns its value. The id, and every
    /// copy of it, is stale from now on.
    pub fn remove(&mut self, id: ChannelId) -> Result<T, IdError> {
        let index = self.index(id);
        let generation = id.generation();
        let Some(entry) = self.entries.get_mut(index) else {
            return Err(miss(id, None));
        };
        let current = entry.generation();
        if current != generation || !matches!(entry, Entry::Occupied { .. }) {
            return Err(miss(id, Some(current)));
        }
        let retired = generation == u32::MAX;
        let vacant = Entry::Vacant {
            // `current` (equal to `generation` here) is read from the entry,
            // so the compiler sees the field is unchanged and does not store
            // it again; that store measurably slowed the next `insert` of
            // this slot (`churn/tether` in benches/ids.rs).
            generation: current,
            next_free: if retired { NO_FREE } else { self.free_head },
        };
        let old = std::mem::replace(entry, vacant);
        if !retired {
            // `index` is the slot: the shard matched, or `get_mut` missed.
            self.free_head = index as u32;
        }
        self.len -= 1;
        match old {
            Entry::Occupied { value, .. } => Ok(value),
            Entry::Vacant { .. } => unreachable!("checked occupied above"),
        }
    }

    /// The live id of `slot`, if that slot is occupied.
    pub fn id_at(&self, slot: u32) -> Option<ChannelId> {
        match self.entries.get(slot as usize)? {
            Entry::Occupied { generation, .. } => Some(self.make_id(slot, *generation)),
            Entry::Vacant { .. } => None,
        }
    }

    /// Every live entry with its id, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ChannelId, &T)> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter_map(move |(slot, entry)| match entry {
                Entry::Occupied { generation, value } => {
                    Some((self.make_id(slot as u32, *generation), value))
                }
                Entry::Vacant { .. } => None,
            })
    }

    /// Every live entry with its id, mutably, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (ChannelId, &mut T)> + '_ {
        let shard = self.shard as u64;
        self.entries
            .iter_mut()
            .enumerate()
            .filter_map(move |(slot, entry)| match entry {
                Entry::Occupied { generation, value } => Some((
                    ChannelId(shard << 56 | (slot as u64) << 32 | *generation as u64),
                    value,
                )),
                Entry::Vacant { .. } => None,
            })
    }
}

/// Raw access for `Hub::snapshot` / `Hub::restore` (feature `snapshot`).
#[cfg(feature = "snapshot")]
impl<T> IdTable<T> {
    /// Every slot in order: the generation of its current or latest use,
    /// and its value if occupied.
    pub(crate) fn raw_slots(&self) -> impl Iterator<Item = (u32, Option<&T>)> + '_ {
        self.entries.iter().map(|entry| match entry {
            Entry::Occupied { generation, value } => (*generation, Some(value)),
            Entry::Vacant { generation, .. } => (*generation, None),
        })
    }

    /// The free list, head first (the next slot `insert` reuses first).
    /// Stops after `slots()` entries, so even a corrupted list ends.
    pub(crate) fn free_list(&self) -> Vec<u32> {
        let mut list = Vec::new();
        let mut next = self.free_head;
        while next != NO_FREE && list.len() < self.entries.len() {
            list.push(next);
            next = match self.entries.get(next as usize) {
                Some(Entry::Vacant { next_free, .. }) => *next_free,
                _ => NO_FREE,
            };
        }
        list
    }

    /// A table of exactly these slots, with `free` as its free list, head
    /// first. The caller checked them: every slot of `free` is vacant,
    /// listed once, and every vacant slot below the last generation is in
    /// `free`.
    pub(crate) fn from_raw(shard: u8, slots: Vec<(u32, Option<T>)>, free: &[u32]) -> Self {
        let mut next_of = vec![NO_FREE; slots.len()];
        for pair in free.windows(2) {
            if let Some(next) = next_of.get_mut(pair[0] as usize) {
                *next = pair[1];
            }
        }
        let mut len = 0;
        let entries = (slots.into_iter().zip(next_of))
            .map(|((generation, value), next_free)| match value {
                Some(value) => {
                    len += 1;
                    Entry::Occupied { generation, value }
                }
                None => Entry::Vacant {
                    generation,
                    next_free,
                },
            })
            .collect();
        IdTable {
            entries,
            free_head: free.first().copied().unwrap_or(NO_FREE),
            len,
            shard,
        }
    }
}

impl<T> fmt::Debug for IdTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTable")
            .field("shard", &self.shard)
            .field("len", &self.len)
            .field("slots", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_display_and_raw() {
        let id = ChannelId::from_parts(3, 70_000, 9).unwrap();
        assert_eq!(id.to_string(), "#3:70000.9");
        assert_eq!(id.to_string().parse::<ChannelId>(), Ok(id));
        assert_eq!(ChannelId::from_raw(id.to_raw()), id);
        assert!(ChannelId::from_parts(0, 1 << 24, 1).is_none());
    }

    #[test]
    fn malformed_ids_are_typed_errors() {
        for bad in [
            "",
            "#",
            "#1",
            "#a.b",
            "#1.",
            "#.1",
            "#300:1.1",
            "#99999999999.1",
            "1.2.3",
        ] {
            assert!(bad.parse::<ChannelId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn reuse_bumps_generation_and_rejects_stale() {
        let mut t = IdTable::new(0);
        let a = t.insert(1).unwrap();
        assert_eq!(a.generation(), 1);
        assert_eq!(t.remove(a), Ok(1));
        assert_eq!(t.remove(a), Err(IdError::Stale(a)));
        let b = t.insert(2).unwrap();
        assert_eq!((b.slot(), b.generation()), (a.slot(), 2));
        assert_eq!(t.get(a), Err(IdError::Stale(a)));
        *t.get_mut(b).unwrap() = 5;
        assert_eq!(t.get(b), Ok(&5));
    }

    #[test]
    fn forged_ids_are_unknown() {
        let mut t = IdTable::new(1);
        let a = t.insert(()).unwrap();
        let future = ChannelId::from_parts(1, a.slot(), 7).unwrap();
        let zero = ChannelId::from_parts(1, a.slot(), 0).unwrap();
        let other_shard = ChannelId::from_parts(2, a.slot(), 1).unwrap();
        let out_of_range = ChannelId::from_parts(1, 99, 1).unwrap();
        for id in [future, zero, other_shard, out_of_range] {
            assert_eq!(t.get(id), Err(IdError::Unknown(id)));
        }
    }

    #[test]
    fn foreign_shard_ids_never_reach_a_slot() {
        // `index` folds the shard check into the bounds check: every other
        // shard's id must miss, whatever the slot and generation.
        for own in [0u8, 1, 127, 255] {
            let mut t = IdTable::new(own);
            let a = t.insert(7u32).unwrap();
            for shard in (0..=255u8).filter(|&s| s != own) {
                let forged = ChannelId::from_parts(shard, a.slot(), a.generation()).unwrap();
                assert_eq!(t.get(forged), Err(IdError::Unknown(forged)));
                assert_eq!(t.get_mut(forged), Err(IdError::Unknown(forged)));
                assert_eq!(t.remove(forged), Err(IdError::Unknown(forged)));
            }
            assert_eq!(t.remove(a), Ok(7));
        }
    }

    #[test]
    fn exhausted_generation_retires_the_slot() {
        let mut t: IdTable<u8> = IdTable::new(0);
        t.entries.push(Entry::Vacant {
            generation: u32::MAX - 1,
            next_free: NO_FREE,
        });
        t.free_head = 0;
        let last = t.insert(0).unwrap();
        assert_eq!(last.generation(), u32::MAX);
        t.remove(last).unwrap();
        let next = t.insert(1).unwrap();
        assert_ne!(next.slot(), last.slot(), "retired slot must not be reused");
        assert_eq!(t.get(last), Err(IdError::Stale(last)));
    }
}
