//! Many clients: broadcast, server shutdown, and connection churn that
//! must leave nothing behind.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::{Config, DisconnectReason, KickMode};

use super::SOON;
use crate::bounded;
use crate::client::{self, End};
use crate::rig::{AcceptCounts, Adapter, Rig, ServerUnderTest};

/// How long client threads whose every step is bounded may take together:
/// far more than 10,000 cycles take in a debug build on two cores.
const WORKERS_LIMIT: Duration = Duration::from_secs(600);

/// One broadcast reaches 1,000 clients, each exactly once.
pub fn broadcast_to_1000<A: Adapter>() {
    const CLIENTS: usize = 1_000;
    client::raise_fd_limit(8_192);
    let rig = Rig::<A>::start(Config::default());
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| rig.connect().0).collect();
    let line = Bytes::from_static(b"to everyone\n");
    let report = rig.server().broadcast(line.clone());
    assert_eq!(
        report.sent,
        CLIENTS,
        "{}: refused {:?}",
        A::NAME,
        report.refused.first()
    );
    for client in &mut clients {
        let got = client::read_exact(client, line.len(), SOON).expect("broadcast line");
        assert_eq!(got, line);
    }
    // Exactly once: a duplicate would arrive ahead of this second line.
    let end = Bytes::from_static(b"end\n");
    assert_eq!(rig.server().broadcast(end.clone()).sent, CLIENTS);
    for client in &mut clients {
        let got = client::read_exact(client, end.len(), SOON).expect("second line");
        assert_eq!(got, end, "{}: a client got a line twice", A::NAME);
    }
    drop(clients);
    rig.drained(Duration::from_secs(10));
    let stats = rig.server().stats();
    assert_eq!(stats.disconnected.peer_closed, CLIENTS as u64);
    rig.finish();
}

/// Shutdown kicks everyone with `ServerShutdown`; cooperative clients get
/// EOF, a client that neither reads nor closes is aborted at the deadline,
/// and the server stops within the deadline (plus slack) with every
/// channel released and nothing listening any more.
pub fn shutdown_drains_within_deadline<A: Adapter>() {
    let grace = Duration::from_millis(500);
    let rig = Rig::<A>::start(Config::default());
    let cooperative: Vec<_> = (0..3).map(|_| rig.connect()).collect();
    let stubborn = client::connect_small_window(rig.addr());
    let stubborn_id = rig.opened_id(&stubborn, SOON).expect("opened");
    // Enough queued that it cannot drain to a peer that does not read.
    rig.server()
        .send(stubborn_id, Bytes::from(vec![0u8; 512 << 10]))
        .expect("send");
    let readers: Vec<_> = cooperative
        .into_iter()
        .map(|(mut stream, id)| {
            std::thread::spawn(move || {
                let (_, end) = client::read_to_end(&mut stream, SOON);
                (id, end)
            })
        })
        .collect();
    let started = Instant::now();
    rig.server().shutdown(grace);
    assert!(
        rig.server().wait_stopped(grace + Duration::from_secs(3)),
        "{}: not stopped",
        A::NAME
    );
    let took = started.elapsed();
    assert!(
        took < grace + Duration::from_secs(3),
        "{}: shutdown took {took:?}",
        A::NAME
    );
    for reader in readers {
        let (id, end) = bounded::join("cooperative reader", reader, SOON + SOON);
        assert_eq!(end, End::Eof, "{}: {id} drained gracefully", A::NAME);
        assert_eq!(rig.disconnected(id), DisconnectReason::ServerShutdown);
    }
    assert_eq!(
        rig.disconnected(stubborn_id),
        DisconnectReason::ServerShutdown
    );
    assert!(
        rig.wait_until(SOON, |log| log.shutdown_complete),
        "{}",
        A::NAME
    );
    let after = TcpStream::connect_timeout(&rig.addr(), SOON);
    assert!(
        matches!(&after, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{}: still listening ({after:?})",
        A::NAME
    );
    drop(stubborn);
    rig.finish();
}

/// `cycles` connect → kick (alternately graceful and abortive) → client
/// reads to EOF or reset → close, from `clients` concurrent clients. At
/// the end no channel is alive and the process holds exactly the file
/// descriptors it held before (counted in `/proc/self/fd`).
pub fn connect_kick_close_cycles<A: Adapter>(cycles: usize, clients: usize) {
    client::raise_fd_limit(8_192);
    let rig = Arc::new(Rig::<A>::start(Config::default()));
    // Warm up (runtime threads, reactor fds), then take the baseline.
    for _ in 0..8 {
        one_cycle(&rig, KickMode::Abort);
    }
    rig.drained(SOON);
    let baseline = client::open_fds();
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|worker| {
            let rig = rig.clone();
            let share = cycles / clients + usize::from(worker < cycles % clients);
            std::thread::spawn(move || {
                for i in 0..share {
                    let mode = if i % 2 == 0 {
                        KickMode::Graceful
                    } else {
                        KickMode::Abort
                    };
                    one_cycle(&rig, mode);
                }
            })
        })
        .collect();
    for (k, worker) in workers.into_iter().enumerate() {
        bounded::join(format_args!("cycle worker {k}"), worker, WORKERS_LIMIT);
    }
    rig.drained(Duration::from_secs(10));
    let mut fds = client::open_fds();
    let settle = Instant::now();
    while fds > baseline && settle.elapsed() < SOON {
        std::thread::sleep(Duration::from_millis(10));
        fds = client::open_fds();
    }
    assert_eq!(fds, baseline, "{}: file descriptors leaked", A::NAME);
    let stats = rig.server().stats();
    assert_eq!(stats.live, 0, "{}", A::NAME);
    assert_eq!(stats.opened, (cycles + 8) as u64, "{}", A::NAME);
    assert_eq!(stats.released, stats.opened, "{}", A::NAME);
    assert_eq!(stats.disconnected.kicked, stats.opened, "{}", A::NAME);
    eprintln!("{}: {cycles} cycles in {:?}", A::NAME, started.elapsed());
    reset_on_connect_flood(&rig, cycles / 5, clients, baseline);
    let rig = Arc::into_inner(rig).expect("workers are done");
    rig.finish();
}

