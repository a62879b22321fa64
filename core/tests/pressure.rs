//! The flow-control policies the adapter layer builds on (docs/design.md §5.2):
//! per-message overhead in the queue limit, slow = no write progress for
//! `stall_timeout`, and the backpressure queries. One scenario per rule,
//! written with the testing kit's `Driver` on a virtual clock.

use std::io;
use std::time::Duration;

use tether_core::testing::Driver;
use tether_core::{
    Action, Bytes, ChannelState, Config, ConfigError, DisconnectReason, Event, HalfClosePolicy,
    Hub, IdError, InputError, KickMode, SendError, ShutdownHow,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// A driver whose simulated adapter writes only when told to: queued bytes
/// are exactly the bytes the kernel refused.
fn refusing(config: Config) -> Driver {
    let mut d = Driver::new(config).unwrap();
    d.set_auto_write(false);
    d
}

fn writables(d: &Driver, id: tether_core::ChannelId) -> usize {
    d.events()
        .iter()
        .filter(|e| **e == Event::Writable { id })
        .count()
}

// ----- stall timeout ------------------------------------------------------

#[test]
fn a_prompt_reader_with_a_large_burst_is_never_evicted_while_it_progresses() {
    let mut d = refusing(Config::default()); // stall 10 s, limit 1 MiB, overhead 96
    let id = d.open();
    // A burst far larger than any socket buffer: 5,000 × 100 bytes.
    for _ in 0..5_000 {
        d.send(id, &[7; 100]).unwrap();
    }
    assert_eq!(d.hub().channel(id).unwrap().charged, 5_000 * 196);
    // The kernel takes 10 kB every 9 s: always within the stall timeout.
    for round in 0..49 {
        d.advance(secs(9));
        d.write(id, 10_000).unwrap();
        let progress = d.now();
        // Progress pushed the deadline back to exactly 10 s from now.
        assert_eq!(d.hub().poll_timeout(), Some(progress + secs(10)), "{round}");
    }
    d.advance(secs(9));
    d.write(id, 10_000).unwrap(); // the last of 500,000 bytes
    assert_eq!(d.hub().channel(id).unwrap().queued, 0);
    d.advance(secs(3_600));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Open));
    assert_eq!(d.disconnects(id), 0);
    assert_eq!(d.hub().stats().disconnected.slow_consumer, 0);
}

#[test]
fn a_peer_that_never_reads_is_evicted_exactly_at_the_stall_deadline() {
    let mut d = refusing(Config::default());
    let id = d.open();
    d.attach(id).unwrap();
    let armed = d.now();
    d.send(id, b"hello\n").unwrap();
    d.advance(secs(4));
    // More sends do not push the deadline back: only write progress does.
    d.send(id, b"are you there?\n").unwrap();
    d.write(id, 0).unwrap(); // a write of 0 bytes is no progress either
    d.advance(ms(5_999));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Open));
    assert_eq!(d.hub().poll_timeout(), Some(armed + secs(10)));
    d.advance(ms(1)); // invariant 7: acted on at its deadline
    assert_eq!(
        d.disconnect_reason(id),
        Some(DisconnectReason::SlowConsumer)
    );
    assert_eq!(d.disconnects(id), 1);
    // RST now, never a FIN (the queue is dropped, not flushed).
    let actions = d.actions_for(id);
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == Action::Abort { id })
            .count(),
        1
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::Shutdown { .. })));
    let stats = d.hub().stats();
    assert_eq!(stats.bytes_dropped, 6 + 15); // invariant 5: counted
    assert_eq!(stats.disconnected.slow_consumer, 1);
    // The holder lets go, then the socket closes.
    assert!(!actions.contains(&Action::CloseSocket { id }));
    d.detach(id).unwrap();
    assert!(d.is_released(id));
}

