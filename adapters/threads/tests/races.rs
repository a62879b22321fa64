//! Races between threads: the owner thread decides alone, so every race
//! has exactly one winner and every channel exactly one `Disconnected`.

mod common;

use std::net::Shutdown;
use std::sync::Barrier;
use std::time::Duration;

use common::{connect, start};
use tether_threads::CallError;
use tether_threads::tether_core::{ChannelId, Config, Event, KickError, KickMode};

fn disconnects_of(log: &common::Log, id: ChannelId) -> usize {
    log.count(|e| matches!(e, Event::Disconnected { id: i, .. } if *i == id))
}

#[test]
fn kick_racing_peer_eof_gives_exactly_one_disconnected_1000_times() {
    let config = Config {
        flush_timeout: Duration::from_secs(2),
        ..Config::default()
    };
    let (server, mut log) = start(config);
    let handle = server.handle();
    let mut ids = Vec::with_capacity(1000);
    for round in 0..1000 {
        let client = connect(&server);
        let id = log.next_opened();
        let mode = if round % 2 == 0 {
            KickMode::Graceful
        } else {
            KickMode::Abort
        };
        let start = Barrier::new(2);
        let kept = std::thread::scope(|s| {
            s.spawn(|| {
                start.wait();
                // Either verdict is fine: the kick may come before or after
                // the peer's EOF turned the channel offline.
                let _ = handle.kick(id, mode, round);
            });
            let peer = s.spawn(|| {
                start.wait();
                // Half the peers close outright, half send EOF and stay
                // until the channel is released.
                if round % 4 < 2 {
                    drop(client);
                    None
                } else {
                    let _ = client.shutdown(Shutdown::Write);
                    Some(client)
                }
            });
            peer.join().unwrap()
        });
        log.released(id);
        drop(kept);
        ids.push(id);
    }
    log.settle(Duration::from_millis(50));
    for id in ids {
        assert_eq!(disconnects_of(&log, id), 1, "channel {id}");
    }
    let stats = handle.stats().unwrap();
    assert_eq!(stats.core.live, 0);
    assert_eq!(stats.core.disconnected.total(), 1000);
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn eight_threads_kicking_one_id_get_one_ok() {
    let (server, mut log) = start(Config::default());
    let handle = server.handle();
    for round in 0..20u32 {
        let client = connect(&server);
        let id = log.next_opened();
        let mode = if round % 2 == 0 {
            KickMode::Graceful
        } else {
            KickMode::Abort
        };
        let start = Barrier::new(8);
        let verdicts: Vec<_> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        handle.kick(id, mode, round)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let ok = verdicts.iter().filter(|v| v.is_ok()).count();
        assert_eq!(ok, 1, "{verdicts:?}");
        for v in &verdicts {
            assert!(
                matches!(
                    v,
                    Ok(())
                        | Err(CallError::Rejected(
                            KickError::AlreadyClosing { .. } | KickError::Id(_)
                        ))
                ),
                "{v:?}"
            );
        }
        drop(client);
        log.released(id);
        assert_eq!(disconnects_of(&log, id), 1);
    }
    server.shutdown(Duration::from_secs(1));
}
