//! Policies on real sockets: idle and login timeouts, the channel limit,
//! and slow consumers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::{ChannelState, Config, DisconnectReason};

use super::SOON;
use crate::bounded;
use crate::client::{self, End};
use crate::rig::{Adapter, Rig, ServerUnderTest};

/// A silent client is kicked with `IdleTimeout` (and sees EOF); a chatty
/// one stays.
///
/// The policy's timing (the deadline exactly, activity pushing it back) is
/// tested on the virtual clock in `core/tests/policies.rs`; this checks that
/// the adapter wires the timer and the activity to real sockets, with a
/// wide ratio: the chatty client writes every 50 ms against a 1.5 s timeout.
pub fn idle_timeout<A: Adapter>() {
    let mut config = Config::default();
    config.idle_timeout = Some(Duration::from_millis(1_500));
    let rig = Rig::<A>::start(config);
    let (mut silent, silent_id) = rig.connect();
    let (mut chatty, chatty_id) = rig.connect();
    let start = Instant::now();
    while !rig.log().disconnected.contains_key(&silent_id) {
        assert!(
            start.elapsed() < SOON + Duration::from_millis(1_500),
            "{}: the silent client was never kicked",
            A::NAME
        );
        chatty.write_all(b".").expect("write");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rig.disconnected(silent_id), DisconnectReason::IdleTimeout);
    let (_, end) = client::read_to_end(&mut silent, SOON);
    assert_eq!(
        end,
        End::Eof,
        "{}: the idle client is closed gracefully",
        A::NAME
    );
    let chatty_state = rig
        .server()
        .channels()
        .iter()
        .find(|c| c.id == chatty_id)
        .map(|c| c.state);
    assert_eq!(
        chatty_state,
        Some(ChannelState::Open),
        "{}: activity keeps it open",
        A::NAME
    );
    drop(silent);
    rig.released(silent_id);
    chatty.write_all(b".").expect("still open");
    drop(chatty);
    rig.finish();
}

/// A client not authenticated within the login timeout is kicked with
/// `LoginTimeout`; an authenticated one stays.
///
/// The policy itself is tested on the virtual clock in
/// `core/tests/policies.rs`; here, on real sockets, the member is checked
/// only once its own login deadline is well past (twice the timeout after
/// it connected), so the check can fail if `authenticate` were ignored.
pub fn login_timeout<A: Adapter>() {
    const LOGIN: Duration = Duration::from_millis(500);
    let mut config = Config::default();
    config.login_timeout = Some(LOGIN);
    let rig = Rig::<A>::start(config);
    let (mut guest, guest_id) = rig.connect();
    let (member, member_id) = rig.connect();
    let member_deadline = Instant::now() + LOGIN;
    rig.server().authenticate(member_id).expect("authenticate");
    assert_eq!(rig.disconnected(guest_id), DisconnectReason::LoginTimeout);
    let (_, end) = client::read_to_end(&mut guest, SOON);
    assert_eq!(end, End::Eof, "{}", A::NAME);
    // The guest's kick proves the timer runs; wait out the member's too.
    std::thread::sleep((member_deadline + LOGIN).saturating_duration_since(Instant::now()));
    assert!(
        !rig.log().disconnected.contains_key(&member_id),
        "{}: member stays",
        A::NAME
    );
    drop((guest, member));
    rig.finish();
}

/// At the channel limit accepting pauses (nothing beyond the limit is
/// served); once channels are released it accepts again.
///
/// With one `SO_REUSEPORT` listener per shard the kernel may hash a client
/// to a shard at its share of the limit, which refuses it while another
/// shard has room: clients are connected until served
/// (`connect_served`), which round-robin does at the first try.
pub fn channel_limit<A: Adapter>() {
    let config = Config::default().with_max_channels(4); // resumes at 3
    let rig = Rig::<A>::start(config);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| super::connect_served(&rig, 64).0).collect();
    assert!(
        rig.server().stats().accept_paused,
        "{}: paused at the limit",
        A::NAME
    );
    // The fifth completes its TCP handshake in the backlog but is not
    // served: either not accepted yet, or refused (closed at once).
    let mut fifth = client::connect(rig.addr());
    let early = rig.opened_id(&fifth, Duration::from_millis(300));
    assert_eq!(
        early,
        None,
        "{}: a fifth channel opened past the limit",
        A::NAME
    );
    assert!(rig.server().channels().len() <= 4);
    drop(clients.drain(..2));
    let resumed = Instant::now();
    while rig.server().stats().accept_paused {
        assert!(
            resumed.elapsed() < SOON,
            "{}: accepting never resumed",
            A::NAME
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Paused, the fifth waited in the backlog and is served now; refused,
    // it saw EOF and a new client gets in instead.
    let served = match rig.opened_id(&fifth, Duration::from_secs(2)) {
        Some(_) => true,
        None => {
            let (_, end) = client::read_to_end(&mut fifth, Duration::from_secs(1));
            assert_ne!(
                end,
                End::Timeout,
                "{}: fifth neither served nor refused",
                A::NAME
            );
            let (late, _, _) = super::connect_served(&rig, 64);
            clients.push(late);
            false
        }
    };
    let stats = rig.server().stats();
    assert!(stats.live <= 4, "{}", A::NAME);
    assert!(served || rig.server().refused() >= 1, "{}", A::NAME);
    drop((clients, fifth));
    rig.finish();
}

/// A client that never reads is evicted as a slow consumer once its send
/// buffer stays full for the stall timeout, while three prompt readers get
/// every byte of an unpaced burst far past the queue limit and are never
/// evicted (docs/design.md §5.2: slow means the kernel refused the bytes).
pub fn slow_consumer<A: Adapter>() {
    let mut config = Config::default().with_queue_limit(256 << 10);
    config.stall_timeout = Some(Duration::from_secs(1));
    let rig = Rig::<A>::start(config);
    let slow = client::connect_small_window(rig.addr());
    let slow_id = rig.opened_id(&slow, SOON).expect("opened");
    const CHUNK: usize = 16 << 10;
    const CHUNKS: usize = 2_000; // 32 MiB per reader: 128× the queue limit
    const READ_DEADLINE: Duration = Duration::from_secs(60);
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let mut fast_ids = Vec::new();
    for _ in 0..3 {
        let (mut stream, id) = rig.connect();
        fast_ids.push(id);
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            let mut total = 0usize;
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            // Bounded: a reader that never gets all its bytes ends at the
            // deadline, and the totals check below fails instead of hanging.
            let deadline = Instant::now() + READ_DEADLINE;
            while total < CHUNK * CHUNKS
                && !stop.load(Ordering::Relaxed)
                && Instant::now() < deadline
            {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(_) => {}
                }
            }
            (total, stream)
        }));
    }
    let chunk = Bytes::from(vec![b'z'; CHUNK]);
    let started = Instant::now();
    // No pacing: each broadcast waits inside the server only while some
    // channel is backpressured.
    for _ in 0..CHUNKS {
        let report = rig.server().broadcast(chunk.clone());
        for (id, e) in &report.refused {
            assert!(
                !fast_ids.contains(id),
                "{}: a prompt reader refused a send: {e}",
                A::NAME
            );
        }
    }
    assert_eq!(
        rig.disconnected(slow_id),
        DisconnectReason::SlowConsumer,
        "{}",
        A::NAME
    );
    let ended: Vec<(usize, TcpStream)> = readers
        .into_iter()
        .map(|r| bounded::join("prompt reader", r, READ_DEADLINE + SOON))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let totals: Vec<usize> = ended.iter().map(|(total, _)| *total).collect();
    assert_eq!(
        totals,
        vec![CHUNK * CHUNKS; 3],
        "{}: readers got every byte",
        A::NAME
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    for id in fast_ids {
        assert!(
            !rig.log().disconnected.contains_key(&id),
            "{}: reader {id} kept",
            A::NAME
        );
    }
    drop((slow, ended));
    rig.finish();
}

