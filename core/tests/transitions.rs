//! Scenario tests of the channel transitions (the table itself, in
//! `core/src/transitions/table.rs`, is checked row by row by the crate's
//! unit test `every_transition_is_in_the_table`), and of each error.
//! Holders, closes and ids are in `holders.rs`. Invariant numbers refer to
//! docs/design.md §4.

use std::io::ErrorKind;
use std::time::Duration;

use bytes::Bytes;
use tether_core::testing::Driver;
use tether_core::{
    Action, ChannelState, Config, DisconnectReason, Event, HalfClosePolicy, IdError, InputError,
    KickError, KickMode, SendError, ShutdownHow,
};

fn driver() -> Driver {
    Driver::new(Config::default()).unwrap()
}

fn shutdown(id: tether_core::ChannelId, how: ShutdownHow) -> Action {
    Action::Shutdown { id, how }
}

#[test]
fn accept_opens_a_channel_and_tells_the_app() {
    let mut d = driver();
    let id = d.open();
    assert_eq!(d.hub().state(id), Ok(ChannelState::Open));
    assert!(matches!(d.events(), [Event::Opened { id: i, .. }] if *i == id));
    assert_eq!(d.hub().stats().opened, 1);
}

#[test]
fn received_bytes_reach_the_app_in_order() {
    let mut d = driver();
    let id = d.open();
    d.receive(id, b"hel").unwrap();
    d.receive(id, b"").unwrap(); // empty read: no event
    d.receive(id, b"lo").unwrap();
    assert_eq!(d.received(id), b"hello");
    let received = d
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Received { .. }));
    assert_eq!(received.count(), 2);
    assert_eq!(d.hub().stats().bytes_received, 5);
}

#[test]
fn peer_eof_without_half_close_disconnects_and_releases() {
    let mut d = driver();
    let id = d.open();
    d.take_events();
    d.peer_eof(id).unwrap();
    let events = d.take_events();
    assert_eq!(
        events,
        vec![
            Event::Disconnected {
                id,
                reason: DisconnectReason::PeerClosed
            },
            Event::Released { id }
        ]
    );
    assert_eq!(
        d.actions_for(id),
        vec![shutdown(id, ShutdownHow::Both), Action::CloseSocket { id }]
    );
}

#[test]
fn peer_eof_without_half_close_still_flushes_what_was_queued() {
    let mut d = driver();
    d.set_auto_write(false);
    let id = d.open();
    d.send(id, b"bye\n").unwrap();
    d.peer_eof(id).unwrap();
    assert_eq!(d.disconnect_reason(id), Some(DisconnectReason::PeerClosed));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Closing));
    assert!(
        !d.actions()
            .iter()
            .any(|a| matches!(a, Action::Shutdown { .. }))
    );
    d.write(id, 4).unwrap();
    assert!(d.is_released(id));
    assert_eq!(d.hub().stats().bytes_dropped, 0);
}

#[test]
fn peer_eof_with_half_close_allows_sending_then_kick_finishes() {
    let mut d =
        Driver::new(Config::default().with(|c| c.half_close = HalfClosePolicy::Allow)).unwrap();
    let id = d.open();
    d.peer_eof(id).unwrap();
    assert_eq!(d.hub().state(id), Ok(ChannelState::HalfClosed));
    assert!(d.events().contains(&Event::ReadClosed { id }));
    assert_eq!(d.disconnects(id), 0);
    d.send(id, b"still here").unwrap();
    assert_eq!(d.transmitted(id), b"still here");
    d.kick(id, KickMode::Graceful, 3).unwrap();
    assert_eq!(
        d.disconnect_reason(id),
        Some(DisconnectReason::Kicked { code: 3 })
    );
    // The peer already sent EOF: our FIN finishes the wire at once.
    assert!(d.actions_for(id).contains(&shutdown(id, ShutdownHow::Both)));
    assert!(d.is_released(id));
}

