//! Who is online, for the chat page: `GET /presence` on the `--web` port
//! answers `{"online":N,"ids":["#1.1",…],"truncated":false}`.
//!
//! The chat protocol has no presence message, and adding one would change
//! what every TCP client reads. So the rooms (one per shard, inside the
//! drivers) keep this set from the hub's own events: a channel is online
//! from `Opened` to `Disconnected`, TCP and WebSocket alike. The page polls
//! it; it is read-only and says nothing the chat does not (ids are in
//! every relayed line). One short lock per connect and per disconnect,
//! never held across I/O.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use tether_core::ChannelId;

/// Most ids listed in one answer (the count is always exact): the answer
/// is rendered on a driver thread and must stay small.
pub const MAX_LISTED: usize = 200;

/// The `Content-Type` of `GET /presence`.
pub const CONTENT_TYPE: &str = "application/json";

/// The set of channels online, across shards.
#[derive(Debug, Default)]
pub struct Presence {
    ids: Mutex<BTreeSet<ChannelId>>,
}

impl Presence {
    /// `id` is online.
    pub fn join(&self, id: ChannelId) {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    /// `id` is gone.
    pub fn leave(&self, id: ChannelId) {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// The answer to `GET /presence`: the exact count and the first
    /// [`MAX_LISTED`] ids (in id order), without `asking`: the HTTP
    /// request's own connection, a channel only until it is answered.
    pub fn render(&self, asking: Option<ChannelId>) -> Bytes {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        // Out of the set while it renders: one lock, no copy of the set.
        let was_in = asking.is_some_and(|id| ids.remove(&id));
        let listed: Vec<String> = ids
            .iter()
            .take(MAX_LISTED)
            .map(ToString::to_string)
            .collect();
        let body = serde_json::json!({
            "online": ids.len(),
            "ids": listed,
            "truncated": ids.len() > MAX_LISTED,
        });
        if let (true, Some(id)) = (was_in, asking) {
            ids.insert(id);
        }
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_follows_joins_and_leaves_and_stays_bounded() {
        let presence = Presence::default();
        let id = |n: u64| -> ChannelId { format!("#{n}.1").parse().unwrap() };
        assert_eq!(
            &presence.render(None)[..],
            br#"{"ids":[],"online":0,"truncated":false}"#
        );
        for n in 1..=(MAX_LISTED as u64 + 50) {
            presence.join(id(n));
        }
        presence.leave(id(1));
        presence.leave(id(1)); // twice: no effect
        let body: serde_json::Value =
            serde_json::from_slice(&presence.render(Some(id(3)))).unwrap();
        // #1.1 left, #3.1 is the request itself.
        assert_eq!(body["online"], MAX_LISTED + 48);
        assert_eq!(body["truncated"], true);
        let ids = body["ids"].as_array().unwrap();
        assert_eq!(ids.len(), MAX_LISTED);
        assert_eq!(ids[0], "#2.1");
        assert_eq!(ids[1], "#4.1");
        let again: serde_json::Value = serde_json::from_slice(&presence.render(None)).unwrap();
        assert_eq!(
            again["online"],
            MAX_LISTED + 49,
            "the asker is back in the set"
        );
    }
}
