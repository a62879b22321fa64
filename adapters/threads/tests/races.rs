//! Races between threads: the driver decides alone, so every race has
//! exactly one winner and every channel exactly one `Disconnected`.

mod common;

use std::net::Shutdown;
use std::sync::Barrier;
use std::time::Duration;

use common::{config, connect, start, stop};
use tether_threads::Error;
use tether_threads::tether_core::{ChannelId, Config, Event, KickError, KickMode};

fn disconnects_of(log: &common::Log, id: ChannelId) -> usize {
    log.count(|e| matches!(e, Event::Disconnected { id: i, .. } if *i == id))
}

#[test]
fn kick_racing_peer_eof_gives_exactly_one_disconnected_1000_times() {
    let (handle, mut log) = start(config(|c| c.flush_timeout = Duration::from_secs(2)));
    let mut ids = Vec::with_capacity(1000);
    for round in 0..1000 {
        let client = connect(&handle);
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
                let verdict = handle.blocking().kick(id, mode, round);
                assert!(
                    matches!(
                        verdict,
                        Ok(())
                            | Err(Error::Kick(
                                KickError::AlreadyClosing { .. } | KickError::Id(_)
                            ))
                    ),
                    "{verdict:?}"
                );
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
    let stats = handle.blocking().stats().unwrap();
    assert_eq!(stats.core.live, 0);
    assert_eq!(stats.core.opened, 1000);
    assert_eq!(stats.core.released, 1000);
    assert_eq!(stats.core.disconnected.total(), 1000);
    stop(&handle, Duration::from_secs(1));
}

#[test]
fn eight_threads_kicking_one_id_get_one_ok() {
    let (handle, mut log) = start(Config::default());
    for round in 0..20u32 {
        let client = connect(&handle);
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
                        handle.blocking().kick(id, mode, round)
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
                        | Err(Error::Kick(
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
    stop(&handle, Duration::from_secs(1));
}