#[test]
fn bytes_or_eof_after_eof_are_rejected_without_change() {
    let mut d =
        Driver::new(Config::default().with(|c| c.half_close = HalfClosePolicy::Allow)).unwrap();
    let id = d.open();
    d.peer_eof(id).unwrap();
    assert_eq!(
        d.receive(id, b"x"),
        Err(InputError::AfterEof {
            id,
            state: ChannelState::HalfClosed
        })
    );
    assert!(matches!(d.peer_eof(id), Err(InputError::AfterEof { .. })));
    assert_eq!(d.hub().state(id), Ok(ChannelState::HalfClosed));
}

#[test]
fn io_errors_disconnect_with_the_matching_reason_and_count_dropped_bytes() {
    let mut d = driver();
    d.set_auto_write(false);
    let reset = d.open();
    let other = d.open();
    d.send(reset, b"12345").unwrap();
    d.io_error(reset, ErrorKind::ConnectionReset).unwrap();
    d.io_error(other, ErrorKind::TimedOut).unwrap();
    assert_eq!(
        d.disconnect_reason(reset),
        Some(DisconnectReason::PeerReset)
    );
    assert_eq!(
        d.disconnect_reason(other),
        Some(DisconnectReason::IoError(ErrorKind::TimedOut))
    );
    assert_eq!(d.hub().stats().bytes_dropped, 5); // invariant 5
    assert!(d.is_released(reset) && d.is_released(other));
}

#[test]
fn io_error_while_offline_is_ignored() {
    let mut d = driver();
    d.set_auto_close(false);
    let id = d.open();
    d.kick(id, KickMode::Abort, 0).unwrap();
    assert_eq!(d.hub().state(id), Ok(ChannelState::Offline));
    let now = d.now();
    assert_eq!(
        d.hub().handle_io_error(now, id, ErrorKind::BrokenPipe),
        Ok(())
    );
    assert_eq!(d.disconnects(id), 1);
}

#[test]
fn send_transmits_the_same_bytes_zero_copy() {
    let mut d = driver();
    let id = d.open();
    let data = Bytes::from_static(b"payload");
    let now = d.now();
    d.hub().send(now, id, data.clone()).unwrap();
    d.hub().send(now, id, Bytes::new()).unwrap(); // empty: no action
    let transmit = d.hub().poll_action().unwrap();
    let Action::Transmit { data: sent, .. } = transmit else {
        panic!("expected a transmit, got {transmit:?}");
    };
    assert_eq!(sent.as_ptr(), data.as_ptr(), "payload was copied");
    assert_eq!(d.hub().poll_action(), None);
}

#[test]
fn send_to_a_closing_channel_is_refused() {
    let mut d = driver();
    d.set_peer_answers_fin(false);
    let id = d.open();
    d.kick(id, KickMode::Graceful, 0).unwrap();
    assert_eq!(
        d.send(id, b"late"),
        Err(SendError::NotUsable {
            id,
            state: ChannelState::Closing
        })
    );
    assert_eq!(d.transmitted(id), b""); // invariant 4
    let err = d.send(id, b"late").unwrap_err().to_string();
    assert!(
        err.contains(&id.to_string()) && err.contains("closing"),
        "{err}"
    );
}

#[test]
fn oversized_send_is_too_large_and_leaves_the_channel_open() {
    let mut d = Driver::new(payload_only(8)).unwrap();
    let id = d.open();
    assert_eq!(
        d.send(id, &[0; 9]),
        Err(SendError::TooLarge {
            id,
            len: 9,
            limit: 8
        })
    );
    assert_eq!(d.hub().state(id), Ok(ChannelState::Open));
    assert_eq!(d.hub().stats().sends_rejected, 1);
}

