//! # The cluster suite (issue 18)
//!
//! Real `tether serve --cluster redis://… --node nK` **processes** over one
//! real `redis-server` ([`crate::redis`]), with real loopback clients: what
//! an operator running several nodes sees, tested against the interface
//! issue 18 specifies (flags, console words and formats, exit codes, ids
//! `n1/#0:3.1`).
//!
//! * [`ClusterRig`]: one `redis-server` and N nodes (any runtime, any
//!   `--shards`), each a [`pressure::Server`](crate::pressure::Server) with
//!   its console; [`Member`]: a greeted chat client of one node;
//!   [`Collector`]: a client whose lines a thread records as they come.
//! * [`conformance`]: presence (`nodes`, `list`), relay, kicks (remote,
//!   local, bare, abortive, stale, unknown node), `cluster.*` in `stats`
//!   and `--metrics`, across three nodes.
//! * [`starts`]: starts that must fail with exit 2 and a message naming
//!   the cause (bad or taken node name, bad or unreachable `--cluster`).
//! * [`faults`]: a node SIGKILLed (and its name taken again) or SIGTERMed
//!   (or `shutdown`).
//! * [`broker`]: Redis SIGKILLed and restarted mid-burst (with the default
//!   and a tiny outbox); Redis paused with SIGSTOP, with and under a kick.
//! * [`outage`]: Redis killed with lines in flight, down short of and past
//!   the ttl.
//! * [`flow`]: a remote client that reads nothing, or slowly for several
//!   ttls, stalls no one else.
//! * [`scale`]: thousands of clients per node and cross-node kicks, each
//!   exactly once.
//!
//! Every scenario holds [`serial`](crate::pressure::serial) (they share two
//! cores), bounds every wait, and collects every failure before panicking
//! with the nodes' stderr. `tests/tests/cluster.rs` instantiates them per
//! runtime with [`cluster_suite!`](crate::cluster_suite).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::End;
use crate::pressure::net::LineReader;
use crate::pressure::server::{Admin, Server, ServerSpec, StatsMap};
use crate::redis::RedisServer;

pub mod broker;
pub mod conformance;
pub mod faults;
pub mod flow;
pub mod outage;
pub mod scale;
pub mod starts;

/// The nodes' names, in order.
pub const NAMES: [&str; 3] = ["n1", "n2", "n3"];
/// `--cluster-timeout`'s default: a cross-node request answers by then.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// `--cluster-ttl`'s default: a silent node leaves by then.
pub const TTL: Duration = Duration::from_secs(3);
/// A generous bound for anything that should be quick (a console answer
/// in normal operation, a line crossing nodes, presence converging): never
/// a speed test, only "it happens".
pub const SOON: Duration = Duration::from_secs(10);

/// One `redis-server` and the nodes of one scenario.
pub struct ClusterRig {
    /// The broker.
    pub redis: RedisServer,
    /// The nodes, in start order.
    pub nodes: Vec<Node>,
    runtime: &'static str,
    label: &'static str,
}

/// One `tether serve --cluster … --node NAME` process.
pub struct Node {
    /// `--node`.
    pub name: String,
    /// The process and its addresses.
    pub server: Server,
}

impl ClusterRig {
    /// Starts `redis-server` and `count` nodes named `n1`, `n2`, … with
    /// `flags` on each (beyond `--cluster`, `--node` and the runtime's).
    /// `runtime` is `tokio:2` style: `--shards 2`.
    pub fn start(
        runtime: &'static str,
        label: &'static str,
        count: usize,
        flags: &[(&str, &str)],
    ) -> ClusterRig {
        let redis = RedisServer::start();
        let mut rig = ClusterRig {
            redis,
            nodes: Vec::new(),
            runtime,
            label,
        };
        for k in 1..=count {
            let node = rig.start_node(&format!("n{k}"), flags);
            rig.nodes.push(node);
        }
        rig
    }

    /// Starts one more node of this cluster (not added to [`nodes`](Self::nodes)).
    pub fn start_node(&self, name: &str, flags: &[(&str, &str)]) -> Node {
        self.start_node_at(&self.redis.url(), name, flags)
    }

    /// Starts a node with `--cluster url` (e.g. another database of this
    /// rig's Redis, `redis://127.0.0.1:PORT/2`).
    pub fn start_node_at(&self, url: &str, name: &str, flags: &[(&str, &str)]) -> Node {
        // One stderr file per node (the file is named after the label): a
        // few bytes leaked per node started, in a test process.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let k = STARTED.fetch_add(1, Ordering::Relaxed);
        let label: &'static str = Box::leak(format!("{}-{name}-{k}", self.label).into_boxed_str());
        let mut spec = ServerSpec::new(self.runtime, label)
            .flag("--cluster", url)
            .flag("--node", name);
        for (flag, value) in flags {
            spec = spec.flag(flag, value);
        }
        Node {
            name: name.to_owned(),
            server: spec.start(),
        }
    }