/// **A kick never waits behind a held broadcast** (docs/design.md §5.2).
/// A slow reader (a 4 KiB receive window, 256 B read every 50 ms: it takes
/// bytes, so it holds broadcasts up for as long as it stays backpressured)
/// and a bystander; broadcasts of 8 KiB from a thread until one is held
/// (`Options::send_wait` 30 s, so only the reader's pace could end the
/// wait). Then the bystander is kicked gracefully: the kick answers and the
/// bystander reads EOF within 2 s — where a kick queued behind the held
/// broadcast waits until the slow reader drains to its low watermark,
/// tens of seconds at its pace.
pub fn kick_while_a_broadcast_is_held<A: Adapter>() {
    let config = Config::default().with_queue_limit(64 << 10);
    let options = tether_adapter::Options::default().with_send_wait(Duration::from_secs(30));
    let rig = Rig::<A>::start_with(config, options);
    let slow = client::connect_small_window(rig.addr());
    let slow_id = rig.opened_id(&slow, SOON).expect("opened");
    // On the slow reader's shard: another shard's kick would not wait
    // anyway (clients on other shards are closed at once).
    let (mut bystander, bystander_id) = loop {
        let (stream, id) = rig.connect();
        if id.shard() == slow_id.shard() {
            break (stream, id);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, mut slow) = (stop.clone(), slow.try_clone().expect("clone"));
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let _ = slow.set_read_timeout(Some(Duration::from_millis(50)));
            while !stop.load(Ordering::Relaxed) {
                let _ = slow.read(&mut buf);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let broadcasts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let broadcaster = {
        let (server, stop, broadcasts) = (rig.server_arc(), stop.clone(), broadcasts.clone());
        std::thread::spawn(move || {
            let chunk = Bytes::from(vec![b'b'; 8 << 10]);
            // Bounded: at most 64 MiB, far past the kernel's buffers.
            for _ in 0..8192 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = server.broadcast(chunk.clone());
                broadcasts.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Held: the slow reader is backpressured and the broadcaster's count
    // stands still (its call waits inside the server).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = broadcasts.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(300));
        let still = broadcasts.load(Ordering::Relaxed) == before;
        if still && rig.server().stats().backpressured >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no broadcast was ever held",
            A::NAME
        );
    }
    // The bystander has a few broadcasts queued in its kernel buffer: drain
    // them as we wait for the end.
    let started = Instant::now();
    let kicked = rig
        .server()
        .kick(bystander_id, tether_core::KickMode::Graceful, 0);
    let answered = started.elapsed();
    let (_, end) = client::read_to_end(&mut bystander, SOON);
    let eof_after = started.elapsed();
    assert_eq!(kicked, Ok(()), "{}", A::NAME);
    assert_eq!(end, End::Eof, "{}: the bystander's end", A::NAME);
    assert!(
        eof_after < Duration::from_secs(2),
        "{}: the kick waited behind the held broadcast: answered after {answered:?}, EOF after {eof_after:?}",
        A::NAME
    );
    assert_eq!(
        rig.disconnected(bystander_id),
        DisconnectReason::Kicked { code: 0 },
        "{}",
        A::NAME
    );
    stop.store(true, Ordering::Relaxed);
    // Let the broadcaster go: the slow reader leaves.
    let _ = rig.server().kick(slow_id, tether_core::KickMode::Abort, 0);
    bounded::join("broadcaster", broadcaster, Duration::from_secs(30));
    bounded::join("slow reader", reader, Duration::from_secs(30));
    drop(slow);
    rig.finish();
}
