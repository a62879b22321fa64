//! Starts that must fail: exit 2, with a message naming the cause, before
//! serving anyone (issue 18, "Starting a node").

use std::fs::File;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ClusterRig;
use crate::pressure::{serial, shards_of, tether_bin};

/// How long a failing start may take (an unreachable Redis included).
pub const EXIT_WITHIN: Duration = Duration::from_secs(15);

/// What a start that should fail did: its exit code (`None`: still running
/// after [`EXIT_WITHIN`], then killed) and its stdout + stderr.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code.
    pub code: Option<i32>,
    /// Everything it printed.
    pub output: String,
}

/// Runs `tether serve --runtime … --shards … --listen 127.0.0.1:0 --admin
/// 127.0.0.1:0 <args>` to its exit (killed after [`EXIT_WITHIN`]).
pub fn run_to_exit(runtime: &str, args: &[&str]) -> Outcome {
    run_to_exit_with(runtime, args, &[])
}

/// [`run_to_exit`] with environment variables `env` set (and no other
/// `TETHER_CLUSTER` / `TETHER_NODE`).
pub fn run_to_exit_with(runtime: &str, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let (name, _) = runtime.split_once(':').unwrap_or((runtime, ""));
    let shards = shards_of(runtime).to_string();
    let dir = std::env::temp_dir();
    let tag = format!("tether-start-{}-{:?}", std::process::id(), Instant::now());
    let (out_path, err_path) = (
        dir.join(format!("{tag}.out").replace(' ', "")),
        dir.join(format!("{tag}.err").replace(' ', "")),
    );
    let mut child = Command::new(tether_bin())
        .args(["serve", "--runtime", name, "--shards", &shards])
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--web", "127.0.0.1:0"])
        .args(args)
        .env_remove("TETHER_CLUSTER")
        .env_remove("TETHER_NODE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn tether");
    let deadline = Instant::now() + EXIT_WITHIN;
    let code = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let output = [&out_path, &err_path]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("");
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    Outcome { code, output }
}

/// Checks that `args` exit 2 (or `code`) with every word of `names` in
/// the output.
fn expect_failure(
    runtime: &str,
    what: &str,
    args: &[&str],
    names: &[&str],
    failures: &mut Vec<String>,
) {
    expect_failure_with(runtime, what, (args, &[]), names, failures);
}

/// [`expect_failure`] with environment variables.
fn expect_failure_with(
    runtime: &str,
    what: &str,
    (args, env): (&[&str], &[(&str, &str)]),
    names: &[&str],
    failures: &mut Vec<String>,
) {
    let started = Instant::now();
    let outcome = run_to_exit_with(runtime, args, env);
    let missing: Vec<&&str> = names
        .iter()
        .filter(|n| !outcome.output.contains(**n))
        .collect();
    if outcome.code != Some(2) || !missing.is_empty() {
        failures.push(format!(
            "{what} ({args:?} {env:?}): exit {:?} after {:?} (want 2), message lacks {missing:?}: {:?}",
            outcome.code,
            started.elapsed(),
            outcome.output.trim()
        ));
    }
}

/// **Starts that must fail** (exit 2, the cause named, within 15 s):
/// * node names that are not 1–32 of `[A-Za-z0-9_-]` (`n.1`, 33
///   characters, empty): the message names the name;
/// * a name live on another node (`alpha-7` running): names `alpha-7`,
///   with flags and with `TETHER_CLUSTER` / `TETHER_NODE`;
/// * Redis unreachable (a closed loopback port): names `--cluster` and the
///   address; a URL that is not `redis://` names `--cluster`;
/// * `--node` without `--cluster`, and `--cluster` without `--node`: a
///   usage error naming the missing flag;
/// * a heartbeat not shorter than the ttl, a zero timeout: naming the flag.
///
/// Then the running node still serves: `nodes` on it names only itself.
pub fn starts_that_must_fail(runtime: &'static str) {
    let _serial = serial();
    let mut rig = ClusterRig::start(runtime, "cluster-starts", 0, &[]);
    let url = rig.redis.url();
    let mut failures = Vec::new();
    let long = "a".repeat(33);
    for bad in ["n.1", long.as_str(), "n 1"] {
        expect_failure(
            runtime,
            "a bad node name",
            &["--cluster", &url, "--node", bad],
            &[bad],
            &mut failures,
        );
    }
    let live = rig.start_node("alpha-7", &[]);
    rig.nodes.push(live);
    expect_failure(
        runtime,
        "a node name live elsewhere",
        &["--cluster", &url, "--node", "alpha-7"],
        &["alpha-7"],
        &mut failures,
    );
    // Timings that cannot work: a heartbeat not shorter than the ttl, a
    // zero timeout.
    expect_failure(
        runtime,
        "--cluster-heartbeat not shorter than --cluster-ttl",
        &[
            "--cluster",
            &url,
            "--node",
            "n1",
            "--cluster-ttl",
            "500ms",
            "--cluster-heartbeat",
            "1s",
        ],
        &["--cluster-ttl"],
        &mut failures,
    );
    expect_failure(
        runtime,
        "a zero --cluster-timeout",
        &["--cluster", &url, "--node", "n1", "--cluster-timeout", "0s"],
        &["--cluster-timeout"],
        &mut failures,
    );
    // The same through the environment: TETHER_CLUSTER and TETHER_NODE.
    expect_failure_with(
        runtime,
        "TETHER_NODE live elsewhere, through the environment",
        (&[], &[("TETHER_CLUSTER", &url), ("TETHER_NODE", "alpha-7")]),
        &["alpha-7"],
        &mut failures,
    );
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let address = format!("127.0.0.1:{closed}");
    expect_failure(
        runtime,
        "Redis unreachable",
        &["--cluster", &format!("redis://{address}"), "--node", "n1"],
        &["--cluster", &address],
        &mut failures,
    );
    expect_failure(
        runtime,
        "a URL that is not redis://",
        &["--cluster", &format!("http://{address}"), "--node", "n1"],
        &["--cluster"],
        &mut failures,
    );
    expect_failure(
        runtime,
        "--node without --cluster",
        &["--node", "n1"],
        &["--cluster"],
        &mut failures,
    );
    expect_failure(
        runtime,
        "--cluster without --node",
        &["--cluster", &url],
        &["--node"],
        &mut failures,
    );
    match rig.node("alpha-7").nodes() {
        Ok(names) if names == ["alpha-7"] => {}
        other => failures.push(format!(
            "after the failed starts, alpha-7's `nodes`: {other:?}, want only alpha-7"
        )),
    }
    rig.fail_if_any("starts that must fail", &failures);
}