    /// The runtime spec (`tokio:2`).
    pub fn runtime(&self) -> &'static str {
        self.runtime
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Waits until every node in `on` sees exactly the live nodes `names`
    /// in `nodes` and the ids `ids` (and no other) in `list`; the time it
    /// took, or what it last saw.
    pub fn converge(
        &self,
        on: &[&str],
        names: &[&str],
        ids: &[String],
        within: Duration,
    ) -> Result<Duration, String> {
        let mut want_names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        want_names.sort();
        let mut want_ids = ids.to_vec();
        want_ids.sort();
        wait_for(within, Duration::from_millis(50), || {
            for name in on {
                let node = self.node(name);
                let mut seen = node.nodes()?;
                seen.sort();
                if seen != want_names {
                    return Err(format!("{name}'s `nodes`: {seen:?}, want {want_names:?}"));
                }
                let mut listed = node.list_ids()?;
                listed.sort();
                if listed != want_ids {
                    return Err(format!(
                        "{name}'s `list`: {} ids, want {}; missing {:?}, extra {:?}",
                        listed.len(),
                        want_ids.len(),
                        first_missing(&want_ids, &listed),
                        first_missing(&listed, &want_ids),
                    ));
                }
            }
            Ok(())
        })
        .map(|((), took)| took)
    }

    /// Panics with `failures` and every node's context (command, stderr)
    /// if there is any failure.
    pub fn fail_if_any(&mut self, what: &str, failures: &[String]) {
        if failures.is_empty() {
            return;
        }
        let mut context = String::new();
        for node in &mut self.nodes {
            let _ = writeln!(context, "--- node {}\n{}", node.name, node.server.context());
        }
        panic!(
            "{what} on {} (redis {}):\n  - {}\n{context}",
            self.runtime,
            self.redis.url(),
            failures.join("\n  - "),
        );
    }
}

/// Up to five elements of `want` that `got` lacks (both sorted).
fn first_missing(want: &[String], got: &[String]) -> Vec<String> {
    want.iter()
        .filter(|w| got.binary_search(w).is_err())
        .take(5)
        .cloned()
        .collect()
}

impl Node {
    /// A fresh console connection.
    pub fn console(&self) -> io::Result<Admin> {
        Admin::connect(self.server.admin, SOON)
    }

    /// One command on a fresh console connection, answered within
    /// `within`: its lines, or why not.
    pub fn ask(&self, command: &str, within: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + within;
        Admin::connect(self.server.admin, within)
            .and_then(|mut admin| {
                admin.command(command, deadline.saturating_duration_since(Instant::now()))
            })
            .map_err(|e| format!("{}: `{command}`: {e}", self.name))
    }

    /// The first words of `nodes`' lines: the live nodes' names.
    pub fn nodes(&self) -> Result<Vec<String>, String> {
        let lines = self.ask("nodes", SOON)?;
        body_of(&self.name, "nodes", &lines).map(|body| {
            body.iter()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_owned)
                .collect()
        })
    }

    /// The first words of `list`'s lines: the node-qualified ids.
    pub fn list_ids(&self) -> Result<Vec<String>, String> {
        let lines = self.ask("list", SOON)?;
        body_of(&self.name, "list", &lines).map(|body| {
            body.iter()
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_owned)
                .collect()
        })
    }

    /// `stats`, parsed.
    pub fn stats(&self) -> Result<StatsMap, String> {
        let mut admin = self
            .console()
            .map_err(|e| format!("{}: console: {e}", self.name))?;
        admin
            .stats(SOON)
            .map_err(|e| format!("{}: `stats`: {e}", self.name))
    }

    /// `kick <target> …` on this node's console: the one-line answer.
    pub fn kick(&self, target_and_args: &str, within: Duration) -> String {
        match self.ask(&format!("kick {target_and_args}"), within) {
            Ok(lines) => lines.join(" | "),
            Err(e) => format!("no answer: {e}"),
        }
    }

    /// Connects a chat client and reads its greeting before `deadline`.
    pub fn connect(&self, deadline: Instant) -> Result<Member, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = crate::pressure::net::connect_timeout(self.server.chat, left)
            .map_err(|e| format!("{}: connect: {e}", self.name))?;
        Member::greet(stream, deadline).map_err(|e| format!("{}: {e}", self.name))
    }
}

