//! Recording scripted sessions, reading them back, replaying them from
//! each segment's snapshot; rotation; write errors.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_core::testing::{Input, Outcome, Rejection};
use tether_core::{Action, Config, DisconnectReason, Event, Hub, KickMode};

use super::{RecordStartError, RecordedHub, recording};
use crate::checksum::Checksum;
use crate::format::{Recording, Segment};
use crate::writer::{RecordError, RecordOptions};
use tether_adapter::ObserverError;

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tether-record-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The recorder's own error, from the observer's boxed one.
fn record_error(e: ObserverError) -> RecordError {
    *e.downcast::<RecordError>().expect("a RecordError")
}

fn parse(path: &Path) -> Recording {
    let (rec, err) = Recording::read(path).unwrap();
    assert_eq!(err, None, "{}", path.display());
    rec
}

/// Replays a segment from its snapshot: every outcome and every running
/// checksum must match the recording.
fn replay(segment: &Segment, epoch: Instant) {
    let mut hub = Hub::restore(&segment.header.snapshot, epoch).unwrap();
    let mut sum = segment.header.checksum;
    for (n, line) in segment.numbered() {
        let now = epoch + Duration::from_nanos(line.at_ns);
        let outcome = line.input.apply(&mut hub, now);
        assert_eq!(outcome, line.outcome, "line {n}: {:?}", line.input);
        while let Some(action) = hub.poll_action() {
            sum.update_action(&action);
        }
        while let Some(event) = hub.poll_event() {
            sum.update_event(&event);
        }
        assert_eq!(sum, line.checksum, "line {n}: {:?}", line.input);
    }
}

/// Every output of the last input, from both hubs: they must agree.
fn outputs(hub: &mut RecordedHub, plain: &mut Hub) -> (Vec<Action>, Vec<Event>) {
    let actions: Vec<_> = std::iter::from_fn(|| hub.poll_action()).collect();
    let events: Vec<_> = std::iter::from_fn(|| hub.poll_event()).collect();
    let plain_actions: Vec<_> = std::iter::from_fn(|| plain.poll_action()).collect();
    let plain_events: Vec<_> = std::iter::from_fn(|| plain.poll_event()).collect();
    assert_eq!(actions, plain_actions);
    assert_eq!(events, plain_events);
    (actions, events)
}

