//! The adapter's own loopback tests: each lifecycle path over real TCP.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::{PATIENCE, connect, read_exact, read_to_end, start};
use tether_threads::CallError;
use tether_threads::tether_core::{
    Config, DisconnectReason, Event, KickError, KickMode, SendError,
};

#[test]
fn echo_then_graceful_kick_delivers_queued_bytes_then_eof() {
    let (server, mut log) = start(Config::default());
    let handle = server.handle();
    let mut client = connect(&server);
    let id = log.next_opened();
    client.write_all(b"ping").unwrap();
    let got = log.wait("received", |e| matches!(e, Event::Received { .. }));
    assert_eq!(
        got,
        Event::Received {
            id,
            data: "ping".into()
        }
    );
    handle.send(id, "queued-1 ").unwrap();
    handle.send(id, "queued-2").unwrap();
    handle.kick(id, KickMode::Graceful, 7).unwrap();
    assert_eq!(log.disconnected(id), DisconnectReason::Kicked { code: 7 });
    // The client reads everything queued before the kick, then EOF.
    assert_eq!(read_to_end(&mut client).unwrap(), b"queued-1 queued-2");
    drop(client); // our EOF completes the graceful close
    log.released(id);
    assert!(matches!(
        handle.send(id, "late"),
        Err(CallError::Rejected(SendError::Id(_)))
    ));
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn abortive_kick_resets_the_client() {
    let (server, mut log) = start(Config::default());
    let handle = server.handle();
    let mut client = connect(&server);
    let id = log.next_opened();
    handle.kick(id, KickMode::Abort, 1).unwrap();
    assert_eq!(log.disconnected(id), DisconnectReason::Kicked { code: 1 });
    log.released(id);
    let err = read_to_end(&mut client).expect_err("an abort must reset, not FIN");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn peer_close_gives_exactly_one_disconnected_and_a_release() {
    let (server, mut log) = start(Config::default());
    let client = connect(&server);
    let id = log.next_opened();
    drop(client);
    assert_eq!(log.disconnected(id), DisconnectReason::PeerClosed);
    log.released(id);
    log.settle(Duration::from_millis(50));
    assert_eq!(
        log.count(|e| matches!(e, Event::Disconnected { .. })),
        1,
        "{:?}",
        log.seen
    );
    let stats = server.handle().stats().unwrap();
    assert_eq!(stats.core.live, 0);
    assert_eq!(stats.sockets_closed, 1);
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn stale_ids_are_rejected_after_release() {
    let (server, mut log) = start(Config::default());
    let handle = server.handle();
    let client = connect(&server);
    let old = log.next_opened();
    drop(client);
    log.released(old);
    let _client = connect(&server);
    let new = log.next_opened();
    assert_eq!(old.slot(), new.slot(), "the slot is reused");
    assert!(matches!(
        handle.kick(old, KickMode::Abort, 0),
        Err(CallError::Rejected(KickError::Id(_)))
    ));
    assert!(matches!(
        handle.send(old, "x"),
        Err(CallError::Rejected(SendError::Id(_)))
    ));
    handle.send(new, "still fine").unwrap();
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn a_peer_that_never_reads_gets_a_writer_and_does_not_slow_others() {
    let config = Config::default().with_queue_limit(64 << 20);
    let (server, mut log) = start(config);
    let handle = server.handle();
    let slow = connect(&server);
    let slow_id = log.next_opened();
    let mut fast = connect(&server);
    let fast_id = log.next_opened();
    // Far more than the socket buffers hold: the owner's direct write stops
    // short and a writer thread takes the rest, blocked on the slow peer.
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..16 {
        handle.send(slow_id, chunk.clone()).unwrap();
    }
    let started = Instant::now();
    for i in 0..200u32 {
        let line = format!("{i}\n");
        handle.send(fast_id, line.clone()).unwrap();
        assert_eq!(read_exact(&mut fast, line.len()), line.as_bytes());
    }
    assert!(started.elapsed() < PATIENCE);
    let stats = handle.stats().unwrap();
    assert!(stats.writers_started >= 1, "{stats:?}");
    assert!(stats.core.bytes_written < 16 << 20);
    // The abort reaches the writer blocked on the full buffer within a tick.
    handle.kick(slow_id, KickMode::Abort, 0).unwrap();
    log.released(slow_id);
    drop(slow);
    let stats = handle.stats().unwrap();
    assert!(stats.core.bytes_dropped > 0, "{stats:?}");
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn graceful_kick_with_a_stuck_peer_escalates_at_the_flush_deadline() {
    let config = Config {
        flush_timeout: Duration::from_millis(200),
        ..Config::default().with_queue_limit(64 << 20)
    };
    let (server, mut log) = start(config);
    let handle = server.handle();
    let mut client = connect(&server);
    let id = log.next_opened();
    for _ in 0..16 {
        handle.send(id, vec![b'y'; 1 << 20]).unwrap();
    }
    let kicked = Instant::now();
    handle.kick(id, KickMode::Graceful, 0).unwrap();
    log.released(id);
    let waited = kicked.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < PATIENCE);
    // What the client gets is a prefix of what was sent, then a reset.
    let err = read_to_end(&mut client).expect_err("escalation resets");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn idle_channels_time_out() {
    let config = Config {
        idle_timeout: Some(Duration::from_millis(100)),
        ..Config::default()
    };
    let (server, mut log) = start(config);
    let mut client = connect(&server);
    let id = log.next_opened();
    assert_eq!(log.disconnected(id), DisconnectReason::IdleTimeout);
    assert_eq!(read_to_end(&mut client).unwrap(), b"");
    drop(client);
    log.released(id);
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn half_close_allowed_lets_the_app_answer_after_the_peers_eof() {
    let config = Config {
        half_close: tether_threads::tether_core::HalfClosePolicy::Allow,
        ..Config::default()
    };
    let (server, mut log) = start(config);
    let handle = server.handle();
    let mut client = connect(&server);
    let id = log.next_opened();
    client.write_all(b"question").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let _ = log.wait("read-closed", |e| matches!(e, Event::ReadClosed { .. }));
    handle.send(id, "answer").unwrap();
    handle.kick(id, KickMode::Graceful, 0).unwrap();
    assert_eq!(read_to_end(&mut client).unwrap(), b"answer");
    log.released(id);
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn channel_limit_refuses_then_accepts_again_after_release() {
    let config = Config::default().with_max_channels(2);
    let (server, mut log) = start(config);
    let handle = server.handle();
    let a = connect(&server);
    let a_id = log.next_opened();
    let _b = connect(&server);
    let _b_id = log.next_opened();
    // Paused: a third connection waits in the backlog (or, if the acceptor
    // was already blocked in accept, is refused and closed at once).
    let mut c = connect(&server);
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1];
    match c.read(&mut buf) {
        Ok(0) => c = connect(&server), // refused and closed: try again later
        Err(e) => assert!(matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        )),
        Ok(_) => panic!("nothing is sent to a refused connection"),
    }
    assert!(handle.stats().unwrap().core.accept_paused);
    drop(a);
    log.released(a_id);
    // Resumed (live 1 <= resume mark 1): the waiting client becomes a channel.
    let c_id = log.next_opened();
    handle.send(c_id, "welcome").unwrap();
    c.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(read_exact(&mut c, 7), b"welcome");
    server.shutdown(Duration::from_secs(1));
}

#[test]
fn a_paused_acceptor_stops_calling_accept() {
    let config = Config::default().with_max_channels(2);
    let (server, mut log) = start(config);
    let handle = server.handle();
    let _a = connect(&server);
    let _b = connect(&server);
    let _ = (log.next_opened(), log.next_opened());
    // Five more clients while paused: they complete the handshake in the
    // kernel backlog, but the acceptor takes at most one (an `accept` that
    // was already blocked when the pause came), which the hub refuses.
    let waiting: Vec<_> = (0..5).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let stats = handle.stats().unwrap();
    assert!(stats.core.accept_paused);
    assert!(stats.accepted <= 3, "accept kept being called: {stats:?}");
    assert!(stats.core.refused <= 1, "{stats:?}");
    assert_eq!(stats.core.live, 2);
    drop(waiting);
    server.shutdown(Duration::from_millis(200));
}

#[test]
fn shutdown_drains_every_channel_within_its_deadline() {
    let (server, mut log) = start(Config::default());
    let mut clients: Vec<_> = (0..20).map(|_| connect(&server)).collect();
    let ids: Vec<_> = (0..20).map(|_| log.next_opened()).collect();
    let handle = server.handle();
    for id in &ids {
        handle.send(*id, "bye\n").unwrap();
    }
    let started = Instant::now();
    // Half the clients answer the FIN by closing; the others never do and
    // are aborted at the deadline.
    let closers: Vec<_> = clients
        .drain(..10)
        .map(|mut c| {
            std::thread::spawn(move || {
                assert_eq!(read_to_end(&mut c).unwrap(), b"bye\n");
            })
        })
        .collect();
    server.shutdown(Duration::from_millis(300));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    for t in closers {
        t.join().unwrap();
    }
    log.settle(Duration::from_millis(10));
    assert_eq!(
        log.count(|e| matches!(
            e,
            Event::Disconnected {
                reason: DisconnectReason::ServerShutdown,
                ..
            }
        )),
        20
    );
    assert_eq!(log.count(|e| matches!(e, Event::ShutdownComplete)), 1);
    assert!(matches!(handle.stats(), Err(tether_threads::Stopped)));
}
