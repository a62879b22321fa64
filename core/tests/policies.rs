//! One scenario per policy of `Config`, written with the testing kit.

use std::time::Duration;

use bytes::Bytes;
use tether_core::testing::Driver;
use tether_core::{
    AcceptError, Action, ChannelState, Config, ConfigError, DisconnectReason, Event, Hub, KickMode,
    SendError, ShutdownHow,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn idle_timeout_kicks_silent_channels_and_spares_active_ones() {
    let mut d = Driver::new(Config::default().with(|c| c.idle_timeout = Some(secs(30)))).unwrap();
    let silent = d.open();
    let chatty = d.open();
    for _ in 0..6 {
        d.advance(secs(10));
        d.receive(chatty, b"ping").unwrap();
    }
    assert_eq!(
        d.disconnect_reason(silent),
        Some(DisconnectReason::IdleTimeout)
    );
    assert!(d.actions_for(silent).contains(&Action::Shutdown {
        id: silent,
        how: ShutdownHow::Write
    }));
    assert_eq!(d.hub().state(chatty), Ok(ChannelState::Open));
    d.advance(secs(30));
    assert_eq!(
        d.disconnect_reason(chatty),
        Some(DisconnectReason::IdleTimeout)
    );
    assert_eq!(d.hub().stats().disconnected.idle_timeout, 2);
}

#[test]
fn idle_timeout_fires_exactly_at_its_deadline() {
    let mut d = Driver::new(Config::default().with(|c| c.idle_timeout = Some(secs(30)))).unwrap();
    let id = d.open();
    let opened = d.now();
    d.advance(Duration::from_millis(29_999));
    assert_eq!(d.disconnects(id), 0);
    assert_eq!(d.hub().poll_timeout(), Some(opened + secs(30)));
    d.advance(Duration::from_millis(1));
    assert_eq!(d.disconnects(id), 1); // invariant 7
}

#[test]
fn default_kick_mode_applies_to_timeouts() {
    let mut d = Driver::new(Config::default().with(|c| {
        c.idle_timeout = Some(secs(5));
        c.default_kick = KickMode::Abort;
    }))
    .unwrap();
    let id = d.open();
    d.advance(secs(5));
    assert_eq!(
        d.actions_for(id),
        vec![Action::Abort { id }, Action::CloseSocket { id }]
    );
}

#[test]
fn login_timeout_kicks_unauthenticated_channels_only() {
    let mut d = Driver::new(Config::default().with(|c| c.login_timeout = Some(secs(10)))).unwrap();
    let guest = d.open();
    let user = d.open();
    d.advance(secs(3));
    let now = d.now();
    d.hub().authenticate(now, user).unwrap();
    d.receive(guest, b"still typing my password").unwrap(); // activity is no login
    d.advance(secs(7));
    assert_eq!(
        d.disconnect_reason(guest),
        Some(DisconnectReason::LoginTimeout)
    );
    assert_eq!(d.hub().state(user), Ok(ChannelState::Open));
    d.advance(secs(3600));
    assert_eq!(d.hub().state(user), Ok(ChannelState::Open));
    // Authenticating a closed channel is a typed error.
    let now = d.now();
    assert!(d.hub().authenticate(now, guest).is_err());
}

#[test]
fn channel_limit_refuses_pauses_and_resumes_below_the_mark() {
    let mut d = Driver::new(
        Config::default()
            .with_max_channels(4)
            .with(|c| c.accept_resume_at = Some(2)),
    )
    .unwrap();
    let ids: Vec<_> = (0..4).map(|_| d.open()).collect();
    // Invariant 12: pause asked as soon as the limit is reached.
    assert_eq!(
        d.actions()
            .iter()
            .filter(|a| **a == Action::PauseAccept)
            .count(),
        1
    );
    for _ in 0..100 {
        assert_eq!(
            d.try_open(),
            Err(AcceptError::LimitReached { live: 4, max: 4 })
        );
    }
    assert_eq!(d.hub().stats().refused, 100);
    assert_eq!(
        d.actions()
            .iter()
            .filter(|a| **a == Action::PauseAccept)
            .count(),
        1,
        "pause is asked once"
    );
    // Refused connections get no events (invariant 1).
    assert_eq!(
        d.events()
            .iter()
            .filter(|e| matches!(e, Event::Opened { .. }))
            .count(),
        4
    );
    d.kick(ids[0], KickMode::Abort, 0).unwrap();
    assert!(!d.actions().contains(&Action::ResumeAccept)); // 3 > 2
    d.kick(ids[1], KickMode::Abort, 0).unwrap();
    assert!(d.actions().contains(&Action::ResumeAccept));
    d.open();
    d.open();
    assert_eq!(d.hub().live(), 4);
}

#[test]
fn offline_channels_count_against_the_limit_until_released() {
    let mut d = Driver::new(Config::default().with_max_channels(1)).unwrap();
    d.set_auto_close(false);
    let id = d.open();
    d.kick(id, KickMode::Abort, 0).unwrap();
    assert!(matches!(
        d.try_open(),
        Err(AcceptError::LimitReached { .. })
    ));
    let now = d.now();
    d.hub().handle_closed(now, id).unwrap();
    d.pump();
    assert!(d.actions().contains(&Action::ResumeAccept));
    d.open();
}

#[test]
fn shutdown_drains_gracefully_then_aborts_the_rest_and_completes_once() {
    let mut d = driver_with(Config::default());
    d.set_auto_write(false);
    let quick = d.open();
    let slow = d.open();
    d.send(slow, b"unread").unwrap();
    let now = d.now();
    d.hub().shutdown(now, secs(2));
    d.pump();
    assert!(d.actions().contains(&Action::PauseAccept));
    assert_eq!(
        d.disconnect_reason(quick),
        Some(DisconnectReason::ServerShutdown)
    );
    assert_eq!(
        d.disconnect_reason(slow),
        Some(DisconnectReason::ServerShutdown)
    );
    assert!(d.is_released(quick));
    assert!(!d.hub().is_shutdown_complete());
    assert_eq!(d.try_open(), Err(AcceptError::ShuttingDown));
    let now = d.now();
    d.hub().shutdown(now, secs(0)); // idempotent: the first deadline stands
    d.advance(secs(2));
    assert!(d.actions_for(slow).contains(&Action::Abort { id: slow }));
    assert!(d.is_released(slow));
    assert!(d.hub().is_shutdown_complete());
    let completions = d
        .events()
        .iter()
        .filter(|e| **e == Event::ShutdownComplete)
        .count();
    assert_eq!(completions, 1);
    assert_eq!(d.hub().stats().disconnected.server_shutdown, 2);
}

#[test]
fn shutdown_with_nothing_open_completes_at_once() {
    let mut hub = Hub::new(Config::default()).unwrap();
    let now = std::time::Instant::now();
    hub.shutdown(now, secs(1));
    assert_eq!(hub.poll_action(), Some(Action::PauseAccept));
    assert_eq!(hub.poll_event(), Some(Event::ShutdownComplete));
    assert!(hub.is_shutdown_complete());
}

#[test]
fn shutdown_waits_for_holders_without_closing_under_them() {
    let mut d = driver_with(Config::default());
    let id = d.open();
    d.attach(id).unwrap();
    let now = d.now();
    d.hub().shutdown(now, secs(1));
    d.advance(secs(60));
    assert!(!d.hub().is_shutdown_complete());
    assert!(!d.actions_for(id).contains(&Action::CloseSocket { id }));
    d.detach(id).unwrap();
    assert!(d.hub().is_shutdown_complete());
}

#[test]
fn broadcast_shares_one_buffer_and_skips_closing_channels() {
    let mut d = driver_with(payload_only(8));
    d.set_auto_write(false).set_peer_answers_fin(false);
    let a = d.open();
    let b = d.open();
    let full = d.open();
    let closing = d.open();
    d.send(full, &[0; 8]).unwrap();
    d.kick(closing, KickMode::Graceful, 0).unwrap();
    d.take_actions();
    let data = Bytes::from_static(b"news");
    let now = d.now();
    let report = d.hub().broadcast(now, data.clone());
    assert_eq!(report.sent, 2);
    assert_eq!(report.refused.len(), 1);
    assert!(matches!(
        report.refused[0],
        (id, SendError::QueueFull { .. }) if id == full
    ));
    d.pump();
    let transmits: Vec<_> = d
        .actions()
        .iter()
        .filter_map(|act| match act {
            Action::Transmit { id, data: sent } => Some((*id, sent.as_ptr())),
            _ => None,
        })
        .collect();
    assert_eq!(transmits, vec![(a, data.as_ptr()), (b, data.as_ptr())]);
    let report = d.hub().broadcast_to(now, [a, closing], data);
    assert_eq!(report.sent, 1);
    assert_eq!(report.refused[0].0, closing);
}

#[test]
fn stats_count_bytes_reasons_and_stale_calls() {
    let mut d = driver_with(Config::default());
    let a = d.open();
    let b = d.open();
    d.receive(a, b"12345").unwrap();
    d.send(a, b"abc").unwrap();
    d.kick(a, KickMode::Graceful, 1).unwrap();
    d.peer_eof(b).unwrap();
    let _ = d.send(a, b"x"); // stale after release
    let s = d.hub().stats();
    assert_eq!((s.opened, s.released, s.live, s.usable), (2, 2, 0, 0));
    assert_eq!(
        (s.bytes_received, s.bytes_queued, s.bytes_written),
        (5, 3, 3)
    );
    assert_eq!((s.disconnected.kicked, s.disconnected.peer_closed), (1, 1));
    assert_eq!(s.disconnected.total(), 2);
    assert_eq!(s.stale_calls, 1);
}

#[test]
fn invalid_config_is_a_typed_error() {
    let err = Hub::new(Config::default().with(|c| c.max_channels = 0)).unwrap_err();
    assert_eq!(err, ConfigError::MaxChannels(0));
}

#[test]
fn huge_timeouts_never_overflow() {
    let mut d = driver_with(Config::default().with(|c| {
        c.idle_timeout = Some(Duration::MAX);
        c.login_timeout = Some(Duration::MAX);
        c.flush_timeout = Duration::MAX;
        c.holder_overdue_after = Duration::MAX;
    }));
    d.set_peer_answers_fin(false);
    let id = d.open();
    d.attach(id).unwrap();
    d.advance(secs(1_000_000));
    d.kick(id, KickMode::Graceful, 0).unwrap();
    d.advance(secs(1_000_000));
    assert_eq!(d.hub().state(id), Ok(ChannelState::Closing));
}

fn driver_with(config: Config) -> Driver {
    Driver::new(config).unwrap()
}

#[test]
fn activity_costs_no_timer_entries_and_poll_timeout_stays_exact() {
    let mut d = driver_with(Config::default().with(|c| c.idle_timeout = Some(secs(30))));
    let busy = d.open();
    let idle = d.open();
    let idle_deadline = d.now() + secs(30);
    for _ in 0..10_000 {
        d.receive(busy, b"x").unwrap();
    }
    // Invariant 8: traffic does not grow the deadline heap.
    assert!(d.hub().stats().timer_entries <= 4, "{:?}", d.hub().stats());
    d.advance(secs(20));
    d.receive(busy, b"x").unwrap();
    assert_eq!(d.hub().poll_timeout(), Some(idle_deadline));
    d.advance(secs(10));
    assert_eq!(
        d.disconnect_reason(idle),
        Some(DisconnectReason::IdleTimeout)
    );
    // The busy channel's real deadline, not the one armed before its traffic.
    assert_eq!(d.hub().poll_timeout(), Some(d.now() + secs(20)));
    assert_eq!(d.hub().state(busy), Ok(ChannelState::Open));
}

/// A queue limit of `limit` payload bytes (no per-message overhead), with
/// the default watermarks for it.
fn payload_only(limit: usize) -> Config {
    Config::default()
        .with_queue_limit(limit)
        .with(|c| c.message_overhead = 0)
}