#[test]
fn queue_full_rejects_then_writable_follows_the_drain() {
    let mut d = Driver::new(payload_only(16)).unwrap();
    d.set_auto_write(false);
    let id = d.open();
    d.send(id, &[1; 10]).unwrap();
    assert!(matches!(
        d.send(id, &[2; 10]),
        Err(SendError::QueueFull {
            queued: 10,
            len: 10,
            limit: 16,
            kicked: false,
            ..
        })
    ));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Open));
    assert!(d.hub().channel(id).unwrap().backpressured);
    d.write(id, 9).unwrap(); // 1 left, low watermark is 16/16 = 1
    assert!(d.events().contains(&Event::Writable { id }));
    assert_eq!(d.transmitted(id), &[1; 10]);
}

#[test]
fn queue_full_kicks_a_slow_consumer_when_configured() {
    let mut d = Driver::new(
        payload_only(16).with(|c| c.overflow = tether_core::OverflowPolicy::KickSlowConsumer),
    )
    .unwrap();
    d.set_auto_write(false);
    let id = d.open();
    d.send(id, &[1; 10]).unwrap();
    assert!(matches!(
        d.send(id, &[2; 10]),
        Err(SendError::QueueFull { kicked: true, .. })
    ));
    assert_eq!(
        d.disconnect_reason(id),
        Some(DisconnectReason::SlowConsumer)
    );
    assert!(d.actions_for(id).contains(&Action::Abort { id }));
    assert_eq!(d.hub().stats().bytes_dropped, 10);
    assert!(d.is_released(id));
}

#[test]
fn high_watermark_backpressure_clears_at_low_watermark() {
    let mut d = Driver::new(payload_only(64)).unwrap(); // high 16, low 4
    d.set_auto_write(false);
    let id = d.open();
    d.send(id, &[0; 16]).unwrap();
    assert!(d.hub().channel(id).unwrap().backpressured);
    d.write(id, 10).unwrap(); // 6 left: above low
    assert!(!d.events().contains(&Event::Writable { id }));
    d.write(id, 2).unwrap(); // 4 left: at low
    assert!(d.events().contains(&Event::Writable { id }));
    assert!(!d.hub().channel(id).unwrap().backpressured);
}

#[test]
fn more_written_than_queued_is_rejected() {
    let mut d = driver();
    d.set_auto_write(false);
    let id = d.open();
    d.send(id, b"abc").unwrap();
    assert_eq!(
        d.write(id, 4),
        Err(InputError::OverWritten {
            id,
            state: ChannelState::Open,
            written: 4,
            queued: 3
        })
    );
    assert_eq!(d.hub().channel(id).unwrap().queued, 3);
}

#[test]
fn graceful_kick_with_empty_queue_sends_fin_in_the_same_call() {
    let mut d = driver();
    d.set_peer_answers_fin(false);
    let id = d.open();
    d.take_events();
    let now = d.now();
    d.hub().kick(now, id, KickMode::Graceful, 9).unwrap();
    // Invariant 3: no pump, no timeout — the FIN is already out.
    assert_eq!(
        d.hub().poll_action(),
        Some(shutdown(id, ShutdownHow::Write))
    );
    assert_eq!(
        d.hub().poll_event(),
        Some(Event::Disconnected {
            id,
            reason: DisconnectReason::Kicked { code: 9 }
        })
    );
    assert_eq!(d.hub().state(id), Ok(ChannelState::Closing));
    d.peer_eof(id).unwrap();
    assert!(d.is_released(id));
}

#[test]
fn graceful_kick_flushes_the_queue_before_fin() {
    let mut d = driver();
    d.set_auto_write(false);
    let id = d.open();
    d.send(id, b"last words").unwrap();
    d.kick(id, KickMode::Graceful, 0).unwrap();
    assert_eq!(d.disconnects(id), 1);
    assert!(
        !d.actions_for(id)
            .iter()
            .any(|a| matches!(a, Action::Shutdown { .. }))
    );
    d.write(id, 4).unwrap();
    assert!(
        !d.actions_for(id)
            .iter()
            .any(|a| matches!(a, Action::Shutdown { .. }))
    );
    d.write(id, 6).unwrap();
    let actions = d.actions_for(id);
    let fin = actions
        .iter()
        .position(|a| *a == shutdown(id, ShutdownHow::Write));
    let last_transmit = actions
        .iter()
        .rposition(|a| matches!(a, Action::Transmit { .. }));
    assert!(fin > last_transmit, "{actions:?}");
    assert!(d.is_released(id)); // the peer answered the FIN
    assert_eq!(d.hub().stats().bytes_dropped, 0);
}

