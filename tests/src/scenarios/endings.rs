//! How a channel ends: kicks, the peer's close or reset, half-close, and
//! what a stale id can no longer do.

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use bytes::Bytes;
use tether_core::{
    Config, DisconnectReason, Event, HalfClosePolicy, IdError, KickError, KickMode, SendError,
};

use super::SOON;
use crate::client::{self, End};
use crate::rig::{Adapter, Rig, ServerUnderTest};

/// Graceful kick: the client reads everything queued, then EOF; the app
/// got `Disconnected(Kicked)` at once, and `Released` after the client
/// closed.
pub fn graceful_kick<A: Adapter>() {
    let rig = Rig::<A>::start(Config::default());
    let (mut client, id) = rig.connect();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    rig.server()
        .send(id, Bytes::from(payload.clone()))
        .expect("send");
    rig.server().kick(id, KickMode::Graceful, 7).expect("kick");
    // Disconnected is emitted by the kick itself, before the bytes are out.
    assert_eq!(rig.disconnected(id), DisconnectReason::Kicked { code: 7 });
    let (data, end) = client::read_to_end(&mut client, SOON);
    assert_eq!(end, End::Eof, "{}: graceful kick ends with FIN", A::NAME);
    assert!(
        data == payload,
        "{}: got {} of {} queued bytes",
        A::NAME,
        data.len(),
        payload.len()
    );
    drop(client);
    rig.released(id);
    assert_eq!(rig.log().disconnects_of(id), 1);
    assert_eq!(
        rig.server().kick(id, KickMode::Graceful, 7),
        Err(KickError::Id(IdError::Stale(id)))
    );
    rig.finish();
}

/// Abortive kick: the client sees a reset, not an EOF.
pub fn abortive_kick<A: Adapter>() {
    let rig = Rig::<A>::start(Config::default());
    let (mut client, id) = rig.connect();
    rig.server().kick(id, KickMode::Abort, 9).expect("kick");
    assert_eq!(rig.disconnected(id), DisconnectReason::Kicked { code: 9 });
    let (_, end) = client::read_to_end(&mut client, SOON);
    assert_eq!(end, End::Reset, "{}: abortive kick sends RST", A::NAME);
    rig.released(id);
    let stats = rig.server().stats();
    assert_eq!(stats.disconnected.kicked, 1);
    rig.finish();
}

/// Peer close: the bytes it sent arrive, then exactly one
/// `Disconnected(PeerClosed)`, then `Released`.
pub fn peer_close<A: Adapter>() {
    let rig = Rig::<A>::start(Config::default());
    let (mut client, id) = rig.connect();
    client.write_all(b"last words").expect("write");
    drop(client);
    assert_eq!(rig.disconnected(id), DisconnectReason::PeerClosed);
    rig.released(id);
    let log = rig.log();
    assert_eq!(log.disconnects_of(id), 1);
    drop(log);
    assert_eq!(rig.server().stats().bytes_received, 10);
    rig.finish();
}

/// The peer resets while the server is writing a large queue to it: the
/// channel ends with `PeerReset` and the unsent bytes are counted dropped.
pub fn peer_reset_mid_write<A: Adapter>() {
    let mut config = Config::default().with_queue_limit(16 << 20);
    config.high_watermark = 8 << 20;
    let rig = Rig::<A>::start(config);
    let client = client::connect_small_window(rig.addr());
    let id = rig.opened_id(&client, SOON).expect("opened");
    let chunk = Bytes::from(vec![b'x'; 256 << 10]);
    for _ in 0..32 {
        rig.server()
            .send(id, chunk.clone())
            .expect("send within the limit");
    }
    // Let the writer fill the socket buffers and block mid-queue.
    std::thread::sleep(Duration::from_millis(100));
    client::reset(client);
    let reason = rig.disconnected(id);
    assert_eq!(reason, DisconnectReason::PeerReset, "{}", A::NAME);
    rig.released(id);
    let stats = rig.server().stats();
    assert!(
        stats.bytes_dropped > 0,
        "{}: the unsent queue is counted dropped",
        A::NAME
    );
    assert_eq!(
        stats.bytes_written + stats.bytes_dropped,
        stats.bytes_queued,
        "{}",
        A::NAME
    );
    rig.finish();
}

