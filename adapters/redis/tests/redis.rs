//! The driver against a real `redis-server` (started by each test on a free
//! loopback port, without persistence; see `tether_redis::testing`): the
//! name claim and its conflict, a payload round trip between two nodes,
//! cross-node kicks, and a reconnect after Redis is killed and restarted.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tether_cluster::{ClusterConfig, KickError, KickMode, KickResult, NodeId, NodeName};
use tether_core::ChannelId;
use tether_redis::testing::RedisServer;
use tether_redis::{Local, Node, NodeOptions, StartError, claim_key};

/// A local server that records what the cluster asks of it.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
    kicks: Mutex<Vec<ChannelId>>,
    live: Mutex<HashSet<ChannelId>>,
}

impl Local for Recorder {
    fn deliver(&self, lines: &[(NodeId, Bytes)]) {
        let mut seen = self.lines.lock().unwrap();
        for (from, text) in lines {
            seen.push(format!("{from}: {}", String::from_utf8_lossy(text)));
        }
    }
    fn kick(&self, id: ChannelId, _mode: KickMode, _reason: &str) -> KickResult {
        self.kicks.lock().unwrap().push(id);
        if self.live.lock().unwrap().remove(&id) {
            KickResult::Done
        } else {
            KickResult::Stale
        }
    }
}

fn config() -> ClusterConfig {
    let mut config = ClusterConfig::default();
    config.heartbeat = Duration::from_millis(200);
    config.ttl = Duration::from_millis(800);
    config.timeout = Duration::from_millis(600);
    config
}