/// The lines of a multi-line answer before its `.`.
fn body_of<'a>(node: &str, command: &str, lines: &'a [String]) -> Result<&'a [String], String> {
    match lines.split_last() {
        Some((last, body)) if last == "." => Ok(body),
        _ => Err(format!("{node}: `{command}` answered {lines:?}")),
    }
}

/// The id of a cluster greeting, `hello NAME/#…` (`NAME` of
/// `[A-Za-z0-9_-]`, 1 to 32): `NAME/#…`.
pub fn parse_cluster_hello(line: &[u8]) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?;
    let id = line.strip_prefix("hello ")?;
    let (_node, local) = split_id(id)?;
    crate::pressure::net::parse_hello(format!("hello {local}").as_bytes())?;
    Some(id.to_owned())
}

/// `NAME/#local` → (`NAME`, `#local`) when `NAME` is a valid node name.
pub fn split_id(id: &str) -> Option<(&str, &str)> {
    let (node, local) = id.split_once('/')?;
    let valid = (1..=32).contains(&node.len())
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (valid && local.starts_with('#')).then_some((node, local))
}

/// A greeted chat client of one node.
#[derive(Debug)]
pub struct Member {
    /// Its node-qualified id, from the greeting (`n1/#0:3.1`).
    pub id: String,
    /// Its socket, with whatever was read after the greeting.
    pub reader: LineReader,
}

impl Member {
    /// Reads the greeting of a connected socket before `deadline`.
    pub fn greet(stream: std::net::TcpStream, deadline: Instant) -> Result<Member, String> {
        let _ = stream.set_nodelay(true);
        let mut reader = LineReader::with_capacity(stream, 16 * 1024);
        let line = reader
            .next_line(deadline)
            .map_err(|end| format!("no greeting: {end:?}"))?;
        let id = parse_cluster_hello(line).ok_or_else(|| {
            format!(
                "not a cluster greeting (`hello NAME/#…`): {:?}",
                String::from_utf8_lossy(line)
            )
        })?;
        Ok(Member { id, reader })
    }

    /// The id without its node (`#0:3.1`).
    pub fn local_id(&self) -> &str {
        split_id(&self.id).map_or(self.id.as_str(), |(_, local)| local)
    }

    /// Sends one line (a `\n` is added).
    pub fn send(&self, line: &str) -> io::Result<()> {
        let mut stream = self.reader.stream();
        stream.write_all(format!("{line}\n").as_bytes())
    }

    /// The next line before `deadline`, as text.
    pub fn next_line(&mut self, deadline: Instant) -> Result<String, End> {
        self.reader
            .next_line(deadline)
            .map(|l| String::from_utf8_lossy(l).into_owned())
    }

    /// Reads until EOF (or reset, or `deadline`): the lines read before it
    /// and how the stream ended.
    pub fn read_to_end(&mut self, deadline: Instant) -> (Vec<String>, End) {
        let mut lines = Vec::new();
        loop {
            match self.next_line(deadline) {
                Ok(line) => lines.push(line),
                Err(end) => return (lines, end),
            }
        }
    }

    /// Hands the client to a [`Collector`] thread.
    pub fn collect(self) -> Collector {
        Collector::start(self)
    }
}

/// What a [`Collector`] saw: every line with when it came, and how the
/// stream ended if it did.
#[derive(Debug, Default)]
pub struct Seen {
    /// Lines in arrival order.
    pub lines: Vec<(Instant, String)>,
    /// EOF, reset, an error (never a timeout: those are polls).
    pub end: Option<End>,
}

