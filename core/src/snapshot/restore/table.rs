//! What `Hub::restore` checks about the id table: the slots, the channels'
//! ids, and the free list (`IdTable::from_raw` trusts all three).

use super::hub_err;
use crate::config::Config;
use crate::id::MAX_SLOTS;
use crate::snapshot::{ChannelSnapshot, RestoreError, SlotSnapshot};

/// The id table: slots, the channels' ids, and the free list.
pub(super) fn table(
    config: &Config,
    slots: &[SlotSnapshot],
    free: &[u32],
    channels: &[ChannelSnapshot],
) -> Result<(), RestoreError> {
    let in_use = slots_in_use(config, slots)?;
    channel_ids(config, slots, channels)?;
    let occupied = slots.iter().filter(|s| s.occupied).count();
    if occupied != channels.len() {
        let problem = format!("{occupied} occupied slots, {} channels", channels.len());
        return Err(hub_err("slots", problem));
    }
    free_list(slots, free, in_use - occupied)
}

/// A slot is retired (never reused) once vacated at generation `u32::MAX`.
fn retired(s: &SlotSnapshot) -> bool {
    !s.occupied && s.generation == u32::MAX
}

/// The slots on their own; returns how many are in use (not retired).
fn slots_in_use(config: &Config, slots: &[SlotSnapshot]) -> Result<usize, RestoreError> {
    if slots.len() > MAX_SLOTS {
        return Err(hub_err(
            "slots",
            format!("{} slots, more than {MAX_SLOTS}", slots.len()),
        ));
    }
    if let Some(i) = slots.iter().position(|s| s.generation == 0) {
        return Err(hub_err(
            "slots",
            format!("slot {i}: generation 0 (they start at 1)"),
        ));
    }
    // A slot is added only when every slot in use is occupied, so the
    // slots in use never outnumber the channel limit.
    let in_use = slots.iter().filter(|s| !retired(s)).count();
    if in_use > config.max_channels {
        let max = config.max_channels;
        let problem = format!("{in_use} slots in use, more than max_channels ({max})");
        return Err(hub_err("slots", problem));
    }
    Ok(in_use)
}

/// Each channel's id: this shard, in strictly increasing slot order, naming
/// an occupied slot at its generation.
fn channel_ids(
    config: &Config,
    slots: &[SlotSnapshot],
    channels: &[ChannelSnapshot],
) -> Result<(), RestoreError> {
    let mut last = None;
    for ch in channels {
        let id = ch.id;
        let err = |problem: String| RestoreError::Channel {
            id,
            field: "id",
            problem,
        };
        if id.shard() != config.shard {
            return Err(err(format!(
                "shard {}, the config's is {}",
                id.shard(),
                config.shard
            )));
        }
        let slot = id.slot() as usize;
        if last.is_some_and(|last| slot <= last) {
            return Err(err(
                "channels are not in strictly increasing slot order".into()
            ));
        }
        last = Some(slot);
        match slots.get(slot) {
            Some(s) if s.occupied && s.generation == id.generation() => {}
            Some(s) => {
                let (g, o) = (s.generation, s.occupied);
                return Err(err(format!("slot {slot} has generation {g}, occupied {o}")));
            }
            None => {
                return Err(err(format!(
                    "slot {slot} is past the {} slots",
                    slots.len()
                )));
            }
        }
    }
    Ok(())
}

/// The free list is exactly the `vacant` slots that are not retired, each
/// once.
fn free_list(slots: &[SlotSnapshot], free: &[u32], vacant: usize) -> Result<(), RestoreError> {
    let mut listed = vec![false; slots.len()];
    for (i, &slot) in free.iter().enumerate() {
        let ok = (slots.get(slot as usize))
            .is_some_and(|s| !s.occupied && !retired(s) && !listed[slot as usize]);
        if !ok {
            let problem =
                format!("free[{i}]: slot {slot} is not a vacant, unlisted, unretired slot");
            return Err(hub_err("free", problem));
        }
        listed[slot as usize] = true;
    }
    if free.len() != vacant {
        let problem = format!(
            "{} slots listed, {vacant} vacant slots not retired",
            free.len()
        );
        return Err(hub_err("free", problem));
    }
    Ok(())
}
