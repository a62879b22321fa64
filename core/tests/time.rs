//! Time: the clock rule (an earlier `now` is clamped, a `now` more than
//! `max_clock_jump` ahead is held until the next input confirms it, a hub
//! with no channel, a shut-down one included, takes any `now`),
//! `poll_timeout`, and what happens after shutdown.
//! Invariant numbers refer to docs/design.md §4.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::testing::Driver;
use tether_core::{Action, Config, DisconnectReason, Event, Hub, KickMode, ShutdownHow};

const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn peer() -> std::net::SocketAddr {
    "127.0.0.1:4000".parse().unwrap()
}

fn actions(hub: &mut Hub) -> Vec<Action> {
    std::iter::from_fn(|| hub.poll_action()).collect()
}

fn events(hub: &mut Hub) -> Vec<Event> {
    std::iter::from_fn(|| hub.poll_event()).collect()
}

#[test]
fn one_far_future_instant_does_not_move_the_clock_for_good() {
    let mut hub = Hub::new(Config::default()).unwrap(); // flush_timeout 5 s
    let t0 = Instant::now();
    let id = hub.accept(t0, peer()).unwrap();
    hub.attach(t0, id).unwrap();
    // A wild instant, 100 years ahead: held, carried out at the hub's time.
    hub.handle_timeout(t0 + 100 * YEAR);
    assert_eq!(hub.now(), Some(t0));
    assert_eq!(hub.stats().clock_jumps_held, 1);
    // Real time goes on. A graceful kick's flush deadline, set after the
    // wild instant, fires at its own time (kick + 5 s), not in 100 years.
    let t1 = t0 + secs(1);
    hub.send(t1, id, Bytes::from_static(b"never written"))
        .unwrap();
    hub.kick(t1, id, KickMode::Graceful, 0).unwrap();
    assert_eq!(hub.now(), Some(t1));
    assert_eq!(hub.poll_timeout(), Some(t1 + secs(5)));
    let _ = (actions(&mut hub), events(&mut hub));
    hub.handle_timeout(t1 + secs(5));
    assert!(actions(&mut hub).contains(&Action::Abort { id }));
    assert_eq!(hub.stats().clock_jumps_held, 1);
}

#[test]
fn a_far_future_send_is_carried_out_at_the_hubs_time() {
    let mut hub = Hub::new(Config::default()).unwrap(); // stall_timeout 10 s
    let t0 = Instant::now();
    let id = hub.accept(t0, peer()).unwrap();
    // The send happens; only its time is not believed: the stall clock
    // starts at t0, so the stall deadline is t0 + 10 s.
    hub.send(t0 + 100 * YEAR, id, Bytes::from_static(b"x"))
        .unwrap();
    assert_eq!(hub.poll_timeout(), Some(t0 + secs(10)));
    assert_eq!(hub.channel(id).unwrap().age, Duration::ZERO);
}

#[test]
fn a_real_jump_is_believed_when_the_next_input_confirms_it() {
    let mut hub = Hub::new(Config::default().with(|c| c.idle_timeout = Some(secs(3600)))).unwrap();
    let t0 = Instant::now();
    let id = hub.accept(t0, peer()).unwrap();
    hub.attach(t0, id).unwrap();
    let _ = events(&mut hub);
    // The machine's clock jumped two days ahead and keeps reading that time.
    let later = t0 + secs(2 * 24 * 3600);
    hub.handle_timeout(later);
    assert_eq!(hub.now(), Some(t0), "held on the first sight");
    assert!(events(&mut hub).is_empty());
    hub.handle_timeout(later + secs(1)); // confirmed: at or after, within the bound
    assert_eq!(hub.now(), Some(later + secs(1)));
    assert_eq!(
        events(&mut hub),
        vec![Event::Disconnected {
            id,
            reason: DisconnectReason::IdleTimeout
        }]
    );
    assert_eq!(hub.stats().clock_jumps_held, 1);
}