/// A client whose lines a thread records as they arrive, so a scenario can
/// watch several clients at once without blocking on any.
pub struct Collector {
    /// The client's id.
    pub id: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    writer: std::net::TcpStream,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    fn start(member: Member) -> Collector {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = member.reader.stream().try_clone().expect("clone socket");
        let id = member.id.clone();
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            let mut member = member;
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let poll = Instant::now() + Duration::from_millis(100);
                    match member.next_line(poll) {
                        Ok(line) => lock(&seen).lines.push((Instant::now(), line)),
                        Err(End::Timeout) => {}
                        Err(end) => {
                            lock(&seen).end = Some(end);
                            return;
                        }
                    }
                }
            })
        };
        Collector {
            id,
            seen,
            stop,
            writer,
            thread: Some(thread),
        }
    }

    /// Sends one line (a `\n` is added).
    pub fn send(&self, line: &str) -> io::Result<()> {
        (&self.writer).write_all(format!("{line}\n").as_bytes())
    }

    /// A second handle on the socket, for a sender thread.
    pub fn writer(&self) -> std::net::TcpStream {
        self.writer.try_clone().expect("clone socket")
    }

    /// Runs `f` over what was seen so far.
    pub fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&lock(&self.seen))
    }

    /// The texts of the lines from `sender` (`<sender>: <text>`), in order.
    pub fn texts_from(&self, sender: &str) -> Vec<String> {
        let prefix = format!("{sender}: ");
        self.with(|seen| {
            seen.lines
                .iter()
                .filter_map(|(_, l)| l.strip_prefix(&prefix).map(str::to_owned))
                .collect()
        })
    }

    /// Waits until `done` holds over what was seen, or `within` passes.
    pub fn wait(&self, within: Duration, done: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.with(&done) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

/// Connects `count` clients to `node` and hands each to a [`Collector`].
pub fn collectors(rig: &ClusterRig, node: &str, count: usize) -> Vec<Collector> {
    let deadline = Instant::now() + SOON;
    (0..count)
        .map(|k| {
            rig.node(node)
                .connect(deadline)
                .unwrap_or_else(|e| panic!("{node}: client {k}: {e}"))
                .collect()
        })
        .collect()
}

/// The ids of `collectors`.
pub fn ids(collectors: &[&Collector]) -> Vec<String> {
    collectors.iter().map(|c| c.id.clone()).collect()
}

/// Calls `check` every `poll` until it returns `Ok` or `within` passes:
/// its value and how long it took, or its last error.
pub fn wait_for<T>(
    within: Duration,
    poll: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<(T, Duration), String> {
    let started = Instant::now();
    loop {
        match check() {
            Ok(value) => return Ok((value, started.elapsed())),
            Err(e) if started.elapsed() >= within => {
                return Err(format!("after {:?}: {e}", started.elapsed()));
            }
            Err(_) => std::thread::sleep(poll),
        }
    }
}

/// Instantiates every cluster scenario as a `#[test]` for one runtime spec
/// (`"tokio:2"`), at issue 18's sizes.
#[macro_export]
macro_rules! cluster_suite {
    ($runtime:literal) => {
        #[test]
        fn presence_relay_and_kicks_across_three_nodes() {
            $crate::cluster::conformance::presence_relay_and_kicks($runtime);
        }
        #[test]
        fn redis_databases_are_separate_clusters() {
            $crate::cluster::conformance::databases_are_separate($runtime);
        }
        #[test]
        fn starts_that_must_fail() {
            $crate::cluster::starts::starts_that_must_fail($runtime);
        }
        #[test]
        fn node_sigkill_leaves_within_ttl() {
            $crate::cluster::faults::node_sigkill($runtime);
        }
        #[test]
        fn custom_heartbeat_ttl_and_timeout() {
            $crate::cluster::faults::custom_timings($runtime);
        }
        #[test]
        fn node_sigterm_leaves_at_once() {
            $crate::cluster::faults::node_sigterm($runtime);
        }
        #[test]
        fn redis_killed_and_restarted_mid_burst() {
            $crate::cluster::broker::redis_restart_mid_burst($runtime);
        }
        #[test]
        fn redis_killed_with_a_small_outbox() {
            $crate::cluster::broker::redis_restart_small_outbox($runtime);
        }
        #[test]
        fn redis_killed_mid_pipeline_down_past_the_ttl() {
            $crate::cluster::outage::redis_killed_mid_pipeline($runtime);
        }
        #[test]
        fn redis_killed_mid_pipeline_down_short_of_the_ttl() {
            $crate::cluster::outage::redis_killed_mid_pipeline_short($runtime);
        }
        #[test]
        fn kick_across_a_paused_redis_happens_once() {
            $crate::cluster::broker::redis_paused_mid_kick($runtime);
        }
        #[test]
        fn redis_paused_with_sigstop() {
            $crate::cluster::broker::redis_paused($runtime);
        }
        #[test]
        fn slow_remote_reader() {
            $crate::cluster::flow::slow_remote_reader($runtime);
        }
        #[test]
        fn slow_steady_remote_reader() {
            $crate::cluster::flow::slow_steady_remote_reader($runtime);
        }
        #[test]
        fn cross_node_kicks_at_scale() {
            $crate::cluster::scale::cross_node_kicks($runtime, &$crate::cluster::scale::DEFAULT);
        }
    };
}
