//! Holders, socket closes, releases and ids: the end of a channel's life.
//! Invariant numbers refer to docs/design.md §4.

use std::io::ErrorKind;
use std::time::Duration;

use tether_core::testing::Driver;
use tether_core::{
    Action, ChannelState, Config, DisconnectReason, Event, IdError, InputError, KickError,
    KickMode, SendError,
};

fn driver() -> Driver {
    Driver::new(Config::default()).unwrap()
}

#[test]
fn close_waits_for_every_holder() {
    let mut d = driver();
    let id = d.open();
    d.attach(id).unwrap();
    d.attach(id).unwrap();
    d.kick(id, KickMode::Abort, 0).unwrap();
    assert!(!d.actions_for(id).contains(&Action::CloseSocket { id })); // invariant 5
    assert_eq!(d.hub().offline().next().unwrap().holders, 2);
    let now = d.now();
    d.hub().detach(now, id).unwrap();
    d.pump();
    assert!(!d.actions_for(id).contains(&Action::CloseSocket { id }));
    d.hub().detach(now, id).unwrap();
    d.pump();
    assert!(d.actions_for(id).contains(&Action::CloseSocket { id }));
    assert!(d.is_released(id));
}

#[test]
fn holder_errors_are_typed() {
    let mut d = driver();
    d.set_auto_close(false);
    let id = d.open();
    let now = d.now();
    assert_eq!(
        d.hub().detach(now, id),
        Err(InputError::NotAttached {
            id,
            state: ChannelState::Open
        })
    );
    d.kick(id, KickMode::Abort, 0).unwrap();
    assert_eq!(
        d.attach(id),
        Err(InputError::AttachOffline {
            id,
            state: ChannelState::Offline
        })
    );
}

#[test]
fn close_confirmation_must_be_requested_and_only_once() {
    let mut d = driver();
    d.set_auto_close(false);
    let id = d.open();
    let now = d.now();
    assert_eq!(
        d.hub().handle_closed(now, id),
        Err(InputError::CloseNotRequested {
            id,
            state: ChannelState::Open
        })
    );
    d.kick(id, KickMode::Abort, 0).unwrap();
    assert_eq!(d.hub().handle_closed(now, id), Ok(()));
    assert_eq!(
        d.hub().handle_closed(now, id),
        Err(InputError::Id(IdError::Stale(id)))
    );
    d.pump();
    assert!(d.is_released(id));
}

#[test]
fn reused_slot_gets_a_new_generation_and_old_ids_are_stale() {
    let mut d = driver();
    let old = d.open();
    d.kick(old, KickMode::Abort, 0).unwrap();
    assert!(d.is_released(old));
    let new = d.open();
    assert_eq!(new.slot(), old.slot());
    assert!(new.generation() > old.generation()); // invariant 6
    assert_eq!(d.send(old, b"x"), Err(SendError::Id(IdError::Stale(old))));
    assert!(matches!(
        d.receive(old, b"x"),
        Err(InputError::Id(IdError::Stale(_)))
    ));
    assert_eq!(d.transmitted(new), b""); // never aliased
    assert_eq!(d.hub().stats().stale_calls, 2);
}

#[test]
fn forged_ids_are_unknown_everywhere() {
    let mut d = driver();
    let real = d.open();
    let forged = tether_core::ChannelId::from_parts(0, real.slot(), real.generation() + 5).unwrap();
    let far = tether_core::ChannelId::from_parts(0, 4242, 1).unwrap();
    let other_shard =
        tether_core::ChannelId::from_parts(7, real.slot(), real.generation()).unwrap();
    for id in [forged, far, other_shard] {
        let now = d.now();
        assert_eq!(d.send(id, b"x"), Err(SendError::Id(IdError::Unknown(id))));
        assert_eq!(
            d.kick(id, KickMode::Abort, 0),
            Err(KickError::Id(IdError::Unknown(id)))
        );
        assert_eq!(d.attach(id), Err(InputError::Id(IdError::Unknown(id))));
        assert_eq!(
            d.hub().detach(now, id),
            Err(InputError::Id(IdError::Unknown(id)))
        );
        assert_eq!(
            d.hub().handle_closed(now, id),
            Err(InputError::Id(IdError::Unknown(id)))
        );
        assert!(d.hub().handle_written(now, id, 1).is_err());
    }
    assert_eq!(d.hub().state(real), Ok(ChannelState::Open));
}

#[test]
fn overdue_holder_is_reported_once_and_the_socket_stays_open() {
    let mut d =
        Driver::new(Config::default().with(|c| c.holder_overdue_after = Duration::from_secs(10)))
            .unwrap();
    let id = d.open();
    d.attach(id).unwrap();
    d.kick(id, KickMode::Abort, 0).unwrap();
    d.advance(Duration::from_secs(9));
    assert!(
        !d.events()
            .iter()
            .any(|e| matches!(e, Event::HolderOverdue { .. }))
    );
    d.advance(Duration::from_secs(100));
    let overdue: Vec<_> = d
        .events()
        .iter()
        .filter(|e| matches!(e, Event::HolderOverdue { .. }))
        .collect();
    assert_eq!(overdue.len(), 1);
    assert!(matches!(
        overdue[0],
        Event::HolderOverdue { holders: 1, waited, .. } if *waited == Duration::from_secs(10)
    ));
    assert!(!d.actions_for(id).contains(&Action::CloseSocket { id }));
    assert_eq!(d.hub().stats().holders_overdue, 1);
    let now = d.now();
    d.hub().detach(now, id).unwrap();
    d.pump();
    assert!(d.is_released(id));
}

#[test]
fn offline_queue_reports_reason_age_and_holders() {
    let mut d = driver();
    let a = d.open();
    let b = d.open();
    d.attach(a).unwrap();
    d.attach(b).unwrap();
    d.kick(a, KickMode::Abort, 5).unwrap();
    d.advance(Duration::from_secs(3));
    d.io_error(b, ErrorKind::ConnectionReset).unwrap();
    d.advance(Duration::from_secs(1));
    let q: Vec<_> = d.hub().offline().collect();
    assert_eq!(q.len(), 2);
    assert_eq!(
        (q[0].id, q[0].reason),
        (a, DisconnectReason::Kicked { code: 5 })
    );
    assert_eq!(q[0].age, Duration::from_secs(4));
    assert_eq!((q[1].id, q[1].reason), (b, DisconnectReason::PeerReset));
    assert_eq!(q[1].age, Duration::from_secs(1));
    assert!(q.iter().all(|e| e.holders == 1));
    let stats = d.hub().stats();
    assert_eq!(stats.offline_depth, 2);
    assert_eq!(stats.offline_peak, 2);
    assert_eq!(stats.offline_oldest, Some(Duration::from_secs(4)));
    let now = d.now();
    d.hub().detach(now, a).unwrap();
    d.pump();
    let q: Vec<_> = d.hub().offline().map(|e| e.id).collect();
    assert_eq!(q, vec![b]);
}