#[test]
fn flush_deadline_escalates_to_abort_without_a_second_disconnect() {
    let mut d =
        Driver::new(Config::default().with(|c| c.flush_timeout = Duration::from_secs(2))).unwrap();
    d.set_auto_write(false);
    let id = d.open();
    d.send(id, b"never read").unwrap();
    d.kick(id, KickMode::Graceful, 0).unwrap();
    d.advance(Duration::from_millis(1999));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Closing));
    d.advance(Duration::from_millis(1));
    assert!(d.actions_for(id).contains(&Action::Abort { id }));
    assert_eq!(d.disconnects(id), 1); // invariant 1
    assert_eq!(d.hub().stats().bytes_dropped, 10); // invariant 5
    assert!(d.is_released(id));
}

#[test]
fn linger_waiting_for_peer_eof_is_bounded_too() {
    let mut d = driver();
    d.set_peer_answers_fin(false);
    let id = d.open();
    d.kick(id, KickMode::Graceful, 0).unwrap();
    d.advance(Config::default().flush_timeout);
    assert!(d.actions_for(id).contains(&Action::Abort { id }));
    assert!(d.is_released(id));
}

#[test]
fn abortive_kick_resets_and_closes_in_the_same_call() {
    let mut d = driver();
    d.set_auto_write(false).set_auto_close(false);
    let id = d.open();
    d.send(id, b"dropped").unwrap();
    d.take_actions();
    d.kick(id, KickMode::Abort, 1).unwrap();
    assert_eq!(
        d.take_actions(),
        vec![Action::Abort { id }, Action::CloseSocket { id }]
    );
    assert_eq!(d.hub().stats().bytes_dropped, 7);
}

#[test]
fn abort_escalates_a_graceful_close() {
    let mut d = driver();
    d.set_auto_write(false);
    let id = d.open();
    d.send(id, b"slow").unwrap();
    d.kick(id, KickMode::Graceful, 0).unwrap();
    assert_eq!(d.kick(id, KickMode::Abort, 0), Ok(()));
    assert!(d.actions_for(id).contains(&Action::Abort { id }));
    assert_eq!(d.disconnects(id), 1);
}

#[test]
fn kicks_are_idempotent_with_typed_answers() {
    let mut d = driver();
    d.set_peer_answers_fin(false).set_auto_close(false);
    let id = d.open();
    d.kick(id, KickMode::Graceful, 0).unwrap();
    assert_eq!(
        d.kick(id, KickMode::Graceful, 0),
        Err(KickError::AlreadyClosing {
            id,
            state: ChannelState::Closing
        })
    );
    d.kick(id, KickMode::Abort, 0).unwrap(); // escalation
    assert_eq!(
        d.kick(id, KickMode::Abort, 0),
        Err(KickError::AlreadyClosing {
            id,
            state: ChannelState::Offline
        })
    );
    let now = d.now();
    d.hub().handle_closed(now, id).unwrap();
    assert_eq!(
        d.kick(id, KickMode::Abort, 0),
        Err(KickError::Id(IdError::Stale(id)))
    );
    assert_eq!(d.disconnects(id), 1);
    assert_eq!(
        d.actions_for(id)
            .iter()
            .filter(|a| matches!(a, Action::CloseSocket { .. }))
            .count(),
        1
    );
}

/// A queue limit of `limit` payload bytes (no per-message overhead), with
/// the default watermarks for it.
fn payload_only(limit: usize) -> Config {
    Config::default()
        .with_queue_limit(limit)
        .with(|c| c.message_overhead = 0)
}