#[test]
fn a_scripted_session_is_recorded_exactly() {
    let dir = TempDir::new("session");
    let path = dir.path("hub.rec");
    let config = Config::default().with(|c| c.idle_timeout = Some(Duration::from_secs(1)));
    let epoch = Instant::now();
    let mut plain = Hub::new(config.clone()).unwrap();
    let mut hub = recording(
        Hub::new(config).unwrap(),
        epoch,
        RecordOptions::new(&path).with_bytes(true),
    )
    .unwrap();
    assert!(hub.is_observed());
    let ms = |n: u64| epoch + Duration::from_millis(n);
    let peer = "127.0.0.1:5000".parse().unwrap();
    let mut sum = Checksum::ZERO;
    let mut expected: Vec<(Input, Outcome, Checksum)> = Vec::new();
    // Feeds one input to both hubs and notes what the recording must say.
    macro_rules! step {
        ($input:expr, $call:ident ( $($arg:expr),* ), $outcome:expr) => {{
            let got = hub.$call($($arg),*);
            let _ = plain.$call($($arg),*);
            let (actions, events) = outputs(&mut hub, &mut plain);
            actions.iter().for_each(|a| sum.update_action(a));
            events.iter().for_each(|e| sum.update_event(e));
            expected.push(($input, $outcome, sum));
            (got, actions, events)
        }};
    }
    let (a, _, events) = step!(
        Input::Accept { peer },
        accept(ms(0), peer),
        Outcome::Opened(ChannelIdOf::first())
    );
    let a = a.unwrap();
    assert_eq!(events, vec![Event::Opened { id: a, peer }]);
    let _ = step!(Input::Attach { id: a }, attach(ms(0), a), Outcome::Ok);
    let hello = Bytes::from_static(b"hello");
    let (_, actions, _) = step!(
        Input::Send {
            id: a,
            data: hello.clone()
        },
        send(ms(0), a, hello.clone()),
        Outcome::Ok
    );
    assert_eq!(
        actions,
        vec![Action::Transmit {
            id: a,
            data: hello.clone()
        }]
    );
    let _ = step!(
        Input::Written { id: a, n: 5 },
        handle_written(ms(1), a, 5),
        Outcome::Ok
    );
    let ping = Bytes::from_static(b"ping\n");
    let _ = step!(
        Input::Received {
            id: a,
            data: ping.clone()
        },
        handle_received(ms(2), a, ping.clone()),
        Outcome::Ok
    );
    let peer_b = "[::1]:6000".parse().unwrap();
    let (b, _, _) = step!(
        Input::Accept { peer: peer_b },
        accept(ms(3), peer_b),
        Outcome::Opened(ChannelIdOf::second())
    );
    let b = b.unwrap();
    let _ = step!(Input::Attach { id: b }, attach(ms(3), b), Outcome::Ok);
    let _ = step!(
        Input::Authenticate { id: b },
        authenticate(ms(3), b),
        Outcome::Ok
    );
    let _ = step!(
        Input::Kick {
            id: a,
            mode: KickMode::Graceful,
            code: 7
        },
        kick(ms(4), a, KickMode::Graceful, 7),
        Outcome::Ok
    );
    let _ = step!(
        Input::Kick {
            id: a,
            mode: KickMode::Graceful,
            code: 7
        },
        kick(ms(4), a, KickMode::Graceful, 7),
        Outcome::Rejected(Rejection::AlreadyClosing)
    );
    let _ = step!(
        Input::PeerEof { id: a },
        handle_peer_eof(ms(5), a),
        Outcome::Ok
    );
    let _ = step!(Input::Detach { id: a }, detach(ms(6), a), Outcome::Ok);
    let (_, _, events) = step!(
        Input::Closed { id: a },
        handle_closed(ms(7), a),
        Outcome::Ok
    );
    assert_eq!(events, vec![Event::Released { id: a }]);
    let _ = step!(
        Input::Detach { id: a },
        detach(ms(8), a),
        Outcome::Rejected(Rejection::Stale)
    );
    let _ = step!(
        Input::Broadcast { data: ping.clone() },
        broadcast(ms(9), ping.clone()),
        Outcome::Broadcast {
            sent: 1,
            refused: 0
        }
    );
    let _ = step!(
        Input::Written { id: b, n: 5 },
        handle_written(ms(10), b, 5),
        Outcome::Ok
    );
    // B idles out a second after its last input from the peer (accept).
    let due = hub.poll_timeout().unwrap();
    assert_eq!(due, plain.poll_timeout().unwrap());
    let (_, _, events) = step!(Input::Timeout, handle_timeout(due), Outcome::Ok);
    let reason = DisconnectReason::IdleTimeout;
    assert!(events.contains(&Event::Disconnected { id: b, reason }));
    let _ = step!(
        Input::IoError {
            id: b,
            kind: std::io::ErrorKind::ConnectionReset
        },
        handle_io_error(due, b, std::io::ErrorKind::ConnectionReset),
        Outcome::Ok
    );
    let _ = step!(Input::Detach { id: b }, detach(due, b), Outcome::Ok);
    let _ = step!(Input::Closed { id: b }, handle_closed(due, b), Outcome::Ok);
    let grace = Duration::from_millis(1500);
    let (_, _, events) = step!(
        Input::Shutdown { grace },
        shutdown(due + Duration::from_nanos(1), grace),
        Outcome::Ok
    );
    assert_eq!(events, vec![Event::ShutdownComplete]);
    let stats = hub.observer_stats().unwrap();
    hub.finish().unwrap();
    assert!(!hub.is_observed());

    let rec = parse(&path);
    assert_eq!(rec.segments.len(), 1);
    let segment = &rec.segments[0];
    assert_eq!(segment.header.segment, 0);
    assert_eq!(segment.header.checksum, Checksum::ZERO);
    assert!(segment.header.bytes);
    let got: Vec<_> = segment
        .lines
        .iter()
        .map(|l| (l.input.clone(), l.outcome, l.checksum))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(segment.lines[3].at_ns, 1_000_000);
    assert_eq!(
        segment.lines.last().unwrap().at_ns,
        u64::try_from((due - epoch).as_nanos()).unwrap() + 1
    );
    assert_eq!(stats.lines, expected.len() as u64);
    assert_eq!(stats.bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!((stats.rotations, stats.errors), (0, 0));
    replay(segment, epoch);
}

/// The ids the script's two accepts get.
struct ChannelIdOf;

impl ChannelIdOf {
    fn first() -> tether_core::ChannelId {
        tether_core::ChannelId::from_parts(0, 0, 1).unwrap()
    }

    fn second() -> tether_core::ChannelId {
        tether_core::ChannelId::from_parts(0, 1, 1).unwrap()
    }
}

/// Many channels chatting: enough lines for several rotations.
fn chatter(hub: &mut RecordedHub, epoch: Instant, rounds: u64) {
    let mut ids = Vec::new();
    for i in 0..20u16 {
        let peer = std::net::SocketAddr::from(([10, 0, 0, 1], 1000 + i));
        let id = hub.accept(epoch, peer).unwrap();
        hub.attach(epoch, id).unwrap();
        ids.push(id);
    }
    for round in 0..rounds {
        let now = epoch + Duration::from_micros(round * 10);
        for id in &ids {
            let _ = hub.handle_received(now, *id, Bytes::from_static(b"hello there\n"));
            let _ = hub.send(now, *id, Bytes::from_static(b"general kenobi\n"));
            let _ = hub.handle_written(now, *id, 15);
        }
        while hub.poll_action().is_some() {}
        while hub.poll_event().is_some() {}
    }
}

#[test]
fn rotation_keeps_the_total_bounded_and_every_segment_replays_on_its_own() {
    let dir = TempDir::new("rotation");
    let path = dir.path("hub.rec");
    let options = RecordOptions::new(&path)
        .with_max_bytes(3 * 64 * 1024)
        .with_keep(2);
    let epoch = Instant::now();
    let mut hub = recording(Hub::new(Config::default()).unwrap(), epoch, options.clone()).unwrap();
    chatter(&mut hub, epoch, 400);
    hub.finish().unwrap();
    let stats = hub.observer_stats().unwrap();
    assert!(stats.rotations >= 3, "{stats:?}");
    assert_eq!(stats.errors, 0);

    let files = [options.rotated(2), options.rotated(1), path.clone()];
    assert!(!options.rotated(3).exists());
    let longest_line = 80;
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(total <= options.max_bytes + 3 * longest_line, "{total}");
    let mut previous: Option<Segment> = None;
    for file in &files {
        let size = std::fs::metadata(file).unwrap().len();
        assert!(
            size <= options.segment_limit() + longest_line,
            "{}",
            file.display()
        );
        let rec = parse(file);
        assert_eq!(rec.segments.len(), 1);
        let segment = rec.segments.into_iter().next().unwrap();
        assert!(!segment.lines.is_empty());
        if let Some(prev) = &previous {
            assert_eq!(segment.header.segment, prev.header.segment + 1);
            assert_eq!(segment.header.checksum, prev.lines.last().unwrap().checksum);
        }
        replay(&segment, epoch);
        previous = Some(segment);
    }
    assert_eq!(previous.unwrap().header.segment, stats.rotations);
}

#[test]
fn a_new_recording_removes_old_rotated_files_and_keep_zero_keeps_none() {
    let dir = TempDir::new("keep0");
    let path = dir.path("hub.rec");
    let options = RecordOptions::new(&path)
        .with_max_bytes(64 * 1024)
        .with_keep(0);
    std::fs::write(options.rotated(1), b"old").unwrap();
    let epoch = Instant::now();
    let mut hub = recording(Hub::new(Config::default()).unwrap(), epoch, options.clone()).unwrap();
    assert!(options.rotated(1).exists(), "keep 0 leaves PATH.1 alone");
    let options = options.with_keep(1).with_max_bytes(2 * 64 * 1024);
    drop(hub);
    hub = recording(Hub::new(Config::default()).unwrap(), epoch, options.clone()).unwrap();
    assert!(!options.rotated(1).exists());
    chatter(&mut hub, epoch, 100);
    hub.finish().unwrap();
    assert!(hub.observer_stats().unwrap().rotations > 0);
    let rec = parse(&path);
    assert!(rec.segments[0].header.segment > 0);
}

/// A recording hub whose recording failed: its directory disappeared, so
/// the next segment could not be created. The directory guard, the hub and
/// its epoch.
fn failed_recording(name: &str) -> (TempDir, RecordedHub, Instant) {
    let dir = TempDir::new(name);
    let path = dir.path("gone").join("hub.rec");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let options = RecordOptions::new(&path)
        .with_max_bytes(2 * 64 * 1024)
        .with_keep(1);
    let epoch = Instant::now();
    let mut hub = recording(Hub::new(Config::default()).unwrap(), epoch, options).unwrap();
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    chatter(&mut hub, epoch, 100);
    assert!(!hub.is_observed());
    (dir, hub, epoch)
}

#[test]
fn a_write_error_stops_the_recording_not_the_hub() {
    let (_dir, mut hub, epoch) = failed_recording("error");
    let stats = hub.observer_stats().unwrap();
    assert_eq!(stats.errors, 1);
    let lines = stats.lines;
    match hub.take_error().map(record_error) {
        Some(RecordError::Io { op: "create", .. }) => {}
        other => panic!("expected a create error, got {other:?}"),
    }
    assert!(hub.take_error().is_none(), "returned once");
    assert!(hub.flush().is_ok());
    // The hub carries on, unrecorded, its outputs still served.
    let id = hub.accept(epoch, "127.0.0.1:1".parse().unwrap()).unwrap();
    assert!(matches!(hub.poll_event(), Some(Event::Opened { id: opened, .. }) if opened == id));
    assert_eq!(hub.observer_stats().unwrap().lines, lines);
    assert!(hub.flush().is_ok());
    assert!(hub.finish().is_ok());
}

#[test]
fn a_file_that_cannot_be_written_fails_at_start() {
    let epoch = Instant::now();
    let dir = TempDir::new("nodir");
    let missing = dir.path("no/such/dir/hub.rec");
    let err = recording(
        Hub::new(Config::default()).unwrap(),
        epoch,
        RecordOptions::new(missing),
    )
    .unwrap_err();
    assert!(matches!(err, RecordError::Io { op: "create", .. }), "{err}");
    if Path::new("/dev/full").exists() {
        // Opens, but every write fails (ENOSPC): the header's write. Keep
        // 0 and a failing first write: nothing is renamed or removed.
        let err = recording(
            Hub::new(Config::default()).unwrap(),
            epoch,
            RecordOptions::new("/dev/full")
                .with_keep(0)
                .with_max_bytes(64 * 1024),
        )
        .unwrap_err();
        assert!(matches!(err, RecordError::Io { op: "write", .. }), "{err}");
    }
    let err = recording(
        Hub::new(Config::default()).unwrap(),
        epoch,
        RecordOptions::new(dir.path("x")).with_max_bytes(1000),
    )
    .unwrap_err();
    assert!(matches!(err, RecordError::Options(_)), "{err}");
}

#[test]
fn without_a_recorder_every_call_is_forwarded() {
    let now = Instant::now();
    let mut hub = RecordedHub::new(Hub::new(Config::default()).unwrap());
    let id = hub.accept(now, "127.0.0.1:2".parse().unwrap()).unwrap();
    assert!(!hub.is_observed());
    assert_eq!(hub.observer_stats(), None);
    assert!(matches!(hub.poll_event(), Some(Event::Opened { .. })));
    hub.send(now, id, Bytes::from_static(b"x")).unwrap();
    assert!(matches!(hub.poll_action(), Some(Action::Transmit { .. })));
    assert_eq!(hub.channel(id).unwrap().queued, 1);
    assert!(hub.finish().is_ok());
    let _hub: Hub = hub.into_inner();
}

#[test]
fn a_stored_error_is_returned_once_by_flush_or_finish() {
    for use_finish in [false, true] {
        let (_dir, mut hub, _) = failed_recording("error-once");
        let first = if use_finish {
            hub.finish()
        } else {
            hub.flush()
        };
        assert!(matches!(
            first.map_err(record_error),
            Err(RecordError::Io { op: "create", .. })
        ));
        assert!(hub.take_error().is_none());
        assert!(hub.flush().is_ok());
        assert!(hub.finish().is_ok());
        assert_eq!(hub.observer_stats().unwrap().errors, 1);
    }
}

#[test]
fn as_a_factory_each_shard_records_to_its_own_file_and_a_start_error_reads_plainly() {
    use tether_adapter::ObserverFactory;
    let epoch = Instant::now();
    let dir = TempDir::new("factory");
    let hub = Hub::new(Config::default()).unwrap();
    let options = RecordOptions::new(dir.path("chat.rec"));
    let mut observer = options.start(1, 2, epoch, &hub).unwrap();
    assert!(observer.is_active());
    observer.finish().unwrap();
    assert!(dir.path("chat.rec.shard1").exists());
    let missing = RecordOptions::new(dir.path("no/such/dir/hub.rec"));
    let err = missing.start(0, 1, epoch, &hub).unwrap_err();
    assert!(err.to_string().starts_with("cannot create "), "{err}");
    let err = err.downcast::<RecordStartError>().unwrap();
    assert!(matches!(err.0, RecordError::Io { op: "create", .. }));
}

#[test]
fn every_input_is_recorded_through_handle_input() {
    let dir = TempDir::new("every-input");
    let path = dir.path("hub.rec");
    let epoch = Instant::now();
    let options = RecordOptions::new(&path).with_bytes(true);
    let mut hub = recording(Hub::new(Config::default()).unwrap(), epoch, options).unwrap();
    let peer = "127.0.0.1:5000".parse().unwrap();
    let (a, b) = (ChannelIdOf::first(), ChannelIdOf::second());
    let stale = tether_core::ChannelId::from_parts(0, 0, 9).unwrap();
    let data = Bytes::from_static(b"news");
    let inputs = vec![
        Input::Accept { peer },
        Input::Accept { peer },
        Input::BroadcastTo {
            ids: vec![a, b, a, stale],
            data: data.clone(),
        },
        Input::KickWithReason {
            id: a,
            mode: KickMode::Abort,
            reason: DisconnectReason::SlowConsumer,
        },
        Input::KickWithReason {
            id: b,
            mode: KickMode::Graceful,
            reason: DisconnectReason::IoError(std::io::ErrorKind::TimedOut),
        },
        Input::BroadcastTo {
            ids: vec![a, b],
            data,
        },
    ];
    let mut outcomes = Vec::new();
    for (n, input) in inputs.iter().enumerate() {
        let now = epoch + Duration::from_millis(n as u64);
        outcomes.push(hub.handle_input(now, input.clone()).outcome());
        while hub.poll_action().is_some() {}
        while hub.poll_event().is_some() {}
    }
    assert_eq!(
        outcomes[2],
        Outcome::Broadcast {
            sent: 3,
            refused: 1
        }
    );
    assert_eq!(
        outcomes[5],
        Outcome::Broadcast {
            sent: 0,
            refused: 2
        }
    );
    hub.finish().unwrap();

    let rec = parse(&path);
    let segment = &rec.segments[0];
    let got: Vec<_> = (segment.lines.iter())
        .map(|l| (l.input.clone(), l.outcome))
        .collect();
    let expected: Vec<_> = inputs.into_iter().zip(outcomes).collect();
    assert_eq!(got, expected);
    replay(segment, epoch);
}