#[test]
fn a_jump_within_the_bound_is_believed_at_once() {
    let mut hub = Hub::new(Config::default().with(|c| c.max_clock_jump = secs(60))).unwrap();
    let t0 = Instant::now();
    let id = hub.accept(t0, peer()).unwrap();
    hub.handle_received(t0 + secs(60), id, Bytes::from_static(b"x"))
        .unwrap();
    assert_eq!(hub.now(), Some(t0 + secs(60)));
    // One more than the bound: held. An earlier time next does not confirm it.
    hub.handle_received(t0 + secs(121), id, Bytes::from_static(b"x"))
        .unwrap();
    assert_eq!(hub.now(), Some(t0 + secs(60)));
    hub.handle_timeout(t0 + secs(61));
    assert_eq!(hub.now(), Some(t0 + secs(61)));
    let s = hub.stats();
    assert_eq!((s.clock_jumps_held, s.time_regressions), (1, 0));
}

#[test]
fn an_empty_hub_takes_any_time_even_an_earlier_one() {
    let mut hub = Hub::new(Config::default()).unwrap();
    let t0 = Instant::now();
    hub.handle_timeout(t0 + 100 * YEAR); // nothing holds a time: believed
    assert_eq!(hub.now(), Some(t0 + 100 * YEAR));
    let id = hub.accept(t0, peer()).unwrap(); // back to real time
    assert_eq!(hub.now(), Some(t0));
    hub.kick(t0, id, KickMode::Graceful, 0).unwrap();
    assert_eq!(hub.poll_timeout(), Some(t0 + secs(5)));
    let s = hub.stats();
    assert_eq!((s.clock_jumps_held, s.time_regressions), (0, 0));
}

#[test]
fn a_hub_after_shutdown_complete_takes_any_time_and_counts_no_regression() {
    // docs/design.md §2: a hub with no channel holds no time. After
    // `ShutdownComplete` nothing is left to hold one: its grace deadline is
    // moot (`poll_timeout` is `None`).
    let mut hub = Hub::new(Config::default()).unwrap();
    let t0 = Instant::now();
    let t1 = t0 + secs(60);
    let id = hub.accept(t1, peer()).unwrap();
    hub.shutdown(t1, secs(30));
    hub.handle_peer_eof(t1, id).unwrap(); // the peer answers our FIN
    hub.handle_closed(t1, id).unwrap();
    assert!(events(&mut hub).contains(&Event::ShutdownComplete));
    let _ = actions(&mut hub);
    // Earlier instants, from the adapter's last calls or a clock stepped
    // back: taken as they are, not clamped, not counted.
    hub.handle_timeout(t0);
    assert_eq!(hub.now(), Some(t0));
    assert!(hub.accept(t0 + secs(1), peer()).is_err()); // still refused
    assert_eq!(hub.now(), Some(t0 + secs(1)));
    hub.handle_timeout(t0);
    // A far jump is believed too: nothing holds a time to protect.
    hub.handle_timeout(t0 + 100 * YEAR);
    assert_eq!(hub.now(), Some(t0 + 100 * YEAR));
    let s = hub.stats();
    assert_eq!((s.time_regressions, s.clock_jumps_held), (0, 0));
    assert_eq!(hub.poll_timeout(), None);
    assert!(actions(&mut hub).is_empty() && events(&mut hub).is_empty());

    // The same for a shutdown of a hub that had no channel at all.
    let mut hub = Hub::new(Config::default()).unwrap();
    hub.shutdown(t1, secs(30));
    hub.handle_timeout(t0);
    assert_eq!(hub.now(), Some(t0));
    assert_eq!(hub.stats().time_regressions, 0);
}

#[test]
fn a_shutdown_under_way_still_clamps_an_earlier_time() {
    // While the shutdown waits on a channel, that channel holds the time.
    let mut hub = Hub::new(Config::default()).unwrap();
    let t1 = Instant::now() + secs(60);
    let _id = hub.accept(t1, peer()).unwrap();
    hub.shutdown(t1, secs(30));
    hub.handle_timeout(t1 - secs(1));
    assert_eq!(hub.now(), Some(t1));
    assert_eq!(hub.stats().time_regressions, 1);
}

