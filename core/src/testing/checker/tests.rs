//! The checker must notice a hub that lies: each test feeds outputs a
//! broken hub could produce and expects the right invariant number.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::{ChannelId, Config, DisconnectReason, KickMode};

fn peer() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// A checker with one channel opened (by a real hub), and that id.
fn opened() -> (Checker, Hub, ChannelId, Instant) {
    let config = Config::default();
    let mut hub = Hub::new(config.clone()).unwrap();
    let mut checker = Checker::new(&config);
    let now = Instant::now();
    let (mut a, mut e) = (Vec::new(), Vec::new());
    let out = checker.step(
        &mut hub,
        now,
        &Input::Accept { peer: peer() },
        &mut a,
        &mut e,
    );
    let Ok(Outcome::Opened(id)) = out else {
        panic!("{out:?}")
    };
    (checker, hub, id, now)
}

#[test]
fn a_correct_lifecycle_passes() {
    let (mut c, mut hub, id, now) = opened();
    let (mut a, mut e) = (Vec::new(), Vec::new());
    for input in [
        Input::Attach { id },
        Input::Send {
            id,
            data: Bytes::from_static(b"hi"),
        },
        Input::Written { id, n: 2 },
        Input::Kick {
            id,
            mode: KickMode::Graceful,
            code: 1,
        },
        Input::PeerEof { id },
        Input::Detach { id },
        Input::Closed { id },
        Input::Closed { id },
    ] {
        c.step(&mut hub, now, &input, &mut a, &mut e).unwrap();
    }
    assert!(e.contains(&Event::Released { id }));
    assert_eq!(c.steps(), 9);
}

#[test]
fn a_second_disconnected_breaks_invariant_1() {
    let (mut c, _hub, id, now) = opened();
    c.input(
        now,
        &Input::Kick {
            id,
            mode: KickMode::Abort,
            code: 1,
        },
        Outcome::Ok,
    );
    let reason = DisconnectReason::Kicked { code: 1 };
    c.event(&Event::Disconnected { id, reason });
    c.event(&Event::Disconnected { id, reason });
    c.action(&Action::Abort { id });
    c.action(&Action::CloseSocket { id });
    assert_eq!(c.finish_step().unwrap_err().invariant, 1);
}

#[test]
fn received_after_disconnected_breaks_invariant_2() {
    let (mut c, mut hub, id, now) = opened();
    let (mut a, mut e) = (Vec::new(), Vec::new());
    let kick = Input::Kick {
        id,
        mode: KickMode::Graceful,
        code: 1,
    };
    c.step(&mut hub, now, &kick, &mut a, &mut e).unwrap();
    let data = Bytes::from_static(b"late");
    c.input(
        now,
        &Input::Received {
            id,
            data: data.clone(),
        },
        Outcome::Ok,
    );
    c.event(&Event::Received { id, data });
    assert_eq!(c.finish_step().unwrap_err().invariant, 2);
}

#[test]
fn an_abort_that_waits_breaks_invariant_3() {
    let (mut c, _hub, id, now) = opened();
    c.input(
        now,
        &Input::Kick {
            id,
            mode: KickMode::Abort,
            code: 1,
        },
        Outcome::Ok,
    );
    let reason = DisconnectReason::Kicked { code: 1 };
    c.event(&Event::Disconnected { id, reason });
    let v = c.finish_step().unwrap_err();
    assert_eq!(v.invariant, 3, "{v}");
    assert!(v.to_string().contains("Abort"), "{v}");
}

#[test]
fn a_transmit_after_the_kick_breaks_invariant_4() {
    let (mut c, mut hub, id, now) = opened();
    let (mut a, mut e) = (Vec::new(), Vec::new());
    let kick = Input::Kick {
        id,
        mode: KickMode::Graceful,
        code: 1,
    };
    c.step(&mut hub, now, &kick, &mut a, &mut e).unwrap();
    let data = Bytes::from_static(b"x");
    c.input(
        now,
        &Input::Send {
            id,
            data: data.clone(),
        },
        Outcome::Ok,
    );
    c.action(&Action::Transmit { id, data });
    assert_eq!(c.finish_step().unwrap_err().invariant, 4);
}

#[test]
fn a_close_under_a_holder_breaks_invariant_5() {
    let (mut c, mut hub, id, now) = opened();
    let (mut a, mut e) = (Vec::new(), Vec::new());
    c.step(&mut hub, now, &Input::Attach { id }, &mut a, &mut e)
        .unwrap();
    c.input(
        now,
        &Input::Kick {
            id,
            mode: KickMode::Abort,
            code: 1,
        },
        Outcome::Ok,
    );
    c.event(&Event::Disconnected {
        id,
        reason: DisconnectReason::Kicked { code: 1 },
    });
    c.action(&Action::Abort { id });
    c.action(&Action::CloseSocket { id });
    assert_eq!(c.finish_step().unwrap_err().invariant, 5);
}

#[test]
fn a_reused_live_slot_or_accepted_stale_id_breaks_invariant_6() {
    let (mut c, _hub, id, now) = opened();
    c.input(now, &Input::Accept { peer: peer() }, Outcome::Opened(id));
    assert_eq!(c.finish_step().unwrap_err().invariant, 6);

    let (mut c, mut hub, id, now) = opened();
    let (mut a, mut e) = (Vec::new(), Vec::new());
    for input in [
        Input::Kick {
            id,
            mode: KickMode::Abort,
            code: 1,
        },
        Input::Closed { id },
    ] {
        c.step(&mut hub, now, &input, &mut a, &mut e).unwrap();
    }
    c.input(now, &Input::Authenticate { id }, Outcome::Ok);
    assert_eq!(c.finish_step().unwrap_err().invariant, 6);
}

#[test]
fn a_missed_or_late_deadline_breaks_invariant_7() {
    let config = Config {
        idle_timeout: Some(Duration::from_secs(1)),
        ..Config::default()
    };
    let mut c = Checker::new(&config);
    let now = Instant::now();
    let id = ChannelId::from_parts(0, 0, 1).unwrap();
    c.input(now, &Input::Accept { peer: peer() }, Outcome::Opened(id));
    c.event(&Event::Opened { id, peer: peer() });
    c.poll_timeout(Some(now + Duration::from_secs(2)));
    assert_eq!(c.finish_step().unwrap_err().invariant, 7);

    let mut c = Checker::new(&config);
    c.input(now, &Input::Accept { peer: peer() }, Outcome::Opened(id));
    c.event(&Event::Opened { id, peer: peer() });
    c.finish_step().unwrap();
    c.input(now + Duration::from_secs(1), &Input::Timeout, Outcome::Ok);
    assert_eq!(c.finish_step().unwrap_err().invariant, 7);
}

#[test]
fn an_over_limit_accept_breaks_invariant_12() {
    let config = Config::default().with_max_channels(1);
    let mut c = Checker::new(&config);
    let now = Instant::now();
    let id = ChannelId::from_parts(0, 0, 1).unwrap();
    c.input(now, &Input::Accept { peer: peer() }, Outcome::Opened(id));
    c.event(&Event::Opened { id, peer: peer() });
    // No PauseAccept at the limit.
    assert_eq!(c.finish_step().unwrap_err().invariant, 12);
}

#[test]
fn violations_display_step_and_invariant() {
    let v = Violation::new(7, 4, "boom");
    assert_eq!(v.to_string(), "invariant 4 violated at step 7: boom");
}
