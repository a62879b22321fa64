//! The driver's connections, indexed by their id's slot.
//!
//! The hub hands out ids from a slot table that reuses freed slots first
//! (`tether_core::IdTable`), so slots stay below the most channels the
//! shard ever held at once, and a slot is reused only after the driver
//! closed its socket (`handle_closed` frees it, and the driver calls it
//! after removing the connection). A `Vec` indexed by slot, with the whole
//! id checked, is therefore a map without hashing: a `HashMap` with the
//! default SipHash cost about 1,300 instructions per connection under
//! churn (issue 9).

use tether_core::ChannelId;

/// A map from live channel ids to `T`.
pub(super) struct Conns<T> {
    slots: Vec<Option<(ChannelId, T)>>,
    len: usize,
}

impl<T> Conns<T> {
    pub(super) fn new() -> Self {
        Conns {
            slots: Vec::new(),
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, id: &ChannelId) -> Option<&T> {
        match self.slots.get(id.slot() as usize) {
            Some(Some((at, value))) if at == id => Some(value),
            _ => None,
        }
    }

    pub(super) fn get_mut(&mut self, id: &ChannelId) -> Option<&mut T> {
        match self.slots.get_mut(id.slot() as usize) {
            Some(Some((at, value))) if at == id => Some(value),
            _ => None,
        }
    }

    /// Stores `value` for `id`; returns what the slot held before (`None`
    /// unless the hub reused a slot the driver had not released, which its
    /// invariants rule out).
    pub(super) fn insert(&mut self, id: ChannelId, value: T) -> Option<T> {
        let slot = id.slot() as usize;
        if slot >= self.slots.len() {
            self.slots.resize_with(slot + 1, || None);
        }
        let old = self.slots[slot].replace((id, value));
        debug_assert!(old.is_none(), "slot of {id} reused before its close");
        if old.is_none() {
            self.len += 1;
        }
        old.map(|(_, value)| value)
    }

    pub(super) fn remove(&mut self, id: &ChannelId) -> Option<T> {
        let entry = self.slots.get_mut(id.slot() as usize)?;
        if entry.as_ref().is_some_and(|(at, _)| at == id) {
            self.len -= 1;
            entry.take().map(|(_, value)| value)
        } else {
            None
        }
    }

    /// Every live id, in slot order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &ChannelId> {
        self.slots.iter().flatten().map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: u32, generation: u32) -> ChannelId {
        ChannelId::from_parts(1, slot, generation).unwrap()
    }

    #[test]
    fn a_stale_id_finds_nothing() {
        let mut conns = Conns::new();
        assert_eq!(conns.insert(id(3, 1), "a"), None);
        assert_eq!(conns.len(), 1);
        assert_eq!(conns.get(&id(3, 1)), Some(&"a"));
        assert_eq!(conns.get(&id(3, 2)), None);
        assert_eq!(conns.get(&id(2, 1)), None);
        assert_eq!(conns.get(&id(9, 1)), None);
        assert_eq!(conns.remove(&id(3, 2)), None);
        assert_eq!(conns.len(), 1);
        *conns.get_mut(&id(3, 1)).unwrap() = "b";
        assert_eq!(conns.remove(&id(3, 1)), Some("b"));
        assert_eq!(conns.remove(&id(3, 1)), None);
        assert_eq!(conns.len(), 0);
        assert_eq!(conns.insert(id(3, 2), "c"), None);
        assert_eq!(conns.insert(id(0, 1), "d"), None);
        assert_eq!(conns.get(&id(3, 1)), None);
        let keys: Vec<_> = conns.keys().copied().collect();
        assert_eq!(keys, [id(0, 1), id(3, 2)]);
        assert_eq!(conns.len(), 2);
    }
}