/// A stale id is rejected by send and kick, and never reaches the client
/// that got the same slot next.
pub fn stale_id<A: Adapter>() {
    let rig = Rig::<A>::start(Config::default());
    let (client, old) = rig.connect();
    rig.server().kick(old, KickMode::Abort, 1).expect("kick");
    drop(client);
    rig.released(old);
    let (mut next, new) = rig.connect();
    // With several shards the next client may land on another hub, whose
    // slot numbers are its own.
    if new.shard() == old.shard() && new.slot() == old.slot() {
        assert!(
            new.generation() > old.generation(),
            "{}: generation must grow",
            A::NAME
        );
    }
    assert_ne!(new, old);
    assert_eq!(
        rig.server()
            .send(old, Bytes::from_static(b"for the old client\n")),
        Err(SendError::Id(IdError::Stale(old)))
    );
    assert_eq!(
        rig.server().kick(old, KickMode::Abort, 1),
        Err(KickError::Id(IdError::Stale(old)))
    );
    assert!(rig.server().stats().stale_calls >= 2);
    // A leaked stale send would reach the new client ahead of this line,
    // and the exact read below would see it.
    rig.server()
        .send(new, Bytes::from_static(b"yours\n"))
        .expect("send to the new id");
    assert_eq!(
        client::read_exact(&mut next, 6, SOON).expect("read"),
        b"yours\n"
    );
    drop(next);
    rig.disconnected(new);
    rig.finish();
}

/// Half-close disallowed (the default): the peer's EOF ends the channel
/// with `PeerClosed`, what was queued is still delivered, then our FIN.
pub fn half_close_disallowed<A: Adapter>() {
    let rig = Rig::<A>::start(Config::default());
    let (mut client, id) = rig.connect();
    rig.server()
        .send(id, Bytes::from_static(b"queued"))
        .expect("send");
    client.shutdown(Shutdown::Write).expect("shutdown write");
    assert_eq!(rig.disconnected(id), DisconnectReason::PeerClosed);
    assert!(!rig.log().saw(id, |e| matches!(e, Event::ReadClosed { .. })));
    // Closing, offline, or already released: never usable again.
    assert!(matches!(
        rig.server().send(id, Bytes::from_static(b"late")),
        Err(SendError::NotUsable { .. } | SendError::Id(IdError::Stale(_)))
    ));
    let (data, end) = client::read_to_end(&mut client, SOON);
    assert_eq!(
        (data.as_slice(), end),
        (&b"queued"[..], End::Eof),
        "{}",
        A::NAME
    );
    rig.released(id);
    rig.finish();
}

/// Half-close allowed: the peer's EOF gives `ReadClosed`; the app may keep
/// sending, and its kick ends the channel.
pub fn half_close_allowed<A: Adapter>() {
    let mut config = Config::default();
    config.half_close = HalfClosePolicy::Allow;
    let rig = Rig::<A>::start(config);
    let (mut client, id) = rig.connect();
    client.write_all(b"question").expect("write");
    client.shutdown(Shutdown::Write).expect("shutdown write");
    let read_closed = rig.wait_until(SOON, |log| {
        log.saw(id, |e| matches!(e, Event::ReadClosed { .. }))
    });
    assert!(read_closed, "{}: ReadClosed after the peer's EOF", A::NAME);
    assert!(
        !rig.log().disconnected.contains_key(&id),
        "{}: still usable",
        A::NAME
    );
    rig.server()
        .send(id, Bytes::from_static(b"answer"))
        .expect("send after peer EOF");
    assert_eq!(
        client::read_exact(&mut client, 6, SOON).expect("read"),
        b"answer"
    );
    rig.server().kick(id, KickMode::Graceful, 3).expect("kick");
    assert_eq!(rig.disconnected(id), DisconnectReason::Kicked { code: 3 });
    let (data, end) = client::read_to_end(&mut client, SOON);
    assert_eq!((data.len(), end), (0, End::Eof), "{}", A::NAME);
    rig.released(id);
    rig.finish();
}