#[test]
fn the_driver_advances_past_the_bound_in_believed_steps() {
    let mut d = Driver::new(Config::default().with(|c| c.idle_timeout = Some(3 * YEAR))).unwrap();
    let id = d.open();
    d.advance(3 * YEAR - secs(1));
    assert_eq!(d.disconnects(id), 0);
    d.advance(secs(1));
    assert_eq!(d.disconnect_reason(id), Some(DisconnectReason::IdleTimeout));
    assert_eq!(d.hub().stats().clock_jumps_held, 0);
}

#[test]
fn poll_timeout_is_none_once_shutdown_is_complete() {
    // An adapter that loops until `poll_timeout` is `None` must not linger
    // for the grace period after `ShutdownComplete`.
    let mut hub = Hub::new(Config::default()).unwrap();
    let t0 = Instant::now();
    let id = hub.accept(t0, peer()).unwrap();
    hub.shutdown(t0, secs(30));
    assert_eq!(
        hub.poll_timeout(),
        Some(t0 + secs(5)),
        "the flush deadline first"
    );
    assert_eq!(
        actions(&mut hub),
        vec![
            Action::PauseAccept,
            Action::Shutdown {
                id,
                how: ShutdownHow::Write
            }
        ]
    );
    hub.handle_peer_eof(t0, id).unwrap(); // the peer answers our FIN
    assert!(actions(&mut hub).contains(&Action::CloseSocket { id }));
    hub.handle_closed(t0, id).unwrap();
    assert!(events(&mut hub).contains(&Event::ShutdownComplete));
    assert!(hub.is_shutdown_complete());
    assert_eq!(hub.poll_timeout(), None);
    // The grace deadline passing later changes nothing.
    hub.handle_timeout(t0 + secs(30));
    assert!(actions(&mut hub).is_empty() && events(&mut hub).is_empty());
    assert_eq!(hub.poll_timeout(), None);
}

#[test]
fn poll_timeout_is_none_after_shutting_down_an_empty_hub() {
    let mut hub = Hub::new(Config::default()).unwrap();
    hub.shutdown(Instant::now(), secs(30));
    assert_eq!(events(&mut hub), vec![Event::ShutdownComplete]);
    assert_eq!(hub.poll_timeout(), None);
}

#[test]
fn time_running_backwards_is_clamped_and_counted() {
    let mut d =
        Driver::new(Config::default().with(|c| c.idle_timeout = Some(Duration::from_secs(10))))
            .unwrap();
    let id = d.open();
    let t0 = d.now();
    d.advance(Duration::from_secs(5));
    // An input stamped 5 s in the past: clamped to "now", not a panic.
    d.hub()
        .handle_received(t0, id, Bytes::from_static(b"x"))
        .unwrap();
    d.hub().handle_timeout(t0);
    assert_eq!(d.hub().stats().time_regressions, 2);
    // Activity counted at the clamped time (5 s), so idle fires at 15 s.
    d.advance(Duration::from_secs(9));
    assert_eq!(d.disconnects(id), 0);
    d.advance(Duration::from_secs(1));
    assert_eq!(d.disconnect_reason(id), Some(DisconnectReason::IdleTimeout));
}

#[test]
fn poll_timeout_is_never_in_the_past_after_handle_timeout() {
    let mut d = Driver::new(Config::default().with(|c| {
        c.idle_timeout = Some(Duration::from_secs(1));
        c.login_timeout = Some(Duration::from_millis(500));
    }))
    .unwrap();
    assert_eq!(d.hub().poll_timeout(), None);
    let ids: Vec<_> = (0..10).map(|_| d.open()).collect();
    for step in 0..40 {
        d.advance(Duration::from_millis(100));
        if step % 3 == 0 {
            let _ = d.receive(ids[step % ids.len()], b"x");
        }
        let now = d.now();
        if let Some(at) = d.hub().poll_timeout() {
            assert!(
                at > now,
                "poll_timeout {at:?} not after {now:?} (invariant 7)"
            );
        }
    }
    assert!(ids.iter().all(|id| d.is_released(*id)));
    assert_eq!(d.hub().poll_timeout(), None);
}