#[test]
fn the_stall_deadline_disarms_when_the_queue_drains_and_rearms_on_the_next_send() {
    let mut d = refusing(Config::default());
    let id = d.open();
    d.send(id, b"0123456789").unwrap();
    d.advance(secs(5));
    d.write(id, 10).unwrap();
    assert_eq!(
        d.hub().poll_timeout(),
        None,
        "no deadline with nothing queued"
    );
    d.advance(secs(60));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Open));
    // A new send arms a new deadline from its own time.
    d.send(id, b"again").unwrap();
    assert_eq!(d.hub().poll_timeout(), Some(d.now() + secs(10)));
    d.advance(secs(10));
    assert_eq!(
        d.disconnect_reason(id),
        Some(DisconnectReason::SlowConsumer)
    );
}

#[test]
fn a_closing_channel_is_not_stall_evicted_its_flush_timeout_governs() {
    let mut d = refusing(Config::default().with(|c| {
        c.stall_timeout = Some(secs(1));
        c.flush_timeout = secs(5);
    }));
    d.set_peer_answers_fin(false);
    let id = d.open();
    d.send(id, b"last words").unwrap();
    d.kick(id, KickMode::Graceful, 9).unwrap();
    d.advance(ms(4_999));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Closing));
    assert!(!d.actions_for(id).contains(&Action::Abort { id }));
    d.advance(ms(1));
    assert!(d.actions_for(id).contains(&Action::Abort { id })); // flush deadline
    assert_eq!(
        d.disconnect_reason(id),
        Some(DisconnectReason::Kicked { code: 9 })
    );
    assert_eq!(d.disconnects(id), 1);
    assert_eq!(d.hub().stats().disconnected.slow_consumer, 0);
}

#[test]
fn a_half_closed_channel_is_still_stall_evicted() {
    let mut d = refusing(Config::default().with(|c| {
        c.half_close = HalfClosePolicy::Allow;
        c.stall_timeout = Some(secs(2));
    }));
    let id = d.open();
    d.peer_eof(id).unwrap();
    assert_eq!(d.hub().state(id), Ok(ChannelState::HalfClosed));
    d.send(id, b"the answer").unwrap();
    d.advance(secs(2));
    assert_eq!(
        d.disconnect_reason(id),
        Some(DisconnectReason::SlowConsumer)
    );
    assert!(d.actions_for(id).contains(&Action::Abort { id }));
}

#[test]
fn when_stall_and_idle_are_due_together_the_stall_abort_wins() {
    let mut d = refusing(Config::default().with(|c| c.idle_timeout = Some(secs(10))));
    let id = d.open();
    d.send(id, b"x").unwrap();
    d.advance(secs(10));
    assert_eq!(
        d.disconnect_reason(id),
        Some(DisconnectReason::SlowConsumer)
    );
    let actions = d.actions_for(id);
    assert!(actions.contains(&Action::Abort { id }));
    assert!(!actions.contains(&Action::Shutdown {
        id,
        how: ShutdownHow::Write
    }));
}

#[test]
fn a_busy_sender_costs_no_timer_entries_and_poll_timeout_stays_exact() {
    let mut d = refusing(Config::default().with(|c| c.idle_timeout = Some(secs(30))));
    let busy = d.open();
    let idle = d.open();
    let idle_deadline = d.now() + secs(30);
    let entries = d.hub().stats().timer_entries;
    for i in 0..10_000u32 {
        d.advance(ms(1));
        d.receive(busy, b"ping").unwrap();
        d.send(busy, b"pong").unwrap();
        // Keep one message unwritten every other round, so the queue both
        // drains and stays non-empty across rounds.
        let queued = d.hub().channel(busy).unwrap().queued;
        let left = if i % 2 == 0 { 0 } else { 4 };
        d.write(busy, queued - left).unwrap();
        // Invariant 7: exact, as an adapter asks after every loop turn —
        // the stall deadline while bytes are queued, else the idle one.
        let expected = if left > 0 {
            d.now() + secs(10)
        } else {
            idle_deadline
        };
        assert_eq!(d.hub().poll_timeout(), Some(expected), "round {i}");
    }
    // Invariant 11 (and 8): traffic, drained or not, does not grow the heap.
    let after = d.hub().stats().timer_entries;
    assert!(after <= entries + 2, "{entries} -> {after} timer entries");
    let queued = d.hub().channel(busy).unwrap().queued;
    d.write(busy, queued).unwrap();
    let left = idle_deadline - d.now();
    d.advance(left);
    assert_eq!(
        d.disconnect_reason(idle),
        Some(DisconnectReason::IdleTimeout)
    );
    assert_eq!(d.hub().state(busy), Ok(ChannelState::Open));
    // An adapter that sends many messages per loop turn (no `poll_timeout`
    // in between to drop stale entries): still no entry per message.
    let entries = d.hub().stats().timer_entries;
    let mut t = d.now();
    let hub = d.hub();
    for _ in 0..1_000 {
        t += ms(1);
        hub.send(t, busy, Bytes::from_static(b"pong")).unwrap();
        let queued = hub.channel(busy).unwrap().queued;
        hub.handle_written(t, busy, queued - 1).unwrap(); // progress, never drained
        while hub.poll_action().is_some() {}
    }
    let after = hub.stats().timer_entries;
    assert!(after <= entries + 1, "{entries} -> {after} timer entries");
}

