//! `tether serve --cluster`: two nodes in one process (on two runtimes)
//! over a real `redis-server` started by the test, and the binary's exit
//! statuses for an unreachable Redis and a name live elsewhere. The
//! multi-process tests (SIGKILL, thousands of clients) live in the
//! conformance suite.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, stat};
use tether_chat::cli::{Command as Parsed, Runtime, ServeOptions, parse_from};
use tether_chat::server::ChatServer;
use tether_redis::testing::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_tether");

/// A node's options: loopback ports chosen by the kernel, a short TTL.
fn node_options(redis: &RedisServer, name: &str, runtime: Runtime, shards: &str) -> ServeOptions {
    let url = redis.url();
    let args = [
        "tether",
        "--cluster",
        &url,
        "--node",
        name,
        "--runtime",
        runtime.name(),
        "--shards",
        shards,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--web",
        "127.0.0.1:0",
        "--cluster-heartbeat",
        "200ms",
        "--cluster-ttl",
        "800ms",
        "--cluster-timeout",
        "700ms",
        "--flush-timeout",
        "1s",
    ];
    match parse_from(args) {
        Ok(Parsed::Serve(options)) => *options,
        other => panic!("{other:?}"),
    }
}

fn start(redis: &RedisServer, name: &str, runtime: Runtime, shards: &str) -> ChatServer {
    let mut options = node_options(redis, name, runtime, shards);
    options.metrics = Some("127.0.0.1:0".parse().unwrap());
    tether::start(&options).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `GET /metrics` of a node.
fn scrape(server: &ChatServer) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(server.metrics_addr.unwrap()).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// Asks a console until `check` holds (10 s at most).
fn until(admin: &mut Client, command: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        admin.send(command);
        let block = admin.block();
        if check(&block) {
            return block;
        }
        assert!(Instant::now() < deadline, "{command:?}: {block:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(server: ChatServer) {
    server.shutdown(Duration::from_millis(200)).unwrap();
    common::wait_ended(server);
}

#[test]
fn two_nodes_relay_list_and_kick_across_runtimes() {
    let redis = RedisServer::start();
    let n1 = start(&redis, "n1", Runtime::Tokio, "2");
    let n2 = start(&redis, "n2", Runtime::Threads, "1");
    let mut admin1 = Client::connect(n1.admin_addr);
    let mut admin2 = Client::connect(n2.admin_addr);
    let (mut a, a_id) = Client::join(n1.chat_addr);
    let (mut b, b_id) = Client::join(n2.chat_addr);
    assert!(a_id.starts_with("n1/#"), "{a_id}");
    assert!(b_id.starts_with("n2/#"), "{b_id}");
    // Presence: each node lists both clients, node-qualified ids first.
    let list = until(&mut admin2, "list\n", |l| l.len() == 2);
    assert!(
        list.iter().any(|l| l.starts_with(&format!("{b_id} "))),
        "{list:?}"
    );
    assert!(list.contains(&format!("{a_id}\n")), "{list:?}");
    // Each node's count comes with its next heartbeat: n2 may be listed
    // with the count it had before `b` joined, so wait for both counts.
    let nodes = until(&mut admin1, "nodes\n", |l| {
        l.len() == 2 && l[0].starts_with("n1 channels=1 ") && l[1].starts_with("n2 channels=1 ")
    });
    assert!(nodes[0].starts_with("n1 channels=1 age_ms="), "{nodes:?}");
    assert!(nodes[1].starts_with("n2 channels=1 age_ms="), "{nodes:?}");
    // A line reaches both nodes' clients, with the same id.
    a.send("hi from n1\n");
    assert_eq!(a.line(), format!("{a_id}: hi from n1\n"));
    assert_eq!(b.line(), format!("{a_id}: hi from n1\n"));
    b.send("and back\n");
    assert_eq!(b.line(), format!("{b_id}: and back\n"));
    assert_eq!(a.line(), format!("{b_id}: and back\n"));
    // A kick from n1 of n2's client: ok once n2 did it; the client reads
    // the notice, then EOF.
    admin1.send(&format!("kick {b_id} graceful be nice\n"));
    assert_eq!(admin1.line(), "ok\n");
    assert_eq!(b.line(), "* kicked: be nice\n");
    assert_eq!(b.line(), "");
    admin1.send(&format!("kick {b_id}\n"));
    assert_eq!(admin1.line(), "error stale\n");
    admin1.send("kick n9/#1.1\n");
    assert_eq!(admin1.line(), "error unknown node n9\n");
    // NAME/<id> with this node's name is a local kick.
    admin1.send(&format!("kick {a_id} abort\n"));
    assert_eq!(admin1.line(), "ok\n");
    admin1.send(&format!("kick {a_id} abort\n"));
    assert_eq!(admin1.line(), "error stale\n");
    let stats = admin2.stats();
    assert_eq!(stat(&stats, "cluster.live_nodes"), 2);
    // Both requests executed on n2, once each (the second found it stale);
    // one disconnect.
    assert_eq!(stat(&stats, "cluster.kicks_served"), 2);
    assert_eq!(stat(&stats, "disconnected.kicked"), 1);
    // The same keys in --metrics, gauges as gauges.
    let metrics = scrape(&n2);
    assert!(
        metrics.contains("\ntether_cluster_live_nodes 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE tether_cluster_live_nodes gauge"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ntether_cluster_kicks_served_total 2\n"),
        "{metrics}"
    );
    assert_eq!(stat(&stats, "cluster.handoff_dropped"), 0);
    // A node stopped leaves the others' `nodes` at once (its goodbye).
    stop(n2);
    until(&mut admin1, "nodes\n", |l| l.len() == 1);
    admin1.send("kick n2/#1.1\n");
    assert_eq!(admin1.line(), "error unknown node n2\n");
    stop(n1);
}

#[test]
fn redis_down_keeps_local_chat_and_answers_unavailable() {
    let mut redis = RedisServer::start();
    let n1 = start(&redis, "n1", Runtime::Smol, "1");
    let n2 = start(&redis, "n2", Runtime::AsyncStd, "1");
    let mut admin1 = Client::connect(n1.admin_addr);
    let (mut a, a_id) = Client::join(n1.chat_addr);
    let (mut a2, _) = Client::join(n1.chat_addr);
    let (mut b, b_id) = Client::join(n2.chat_addr);
    until(&mut admin1, "list\n", |l| l.len() == 3);
    redis.kill();
    std::thread::sleep(Duration::from_millis(300));
    // Local chat goes on; a cross-node kick answers within the timeout.
    a.send("while redis is down\n");
    let line = format!("{a_id}: while redis is down\n");
    assert_eq!(a.line(), line);
    assert_eq!(a2.line(), line);
    let asked = Instant::now();
    admin1.send(&format!("kick {b_id}\n"));
    assert_eq!(admin1.line(), "error cluster unavailable\n");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    // Redis back: the line held in the outbox reaches n2, in order.
    redis.restart();
    a.send("after\n");
    assert_eq!(b.line(), line);
    assert_eq!(b.line(), format!("{a_id}: after\n"));
    let stats = admin1.stats();
    assert!(stat(&stats, "cluster.reconnects") >= 1, "{stats:?}");
    assert_eq!(stat(&stats, "cluster.lines_lost"), 0);
    stop(n1);
    stop(n2);
}

/// Runs the binary to its exit; returns its status and stderr.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--web", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TETHER_") {
            command.env_remove(key);
        }
    }
    let out = command.output().expect("run tether");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unreachable_redis_or_a_taken_name_exits_2() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let n1 = start(&redis, "n1", Runtime::Threads, "1");
    let (status, err) = run(&["--cluster", &url, "--node", "n1"]);
    assert_eq!(status, Some(2), "{err}");
    assert!(
        err.contains("--node n1: the node name n1 is live elsewhere"),
        "{err}"
    );
    let (status, err) = run(&["--node", "n1"]);
    assert_eq!(status, Some(2), "{err}");
    assert!(err.contains("--cluster"), "{err}");
    stop(n1);
    redis.kill();
    let (status, err) = run(&["--cluster", &url, "--node", "n1"]);
    assert_eq!(status, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "--cluster {url}: cannot reach Redis at 127.0.0.1:"
        )),
        "{err}"
    );
}

#[test]
fn without_cluster_nothing_changes_and_cluster_commands_say_so() {
    let server = tether::start(&ServeOptions::ephemeral()).unwrap();
    let (mut a, a_id) = Client::join(server.chat_addr);
    assert!(a_id.starts_with('#'), "{a_id}");
    a.send("plain\n");
    assert_eq!(a.line(), format!("{a_id}: plain\n"));
    let mut admin = Client::connect(server.admin_addr);
    for command in ["nodes\n", "kick n1/#1.1\n"] {
        admin.send(command);
        let answer = admin.line();
        assert!(
            answer.starts_with("error not in a cluster"),
            "{command:?}: {answer}"
        );
    }
    let stats = admin.stats();
    assert!(
        !stats.iter().any(|(k, _)| k.starts_with("cluster.")),
        "{stats:?}"
    );
    stop(server);
}