fn start(redis: &RedisServer, name: &str) -> (Node, Arc<Recorder>) {
    let local = Arc::new(Recorder::default());
    let node = try_start(redis, name, local.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    (node, local)
}

fn try_start(redis: &RedisServer, name: &str, local: Arc<Recorder>) -> Result<Node, StartError> {
    Node::start(options(redis, name), local)
}

fn options(redis: &RedisServer, name: &str) -> NodeOptions {
    NodeOptions::new(redis.redis_url(), name.parse().unwrap(), config())
}

fn id(slot: u32) -> ChannelId {
    ChannelId::from_parts(0, slot, 1).unwrap()
}

/// Waits up to 10 s for `check`, naming `what` on failure.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn names(node: &Node) -> Vec<String> {
    let mut names: Vec<String> = node
        .nodes()
        .map(|nodes| nodes.into_iter().map(|n| n.name.to_string()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn redis_get(redis: &RedisServer, key: &str) -> Option<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    redis::cmd("GET").arg(key).query(&mut con).unwrap()
}

#[test]
fn a_name_is_claimed_once_and_released_at_goodbye() {
    let redis = RedisServer::start();
    let (n1, _) = start(&redis, "n1");
    assert!(redis_get(&redis, &claim_key("n1")).is_some(), "claim set");
    let err = try_start(&redis, "n1", Arc::default()).unwrap_err();
    assert!(matches!(err, StartError::NameTaken { .. }), "{err}");
    assert!(err.to_string().contains("n1"), "{err}");
    let (n2, _) = start(&redis, "n2");
    eventually("both nodes see both", || {
        names(&n1) == ["n1", "n2"] && names(&n2) == ["n1", "n2"]
    });
    // The claim outlives several TTLs while the node runs (renewals).
    std::thread::sleep(config().ttl * 2);
    assert!(
        redis_get(&redis, &claim_key("n1")).is_some(),
        "claim renewed"
    );
    n1.shutdown();
    assert_eq!(redis_get(&redis, &claim_key("n1")), None, "claim deleted");
    // The goodbye removes it from the others at once, not after the TTL.
    let left = Instant::now();
    eventually("n2 sees n1 leave", || names(&n2) == ["n2"]);
    assert!(left.elapsed() < config().ttl, "left by goodbye, not expiry");
    // The name is free again.
    let (again, _) = start(&redis, "n1");
    again.shutdown();
    n2.shutdown();
}

#[test]
fn unreachable_redis_fails_the_start() {
    let mut redis = RedisServer::start();
    redis.kill();
    let started = Instant::now();
    let err = try_start(&redis, "n1", Arc::default()).unwrap_err();
    assert!(matches!(err, StartError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("127.0.0.1:{}", redis.port())),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn lines_presence_and_kicks_cross_nodes() {
    let redis = RedisServer::start();
    let (n1, local1) = start(&redis, "n1");
    let (n2, local2) = start(&redis, "n2");
    eventually("both live", || names(&n2) == ["n1", "n2"]);
    local1.live.lock().unwrap().insert(id(3));
    n1.opened(id(3));
    // 1,000 lines in order, exactly once, each with its sender's id.
    let sent: Vec<String> = (0..1000).map(|i| format!("line {i:04}")).collect();
    for text in &sent {
        n1.line(id(3), Bytes::from(text.clone()));
    }
    eventually("every line on n2", || {
        local2.lines.lock().unwrap().len() >= sent.len()
    });
    std::thread::sleep(Duration::from_millis(100));
    let expected: Vec<String> = sent.iter().map(|t| format!("n1/#3.1: {t}")).collect();
    assert_eq!(*local2.lines.lock().unwrap(), expected);
    assert!(
        local1.lines.lock().unwrap().is_empty(),
        "no echo to the sender's node"
    );
    eventually("presence on n2", || {
        n2.presence()
            .unwrap()
            .iter()
            .any(|p| p.to_string() == "n1/#3.1")
    });
    // A kick from n2: done on n1 exactly once, then stale.
    let target: NodeId = "n1/#3.1".parse().unwrap();
    assert_eq!(
        n2.kick(target.clone(), KickMode::Graceful, "bye".into()),
        Ok(())
    );
    assert_eq!(*local1.kicks.lock().unwrap(), [id(3)]);
    assert_eq!(
        n2.kick(target, KickMode::Abort, String::new()),
        Err(KickError::Stale)
    );
    let nobody: NodeName = "n9".parse().unwrap();
    let ghost = NodeId {
        node: nobody.clone(),
        id: id(1),
    };
    assert_eq!(
        n2.kick(ghost, KickMode::Abort, String::new()),
        Err(KickError::UnknownNode(nobody))
    );
    let stats = n2.stats().unwrap();
    let get = |key: &str| stats.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    assert!(get("cluster.received").unwrap() >= 1000, "{stats:?}");
    assert_eq!(get("cluster.handoff_dropped"), Some(0));
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn nodes_reconnect_after_redis_restarts_and_lose_no_line() {
    let mut redis = RedisServer::start();
    let (n1, local1) = start(&redis, "n1");
    let (n2, local2) = start(&redis, "n2");
    local1.live.lock().unwrap().insert(id(5));
    n1.opened(id(5));
    eventually("presence on n2", || n2.presence().unwrap().len() == 1);
    n1.line(id(5), Bytes::from_static(b"before"));
    eventually("first line", || local2.lines.lock().unwrap().len() == 1);

    redis.kill();
    // While Redis is down: cross-node kicks answer unavailable within the
    // timeout, and lines wait in the outbox.
    std::thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    let target: NodeId = "n1/#5.1".parse().unwrap();
    assert_eq!(
        n2.kick(target, KickMode::Abort, String::new()),
        Err(KickError::Unavailable)
    );
    assert!(asked.elapsed() < config().timeout + Duration::from_millis(500));
    for text in ["during 1", "during 2", "during 3"] {
        n1.line(id(5), Bytes::from(text));
    }
    std::thread::sleep(Duration::from_millis(500));
    redis.restart();
    let back = Instant::now();
    eventually("the outbox delivered in order", || {
        local2.lines.lock().unwrap().len() == 4
    });
    assert_eq!(
        *local2.lines.lock().unwrap(),
        [
            "n1/#5.1: before",
            "n1/#5.1: during 1",
            "n1/#5.1: during 2",
            "n1/#5.1: during 3"
        ]
    );
    // Backoff is capped at 1 s: both back well within 3 s of Redis.
    assert!(
        back.elapsed() < Duration::from_secs(3),
        "{:?}",
        back.elapsed()
    );
    eventually("presence re-announced into the new Redis", || {
        n2.presence()
            .unwrap()
            .iter()
            .any(|p| p.to_string() == "n1/#5.1")
    });
    // The claims were lost with Redis and are taken again at renewal.
    eventually("claim retaken", || {
        redis_get(&redis, &claim_key("n1")).is_some()
    });
    let stats = n1.stats().unwrap();
    let get = |key: &str| stats.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    assert!(get("cluster.reconnects").unwrap() >= 1, "{stats:?}");
    assert!(get("cluster.broker_errors").unwrap() >= 1, "{stats:?}");
    assert_eq!(get("cluster.lines_lost"), Some(0), "{stats:?}");
    n1.shutdown();
    n2.shutdown();
}

/// A local server whose deliveries block until released: the clients of
/// this node are slow.
struct Stuck {
    inner: Recorder,
    open: Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Local for Stuck {
    fn deliver(&self, lines: &[(NodeId, Bytes)]) {
        let open = self.open.lock().unwrap();
        drop(self.wake.wait_while(open, |open| !*open).unwrap());
        self.inner.deliver(lines);
    }
    fn kick(&self, id: ChannelId, mode: KickMode, reason: &str) -> KickResult {
        self.inner.kick(id, mode, reason)
    }
}

fn stuck() -> Arc<Stuck> {
    Arc::new(Stuck {
        inner: Recorder::default(),
        open: Mutex::new(false),
        wake: std::sync::Condvar::new(),
    })
}

impl Stuck {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.wake.notify_all();
    }
}

/// Sends `count` numbered lines from n1's channel #1.1, one per bus read.
fn send_numbered(n1: &Node, count: usize) {
    for i in 0..count {
        n1.line(id(1), Bytes::from(format!("{i}")));
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn assert_numbered(stuck: &Stuck, count: usize) {
    eventually("every line delivered", || {
        stuck.inner.lines.lock().unwrap().len() >= count
    });
    let expected: Vec<String> = (0..count).map(|i| format!("n1/#1.1: {i}")).collect();
    assert_eq!(
        *stuck.inner.lines.lock().unwrap(),
        expected,
        "in order, none lost"
    );
}

#[test]
fn slow_local_clients_never_stop_the_heartbeats() {
    let redis = RedisServer::start();
    let (n1, _) = start(&redis, "n1");
    let stuck = stuck();
    let n2 = Node::start(options(&redis, "n2"), stuck.clone()).unwrap();
    eventually("both live", || names(&n1) == ["n1", "n2"]);
    n1.opened(id(1));
    // More read batches than the delivery queue holds, while its thread
    // is stuck: the owner holds the rest and reads on.
    let lines = tether_redis::DELIVERY_QUEUE * 2 + 10;
    send_numbered(&n1, lines);
    // Stuck for three TTLs: n2 still heartbeats and still hears n1's, so
    // neither sees the other leave, and n2 still answers the console.
    let until = Instant::now() + config().ttl * 3;
    while Instant::now() < until {
        assert_eq!(
            names(&n1),
            ["n1", "n2"],
            "n2 expired while its clients were slow"
        );
        assert_eq!(names(&n2), ["n1", "n2"], "n2 stopped hearing n1");
        std::thread::sleep(Duration::from_millis(50));
    }
    stuck.release();
    assert_numbered(&stuck, lines);
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn past_the_hold_the_reader_pauses_and_loses_nothing() {
    let redis = RedisServer::start();
    let (n1, _) = start(&redis, "n1");
    let stuck = stuck();
    let n2 = Node::start(options(&redis, "n2").with_hold_bytes(1024), stuck.clone()).unwrap();
    eventually("both live", || names(&n1) == ["n1", "n2"]);
    n1.opened(id(1));
    let lines = tether_redis::DELIVERY_QUEUE * 2 + 10;
    send_numbered(&n1, lines);
    eventually("the reader paused", || {
        n2.counters()
            .reads_paused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    });
    stuck.release();
    assert_numbered(&stuck, lines);
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn a_paused_redis_is_survived() {
    let mut redis = RedisServer::start();
    let (n1, _) = start(&redis, "n1");
    let (n2, local2) = start(&redis, "n2");
    n1.opened(id(2));
    eventually("presence", || n2.presence().unwrap().len() == 1);
    redis.pause();
    for text in ["a", "b", "c"] {
        n1.line(id(2), Bytes::from(text));
    }
    // The console never hangs: a kick answers within the timeout.
    let asked = Instant::now();
    let answer = n2.kick("n1/#2.1".parse().unwrap(), KickMode::Abort, String::new());
    assert!(asked.elapsed() < config().timeout + Duration::from_millis(500));
    assert!(answer.is_err() || answer == Ok(()), "{answer:?}");
    std::thread::sleep(Duration::from_secs(2));
    redis.resume();
    eventually("the lines after the pause", || {
        local2.lines.lock().unwrap().len() == 3
    });
    assert_eq!(
        *local2.lines.lock().unwrap(),
        ["n1/#2.1: a", "n1/#2.1: b", "n1/#2.1: c"]
    );
    eventually("both live again", || {
        names(&n1) == ["n1", "n2"] && names(&n2) == ["n1", "n2"]
    });
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn hostile_bus_entries_are_counted_and_ignored() {
    let redis = RedisServer::start();
    let (n1, _) = start(&redis, "n1");
    let (n2, local2) = start(&redis, "n2");
    eventually("both live", || names(&n2) == ["n1", "n2"]);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let xadd = |con: &mut redis::Connection, fields: &[&[u8]]| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(tether_redis::BUS_KEY).arg("*");
        for field in fields {
            cmd.arg(*field);
        }
        let _: String = cmd.query(con).unwrap();
    };
    // No payload field; garbage; a huge length prefix; empty.
    xadd(&mut con, &[b"x", b"y"]);
    xadd(&mut con, &[b"p", b"\xff\xff\xff\xff garbage"]);
    xadd(&mut con, &[b"p", &[0x01; 64]]);
    xadd(&mut con, &[b"p", b""]);
    n1.opened(id(4));
    n1.line(id(4), Bytes::from_static(b"still here"));
    eventually("a line after the garbage", || {
        local2.lines.lock().unwrap().len() == 1
    });
    assert_eq!(*local2.lines.lock().unwrap(), ["n1/#4.1: still here"]);
    let stats = n2.stats().unwrap();
    let get = |key: &str| stats.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    assert_eq!(get("cluster.bad_entries"), Some(1), "{stats:?}");
    assert!(get("cluster.decode_errors").unwrap() >= 3, "{stats:?}");
    assert_eq!(names(&n2), ["n1", "n2"]);
    n1.shutdown();
    n2.shutdown();
}

#[test]
fn a_refused_write_is_counted_and_tried_again_on_the_same_link() {
    let redis = RedisServer::start();
    let (n1, _) = start(&redis, "n1");
    let (n2, local2) = start(&redis, "n2");
    n1.opened(id(6));
    eventually("presence", || n2.presence().unwrap().len() == 1);
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_connection().unwrap();
    let set_maxmemory = |con: &mut redis::Connection, bytes: &str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(bytes)
            .query::<()>(con)
            .unwrap();
    };
    // Redis out of memory: every XADD is refused (an error reply, not a
    // lost link) for a moment shorter than the TTL.
    set_maxmemory(&mut con, "1");
    n1.line(id(6), Bytes::from_static(b"while refused"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(local2.lines.lock().unwrap().is_empty());
    set_maxmemory(&mut con, "0");
    eventually("the refused line, once allowed", || {
        local2.lines.lock().unwrap().len() == 1
    });
    assert_eq!(*local2.lines.lock().unwrap(), ["n1/#6.1: while refused"]);
    let stats = n1.stats().unwrap();
    let get = |key: &str| stats.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    assert!(get("cluster.broker_errors").unwrap() >= 1, "{stats:?}");
    assert_eq!(
        get("cluster.reconnects"),
        Some(0),
        "no reconnect for an error reply"
    );
    n1.shutdown();
    n2.shutdown();
}
