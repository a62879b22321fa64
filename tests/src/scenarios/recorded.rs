//! Recorded runs: a live server on real sockets with the flight recorder on
//! (`Options::record`), then its recording parsed and replayed through a
//! fresh hub (`tether_record::replay`) — the replay must reproduce, in
//! order, every event the application received during the live run.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tether_adapter::Options;
use tether_core::{Config, DisconnectReason, Event, KickMode};
use tether_record::replay::{ReplayOptions, replay};
use tether_record::{RecordOptions, Recording};

use super::SOON;
use crate::bounded;
use crate::client::{self, End};
use crate::rig::{Adapter, Rig, ServerUnderTest};

/// A directory of its own under the system's temporary directory, removed
/// when dropped (kept when the test failed, to look at).
struct Scratch(PathBuf);

impl Scratch {
    fn new(adapter: &str, what: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tether-recorded-{}-{adapter}-{what}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The files a server of `A` recording to `path` wrote, one per shard, in
/// shard order: `path` itself with one shard, `path.shard<k>` with more.
/// Panics if a shard's file is missing.
fn shard_files<A: Adapter>(path: &Path) -> Vec<PathBuf> {
    let options = RecordOptions::new(path);
    let files: Vec<PathBuf> = (0..A::SHARDS)
        .map(|k| options.for_shard(k, A::SHARDS).path)
        .collect();
    for file in &files {
        assert!(file.exists(), "{}: nothing recorded at {file:?}", A::NAME);
    }
    files
}

/// Parses the recording `files` (consecutive segments of one shard, oldest
/// first) and replays them together; returns every event the replay
/// emitted. Panics on a parse error or a divergence, naming the line.
fn replay_files(files: &[PathBuf]) -> Vec<Event> {
    let mut recording = Recording::default();
    for file in files {
        let (part, error) = Recording::read(file).expect("read the recording");
        if let Some(e) = error {
            panic!("{}: {e}", file.display());
        }
        recording.segments.extend(part.segments);
    }
    let mut events = Vec::new();
    let report = replay(&recording, None, &ReplayOptions::default(), |step| {
        events.extend(step.events.iter().cloned());
    });
    if let Err(e) = &report.result {
        panic!("replaying {files:?}: {e}");
    }
    assert!(report.lines > 0, "{files:?}: no input lines");
    events
}

/// Asserts `replayed` equals `live`, naming the first difference.
fn same_events(adapter: &str, what: &str, live: &[&Event], replayed: &[&Event]) {
    let first = live.iter().zip(replayed).position(|(a, b)| a != b);
    if let Some(i) = first {
        panic!(
            "{adapter}: {what}: event {i} differs:\n  live:     {:?}\n  replayed: {:?}",
            live[i], replayed[i]
        );
    }
    assert_eq!(
        live.len(),
        replayed.len(),
        "{adapter}: {what}: {} events live, {} replayed (the common prefix is equal)",
        live.len(),
        replayed.len()
    );
}

/// Whether `id` received anything, by the log's every-event list.
fn received_any(rig: &Rig<impl Adapter>, id: tether_core::ChannelId) -> bool {
    rig.wait_until(SOON, |log| {
        log.every_event.as_ref().is_some_and(|all| {
            all.iter()
                .any(|e| matches!(e, Event::Received { id: i, .. } if *i == id))
        })
    })
}

/// A recorded run on real sockets covering both kicks, a peer's close, a
/// slow consumer (a peer that never reads while the server sends 128× its
/// queue limit, unpaced), an idle timeout and a shutdown that has to abort
/// a peer after its grace; then each shard's recording, replayed alone,
/// reproduces exactly the events the application received from that shard,
/// in order (payloads included: the recording has `bytes on`).
pub fn recorded_run<A: Adapter>() {
    let scratch = Scratch::new(A::NAME, "run");
    let path = scratch.path("live.rec");
    const LIMIT: usize = 32 << 10;
    let mut config = Config::default().with_queue_limit(LIMIT);
    config.idle_timeout = Some(Duration::from_secs(3));
    config.stall_timeout = Some(Duration::from_millis(300));
    let options =
        Options::default().with_record(Some(Arc::new(RecordOptions::new(&path).with_bytes(true))));
    let rig = Rig::<A>::start_keeping_every_event(config, options);

    // A graceful kick: the queue is flushed, then FIN.
    let (mut graceful, graceful_id) = rig.connect();
    let payload: Vec<u8> = (0..24_000u32).map(|i| (i % 251) as u8).collect();
    rig.server()
        .send(graceful_id, Bytes::from(payload.clone()))
        .expect("send");
    rig.server()
        .kick(graceful_id, KickMode::Graceful, 7)
        .expect("kick");
    let (data, end) = client::read_to_end(&mut graceful, SOON);
    assert_eq!(end, End::Eof, "{}: graceful kick ends with FIN", A::NAME);
    assert!(data == payload, "{}: got {} bytes", A::NAME, data.len());
    drop(graceful);
    rig.released(graceful_id);

    // An abortive kick after the peer said something: RST.
    let (mut aborted, aborted_id) = rig.connect();
    aborted
        .write_all(b"hello before the abort\n")
        .expect("write");
    assert!(
        received_any(&rig, aborted_id),
        "{}: nothing received",
        A::NAME
    );
    rig.server()
        .kick(aborted_id, KickMode::Abort, 9)
        .expect("kick");
    let (_, end) = client::read_to_end(&mut aborted, SOON);
    assert_eq!(end, End::Reset, "{}: abortive kick sends RST", A::NAME);
    drop(aborted);
    rig.released(aborted_id);

    // The peer closes after its last words.
    let (mut talker, talker_id) = rig.connect();
    talker.write_all(b"last words").expect("write");
    drop(talker);
    assert_eq!(rig.disconnected(talker_id), DisconnectReason::PeerClosed);
    rig.released(talker_id);

    // A slow consumer: never reads, while the server sends far past its
    // queue limit without pacing (each send waits inside the server only
    // while the peer still takes bytes, then is refused) until the stall
    // timeout evicts it.
    let slow = client::connect_small_window(rig.addr());
    let slow_id = rig.opened_id(&slow, SOON).expect("opened");
    let chunk = Bytes::from(vec![b's'; 8 << 10]);
    for _ in 0..(128 * LIMIT / chunk.len()) {
        match rig.server().send(slow_id, chunk.clone()) {
            Ok(()) | Err(tether_core::SendError::QueueFull { .. }) => {}
            Err(_) => break, // evicted
        }
    }
    assert_eq!(
        rig.disconnected(slow_id),
        DisconnectReason::SlowConsumer,
        "{}",
        A::NAME
    );
    drop(slow);
    rig.released(slow_id);

    // An idle timeout: a peer that says nothing is kicked gracefully.
    let (mut idle, idle_id) = rig.connect();
    let kicked = rig.wait_until(Duration::from_secs(3) + SOON, |log| {
        log.disconnected.contains_key(&idle_id)
    });
    assert!(kicked, "{}: the idle peer was never kicked", A::NAME);
    assert_eq!(rig.disconnected(idle_id), DisconnectReason::IdleTimeout);
    let (_, end) = client::read_to_end(&mut idle, SOON);
    assert_eq!(end, End::Eof, "{}", A::NAME);
    drop(idle);
    rig.released(idle_id);

    // Shutdown: a peer that never answers the drain's FIN with its own is
    // aborted when the grace runs out.
    let (mut stuck, stuck_id) = rig.connect();
    stuck.write_all(b"still here\n").expect("write");
    assert!(
        received_any(&rig, stuck_id),
        "{}: nothing received",
        A::NAME
    );
    let log = rig.finish();
    assert_eq!(
        log.disconnected.get(&stuck_id),
        Some(&DisconnectReason::ServerShutdown),
        "{}",
        A::NAME
    );
    let mut rest = Vec::new();
    let _ = stuck.set_read_timeout(Some(SOON));
    let _ = stuck.read_to_end(&mut rest);
    drop(stuck);

    // The replay reproduces what the application saw, shard by shard.
    let live = log.every_event.expect("every event kept");
    assert_eq!(
        live.iter()
            .filter(|e| **e == Event::ShutdownComplete)
            .count(),
        1,
        "{}",
        A::NAME
    );
    assert_eq!(live.last(), Some(&Event::ShutdownComplete), "{}", A::NAME);
    let files = shard_files::<A>(&path);
    let mut channel_events = 0;
    for (shard, file) in files.iter().enumerate() {
        let replayed = replay_files(std::slice::from_ref(file));
        assert_eq!(
            replayed.last(),
            Some(&Event::ShutdownComplete),
            "{}: {file:?}",
            A::NAME
        );
        if files.len() == 1 {
            let live: Vec<&Event> = live.iter().collect();
            let replayed: Vec<&Event> = replayed.iter().collect();
            same_events(A::NAME, "the whole run", &live, &replayed);
            return;
        }
        // With several shards the application saw their events merged
        // (and one `ShutdownComplete`, once every shard's drain was done):
        // each shard's own sequence must be reproduced.
        let of_shard = |e: &&Event| {
            e.channel()
                .is_some_and(|id| usize::from(id.shard()) == shard)
        };
        let live: Vec<&Event> = live.iter().filter(of_shard).collect();
        let replayed: Vec<&Event> = replayed.iter().filter(of_shard).collect();
        same_events(A::NAME, &format!("shard {shard}"), &live, &replayed);
        channel_events += live.len();
    }
    assert_eq!(
        channel_events + 1,
        live.len(),
        "{}: events of no shard",
        A::NAME
    );
}

/// Connects until every shard serves at least `each` peers and returns
/// them all. With `SO_REUSEPORT` the kernel hashes connections to shards,
/// so 8 peers on 2 shards split 7 to 1 one run in 16, and a shard with one
/// peer records too little to rotate (seen in CI).
fn peers_on_every_shard<A: Adapter>(
    rig: &Rig<A>,
    each: usize,
) -> Vec<(TcpStream, tether_core::ChannelId)> {
    let mut peers = Vec::new();
    let mut on_shard = vec![0; A::SHARDS];
    while on_shard.iter().any(|&n| n < each) {
        assert!(
            peers.len() < 32 * each * A::SHARDS,
            "{}: {on_shard:?} peers per shard after {} connections",
            A::NAME,
            peers.len()
        );
        let (stream, id) = rig.connect();
        on_shard[usize::from(id.shard())] += 1;
        peers.push((stream, id));
    }
    peers
}

/// Rotation under load: with a 256 KiB cap and 3 rotated files, a busy
/// server (8 peers per shard sending while 4,000 broadcasts go out to
/// them) rotates its recording many times; afterwards each shard's files
/// hold at most the cap (plus one line per file), each file replays on its
/// own, and the kept files replay together, oldest first.
pub fn recorded_rotation<A: Adapter>() {
    const MAX: u64 = 256 << 10;
    const KEEP: u32 = 3;
    const BROADCASTS: u32 = 4_000;
    let scratch = Scratch::new(A::NAME, "rotation");
    let path = scratch.path("busy.rec");
    let record = RecordOptions::new(&path)
        .with_max_bytes(MAX)
        .with_keep(KEEP);
    let options = Options::default().with_record(Some(Arc::new(record.clone())));
    let rig = Rig::<A>::start_keeping_every_event(Config::default(), options);
    let peers = peers_on_every_shard(&rig, 8);
    let peers: Vec<_> = peers
        .into_iter()
        .map(|(mut stream, id)| {
            std::thread::spawn(move || {
                for i in 0..200 {
                    let line = format!("peer {id} line {i:04} ........................\n");
                    if stream.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                }
                // Then read everything until the drain's FIN.
                let (data, end) = client::read_to_end(&mut stream, Duration::from_secs(60));
                (data.len(), end)
            })
        })
        .collect();
    for i in 0..BROADCASTS {
        let report = rig.server().broadcast(Bytes::from(format!(
            "broadcast {i:05} ............................\n"
        )));
        assert!(report.refused.is_empty(), "{}: {report:?}", A::NAME);
    }
    rig.finish();
    for peer in peers {
        let (_, end) = bounded::join("peer", peer, Duration::from_secs(70));
        assert_eq!(end, End::Eof, "{}", A::NAME);
    }

    let files = shard_files::<A>(&path);
    for current in &files {
        let shard = RecordOptions::new(current);
        // Oldest first: PATH.3, PATH.2, PATH.1, PATH.
        let mut kept: Vec<PathBuf> = (1..=KEEP).rev().map(|n| shard.rotated(n)).collect();
        kept.push(current.clone());
        assert!(
            kept.iter().all(|f| f.exists()),
            "{}: {kept:?}: fewer than {KEEP} rotations",
            A::NAME
        );
        assert!(
            !shard.rotated(KEEP + 1).exists(),
            "{}: more than {KEEP} files kept",
            A::NAME
        );
        let mut total = 0;
        let mut longest = 0;
        let mut segments = Vec::new();
        for file in &kept {
            let text = std::fs::read(file).expect("read");
            total += text.len() as u64;
            longest = longest.max(
                text.split(|&b| b == b'\n')
                    .map(<[u8]>::len)
                    .max()
                    .unwrap_or(0),
            );
            let (recording, error) = Recording::parse(&text);
            assert!(error.is_none(), "{}: {file:?}: {error:?}", A::NAME);
            assert_eq!(recording.segments.len(), 1, "{}: {file:?}", A::NAME);
            segments.push(recording.segments[0].header.segment);
            // Each file replays on its own, from its snapshot.
            replay_files(std::slice::from_ref(file));
        }
        let lines_allowance = (u64::from(KEEP) + 1) * (longest as u64 + 1);
        assert!(
            total <= MAX + lines_allowance,
            "{}: {total} bytes in {kept:?}, cap {MAX}",
            A::NAME
        );
        // The cap was reached: the oldest segments were deleted.
        assert!(segments[0] >= 1, "{}: {segments:?}", A::NAME);
        assert!(
            segments.windows(2).all(|w| w[1] == w[0] + 1),
            "{}: {kept:?} are not consecutive segments: {segments:?}",
            A::NAME
        );
        // Together, each later header checked against the replayed hub.
        replay_files(&kept);
    }
}