// ----- per-message overhead -------------------------------------------------

#[test]
fn two_byte_messages_hit_the_limit_after_limit_over_98_sends() {
    let limit = 98 * 100 + 50;
    let mut d = refusing(Config::default().with_queue_limit(limit));
    let id = d.open();
    let mut sent = 0;
    let err = loop {
        match d.send(id, b"x\n") {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(sent, limit / (2 + 96));
    assert_eq!(
        err,
        SendError::QueueFull {
            id,
            queued: 200,
            charged: 9_800,
            len: 2,
            limit,
            kicked: false
        }
    );
    let info = d.hub().channel(id).unwrap();
    assert_eq!((info.queued, info.charged), (200, 9_800));
    // Payload bytes stay what the byte counters count (invariant 5).
    assert_eq!(d.hub().stats().bytes_queued, 200);
    // Without the overhead the same queue would have taken 4,925 sends.
    assert!(sent < limit / 2);
}

#[test]
fn a_single_send_must_fit_with_its_overhead() {
    let limit = 1_000;
    let mut d = refusing(Config::default().with_queue_limit(limit));
    let id = d.open();
    assert_eq!(
        d.send(id, &vec![0; limit - 96 + 1]),
        Err(SendError::TooLarge {
            id,
            len: limit - 95,
            limit
        })
    );
    d.send(id, &vec![0; limit - 96]).unwrap(); // fits exactly
    assert_eq!(d.hub().channel(id).unwrap().charged, limit);
    // Nothing else fits now, not even one byte; an empty send queues nothing.
    assert!(matches!(d.send(id, b"x"), Err(SendError::QueueFull { .. })));
    d.send(id, b"").unwrap();
    assert_eq!(d.hub().stats().sends_rejected, 2);
}

#[test]
fn the_charge_is_released_only_when_the_queue_drains() {
    let mut d = refusing(Config::default());
    let id = d.open();
    for _ in 0..3 {
        d.send(id, &[1; 10]).unwrap();
    }
    let info = |d: &mut Driver| {
        let c = d.hub().channel(id).unwrap();
        (c.queued, c.charged)
    };
    assert_eq!(info(&mut d), (30, 3 * 106));
    d.write(id, 25).unwrap();
    // Two messages are fully written, but the core cannot know: conservative.
    assert_eq!(info(&mut d), (5, 3 * 106 - 25));
    d.write(id, 5).unwrap();
    assert_eq!(info(&mut d), (0, 0));
    d.send(id, &[1; 10]).unwrap();
    assert_eq!(info(&mut d), (10, 106));
}

#[test]
fn watermarks_compare_against_the_charge() {
    // high 2,500, low 625
    let mut d = refusing(Config::default().with_queue_limit(10_000));
    let id = d.open();
    for _ in 0..25 {
        d.send(id, b"x\n").unwrap(); // 25 × 98 = 2,450
    }
    assert_eq!(d.hub().is_backpressured(id), Ok(false));
    d.send(id, b"x\n").unwrap(); // 2,548: only 52 payload bytes queued
    assert_eq!(d.hub().is_backpressured(id), Ok(true));
    assert_eq!(d.hub().backpressured(), 1);
    assert!(d.hub().channel(id).unwrap().backpressured);
    d.write(id, 50).unwrap(); // charge 2,498: above the low mark still
    assert_eq!(d.hub().is_backpressured(id), Ok(true));
    assert_eq!(writables(&d, id), 0);
    d.write(id, 2).unwrap(); // drained: charge 0
    assert_eq!(d.hub().is_backpressured(id), Ok(false));
    assert_eq!(d.hub().backpressured(), 0);
    assert_eq!(writables(&d, id), 1);
}

#[test]
fn a_broadcast_charges_every_recipient_its_overhead() {
    let limit = 300;
    let mut d = refusing(Config::default().with_queue_limit(limit));
    let roomy = d.open();
    let full = d.open();
    d.send(full, &[0; 150]).unwrap(); // charged 246: 54 left, < 2 + 96
    let now = d.now();
    let report = d.hub().broadcast(now, Bytes::from_static(b"hi"));
    d.pump();
    assert_eq!(report.sent, 1);
    assert!(matches!(
        report.refused.as_slice(),
        [(id, SendError::QueueFull { charged: 246, .. })] if *id == full
    ));
    assert_eq!(d.hub().channel(roomy).unwrap().charged, 98);
}

// ----- backpressure count ---------------------------------------------------

#[test]
fn the_backpressured_count_follows_every_way_a_channel_ends() {
    // High watermark 1,000.
    let mut d = refusing(
        Config::default()
            .with_queue_limit(4_000)
            .with(|c| c.stall_timeout = Some(secs(10))),
    );
    d.set_peer_answers_fin(false);
    let ids: Vec<_> = (0..6).map(|_| d.open()).collect();
    let (graceful, abort, error, stalled, eof, kept) =
        (ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]);
    for &id in &ids {
        d.send(id, &[0; 1_000]).unwrap();
        assert_eq!(d.hub().is_backpressured(id), Ok(true));
    }
    assert_eq!(d.hub().backpressured(), 6);
    d.advance(secs(5));
    for &id in &[graceful, abort, error, eof, kept] {
        d.write(id, 1).unwrap(); // progress: not stalled
    }
    d.kick(graceful, KickMode::Graceful, 1).unwrap();
    assert_eq!(d.hub().backpressured(), 5);
    // A closing channel is not backpressured: sends to it fail anyway.
    assert_eq!(d.hub().is_backpressured(graceful), Ok(false));
    d.kick(abort, KickMode::Abort, 2).unwrap();
    assert_eq!(d.hub().backpressured(), 4);
    d.io_error(error, io::ErrorKind::ConnectionReset).unwrap();
    assert_eq!(d.hub().backpressured(), 3);
    d.peer_eof(eof).unwrap(); // half-close disallowed: ends the channel
    assert_eq!(d.hub().backpressured(), 2);
    d.advance(secs(5)); // `stalled` made no progress for 10 s
    assert_eq!(
        d.disconnect_reason(stalled),
        Some(DisconnectReason::SlowConsumer)
    );
    assert_eq!(d.hub().backpressured(), 1);
    assert_eq!(d.hub().stats().backpressured, 1);
    // Released ids are stale, not "not backpressured".
    assert!(d.is_released(abort));
    assert!(matches!(
        d.hub().is_backpressured(abort),
        Err(IdError::Stale(_))
    ));
    // The one left drains: Writable, and the count reaches 0.
    d.write(kept, 999).unwrap();
    assert_eq!(writables(&d, kept), 1);
    assert_eq!(d.hub().backpressured(), 0);
    // A rejected send that did not fit makes a channel backpressured too,
    // below the high watermark.
    d.send(kept, &[0; 500]).unwrap(); // charge 596 < high
    assert_eq!(d.hub().backpressured(), 0);
    assert!(matches!(
        d.send(kept, &[0; 3_500]),
        Err(SendError::QueueFull { .. })
    ));
    assert_eq!(d.hub().backpressured(), 1);
    d.write(kept, 500).unwrap();
    assert_eq!((writables(&d, kept), d.hub().backpressured()), (2, 0));
    d.send(kept, &[0; 2_000]).unwrap(); // charge 2,096 ≥ high
    assert_eq!(d.hub().backpressured(), 1);
    d.write(kept, 1_900).unwrap(); // charge 196 ≤ low 250, 100 bytes queued
    assert_eq!(d.hub().backpressured(), 0);
    assert_eq!(d.hub().channel(kept).unwrap().charged, 196);
    // Shutdown ends the rest; nothing is left counted.
    d.send(kept, &[0; 2_000]).unwrap();
    assert_eq!(d.hub().backpressured(), 1);
    let now = d.now();
    d.hub().shutdown(now, secs(1));
    d.pump();
    assert_eq!(d.hub().backpressured(), 0);
}

// ----- hostile inputs --------------------------------------------------------

#[test]
fn hostile_inputs_still_give_typed_errors_and_are_counted() {
    let mut d = refusing(Config::default());
    let id = d.open();
    d.send(id, b"abc").unwrap();
    let before = d.hub().channel(id).unwrap();
    // More written than queued: typed, the hub unchanged, counted.
    assert_eq!(
        d.write(id, 4),
        Err(InputError::OverWritten {
            id,
            state: ChannelState::Open,
            written: 4,
            queued: 3
        })
    );
    let after = d.hub().channel(id).unwrap();
    assert_eq!(
        (after.queued, after.charged),
        (before.queued, before.charged)
    );
    // Time going backwards is clamped: progress "5 s ago" is progress now,
    // it cannot move the stall deadline into the past.
    d.advance(secs(6));
    let now = d.now();
    d.hub().handle_written(now - secs(5), id, 1).unwrap();
    d.pump();
    assert_eq!(d.hub().poll_timeout(), Some(now + secs(10)));
    // Contradictory adapter inputs, each counted by kind.
    d.peer_eof(id).unwrap(); // ends it: half-close disallowed
    assert!(matches!(
        d.receive(id, b"late"),
        Err(InputError::AfterEof { .. })
    ));
    d.set_auto_close(false);
    let other = d.open();
    assert!(d.detach(other).is_err()); // never attached
    let now = d.now();
    assert!(d.hub().handle_closed(now, other).is_err()); // not requested
    d.kick(other, KickMode::Abort, 0).unwrap();
    assert!(d.attach(other).is_err()); // offline
    let stale = tether_core::ChannelId::from_parts(0, 30, 1).unwrap();
    assert!(d.write(stale, 1).is_err());
    let stats = d.hub().stats();
    let r = &stats.rejected_input;
    assert_eq!(
        (r.over_written, r.after_eof, r.not_attached, r.not_requested),
        (1, 1, 1, 1)
    );
    assert_eq!(r.attach_offline, 1);
    assert_eq!(r.total(), 5);
    assert_eq!(stats.stale_calls, 1, "stale ids are counted apart");
    assert_eq!(stats.time_regressions, 1);
    let listed: Vec<_> = stats
        .counters()
        .filter(|(k, _)| k.starts_with("rejected_input."))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(listed.iter().sum::<u64>(), 5);
}

#[test]
fn an_overhead_that_leaves_no_room_is_a_typed_config_error() {
    let err = Hub::new(Config::default().with_queue_limit(64)).unwrap_err();
    assert_eq!(
        err,
        ConfigError::MessageOverhead {
            overhead: 96,
            limit: 64
        }
    );
    assert!(err.to_string().contains("message_overhead"));
    let err =
        Hub::new(Config::default().with(|c| c.stall_timeout = Some(Duration::ZERO))).unwrap_err();
    assert_eq!(err, ConfigError::ZeroTimeout("stall_timeout"));
    // With the overhead lowered, the small limit works.
    Hub::new(
        Config::default()
            .with_queue_limit(64)
            .with(|c| c.message_overhead = 8),
    )
    .unwrap();
}

#[test]
fn a_stall_timeout_too_large_for_instant_never_fires_and_never_panics() {
    let mut d = refusing(Config::default().with(|c| c.stall_timeout = Some(Duration::MAX)));
    let id = d.open();
    d.send(id, b"x").unwrap();
    assert_eq!(d.hub().poll_timeout(), None);
    d.advance(secs(1_000_000));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Open));
}