/// Hostile peers: `connections` clients (over `clients` threads) that
/// connect and at once close with `SO_LINGER` 0 — a RST, possibly before
/// the server has accepted, handed the socket to its shard, registered it
/// or greeted it — never reading. Nothing may leak: every channel that
/// opened is released, no file descriptor is left above `baseline`; and
/// the server's accounting is exact: every connection it accepted became a
/// channel or a counted refusal ([`AcceptCounts`]).
fn reset_on_connect_flood<A: Adapter>(
    rig: &Arc<Rig<A>>,
    connections: usize,
    clients: usize,
    baseline: usize,
) {
    let before = (rig.server().stats(), rig.server().accept_counts());
    let addr = rig.addr();
    let workers: Vec<_> = (0..clients)
        .map(|worker| {
            let share = connections / clients + usize::from(worker < connections % clients);
            std::thread::spawn(move || {
                for _ in 0..share {
                    let stream = client::connect(addr);
                    socket2::SockRef::from(&stream)
                        .set_linger(Some(Duration::ZERO))
                        .expect("linger");
                    drop(stream); // RST
                }
            })
        })
        .collect();
    for (k, worker) in workers.into_iter().enumerate() {
        bounded::join(
            format_args!("reset flood worker {k}"),
            worker,
            WORKERS_LIMIT,
        );
    }
    let (opened, counts) = flood_settled(rig, before);
    // Exact: an accepted connection lost between the listener and its hub,
    // or a refusal not counted, leaves `accepted` above the sum.
    assert_eq!(
        counts.accepted,
        opened + counts.refused_full + counts.refused_resources,
        "{}: {opened} opened, {counts:?}",
        A::NAME
    );
    // The kernel may drop a connection reset in its backlog before any
    // `accept` sees it, so not every one is accepted; none counts twice,
    // and a server that accepted none of them fails.
    assert!(
        counts.accepted + counts.accept_errors <= connections as u64,
        "{}: {counts:?} of {connections} connections",
        A::NAME
    );
    assert!(
        counts.accepted > 0,
        "{}: none of {connections} connections accepted ({counts:?})",
        A::NAME
    );
    let mut fds = client::open_fds();
    let settle = Instant::now();
    while fds > baseline && settle.elapsed() < SOON {
        std::thread::sleep(Duration::from_millis(10));
        fds = client::open_fds();
    }
    assert_eq!(
        fds,
        baseline,
        "{}: file descriptors leaked after the RST flood",
        A::NAME
    );
    eprintln!(
        "{}: {connections} connect-and-reset clients: {opened} opened as channels, {counts:?}",
        A::NAME
    );
}

/// Waits (at most 10 s) until every connection of the flood that the
/// server accepted has reached its hub and every channel is released,
/// i.e. until no channel is alive, `released == opened`, and `accepted`
/// matches channels plus refusals — each of which a correct server reaches
/// once its listener and drivers are idle. Asserts no channel is left;
/// returns the channels opened and the accept counts since `before`.
fn flood_settled<A: Adapter>(
    rig: &Rig<A>,
    (stats_before, counts_before): (tether_core::Stats, AcceptCounts),
) -> (u64, AcceptCounts) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = rig.server().stats();
        let counts = rig.server().accept_counts().since(counts_before);
        let opened = stats.opened - stats_before.opened;
        let accounted = counts.accepted == opened + counts.refused_full + counts.refused_resources;
        let idle = stats.live == 0 && stats.released == stats.opened;
        if (idle && accounted) || Instant::now() >= deadline {
            assert_eq!(
                stats.live,
                0,
                "{}: channels left after the RST flood",
                A::NAME
            );
            assert_eq!(stats.released, stats.opened, "{}", A::NAME);
            return (opened, counts);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn one_cycle<A: Adapter>(rig: &Rig<A>, mode: KickMode) {
    let (mut stream, id) = rig.connect();
    rig.server().kick(id, mode, 5).expect("kick");
    let (_, end) = client::read_to_end(&mut stream, SOON);
    let expected = match mode {
        KickMode::Graceful => End::Eof,
        KickMode::Abort => End::Reset,
        other => unreachable!("no expected ending for {other:?}"),
    };
    assert_eq!(end, expected, "{}: {id}", A::NAME);
}
