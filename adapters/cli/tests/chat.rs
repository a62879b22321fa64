//! The chat server and its admin console end to end, in-process, on every
//! runtime: what `nc` users see.

mod common;

use std::time::{Duration, Instant};

use common::{Client, stat};
use tether_chat::cli::{Runtime, Secret, ServeOptions};
use tether_chat::server::ChatServer;

fn options(runtime: Runtime) -> ServeOptions {
    let mut options = ServeOptions::ephemeral();
    options.runtime = runtime;
    options
}

fn start(options: &ServeOptions) -> ChatServer {
    tether::start(options).expect("the server starts")
}

fn stop(server: ChatServer) {
    server.shutdown(Duration::from_millis(200)).unwrap();
    assert!(
        server
            .handle
            .blocking()
            .wait_stopped(Duration::from_secs(5)),
        "server stopped"
    );
    common::wait_ended(server);
}

fn chat_and_kick(runtime: Runtime) {
    let server = start(&options(runtime));
    let (mut alice, alice_id) = Client::join(server.chat_addr);
    let (mut bob, bob_id) = Client::join(server.chat_addr);
    alice.send("hi bob\r\n");
    assert_eq!(bob.line(), format!("{alice_id}: hi bob\n"));
    assert_eq!(alice.line(), format!("{alice_id}: hi bob\n"));

    let mut admin = Client::connect(server.admin_addr);
    admin.send("list\n");
    let list = admin.block();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list.iter()
            .any(|l| l.starts_with(&format!("{alice_id} 127.0.0.1:")) && l.contains(" open "))
    );
    for bad in [
        "frobnicate\n",
        "kick\n",
        "kick nope\n",
        "kick #999.1\n",
        "stats please\n",
        "\n",
    ] {
        admin.send(bad);
        assert!(admin.line().starts_with("error "), "{bad:?}");
    }
    admin.send(&format!("kick {alice_id} graceful too chatty\n"));
    assert_eq!(admin.line(), "ok\n");
    assert_eq!(alice.line(), "* kicked: too chatty\n");
    assert_eq!(alice.line(), "", "EOF after the notice");
    admin.send(&format!("kick {alice_id}\n"));
    assert!(
        admin.line().starts_with("error "),
        "second kick of the same id"
    );
    drop(alice);
    let stats = admin.stats();
    assert_eq!(stat(&stats, "disconnected.kicked"), 1);
    assert_eq!(stat(&stats, "opened"), 2);
    // `kick #999.1` is one rejected call: its notice is not sent after the
    // id was found stale.
    assert_eq!(stat(&stats, "stale_calls"), 1);
    assert_eq!(stat(&stats, "chat.lines_relayed"), 1);
    assert_eq!(stat(&stats, "admin.sessions"), 1);
    // One key list, whatever the runtime: the layer's, then the chat's.
    let keys: Vec<&str> = stats.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys[0], "live");
    assert!(
        keys.contains(&"channel_budget") && keys.contains(&"adapter.accepted"),
        "{keys:?}"
    );
    assert_eq!(keys.last(), Some(&"metrics.timeouts"));
    admin.send(&format!("kick {bob_id} abort\n"));
    assert_eq!(admin.line(), "ok\n");
    assert!(bob.try_line().is_err(), "an abortive kick resets");
    assert!(
        common::console_shutdown(&mut admin, &server),
        "server stopped"
    );
    // The console closes its sessions once the server has stopped.
    assert_eq!(admin.line(), "");
    common::wait_ended(server);
}

fn hostile_lines_cannot_fake_an_id(runtime: Runtime) {
    let server = start(&options(runtime));
    let (mut mallory, mallory_id) = Client::join(server.chat_addr);
    let (mut alice, _) = Client::join(server.chat_addr);
    mallory.send_bytes(b"innocent\r#0.9: I am someone else\x1b[2J\x07\n");
    let line = alice.line();
    assert_eq!(
        line,
        format!("{mallory_id}: innocent\u{FFFD}#0.9: I am someone else\u{FFFD}[2J\u{FFFD}\n")
    );
    stop(server);
}

fn admin_console_limits(runtime: Runtime) {
    let mut options = options(runtime);
    options.admin_max = 2;
    options.admin_idle = Some(Duration::from_millis(400));
    let server = start(&options);
    let mut first = Client::connect(server.admin_addr);
    let mut second = Client::connect(server.admin_addr);
    first.send("list\n");
    assert_eq!(first.block(), Vec::<String>::new());
    second.send("list\n");
    assert_eq!(second.block(), Vec::<String>::new());
    // A third session is one too many.
    let mut third = Client::connect(server.admin_addr);
    assert_eq!(third.line(), "error too many admin connections\n");
    assert_eq!(third.line(), "");
    // A partial line does not keep a session alive.
    let started = Instant::now();
    first.send("lis");
    assert_eq!(first.line(), "error no command for 400ms; closing\n");
    assert_eq!(first.line(), "");
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    // Its place is free again (the session ends just after its last line).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut fourth = loop {
        let mut client = Client::connect(server.admin_addr);
        client.send("stats\n");
        let first_line = client.line();
        if first_line.starts_with("live=") {
            break client;
        }
        assert_eq!(first_line, "error too many admin connections\n");
        assert!(
            Instant::now() < deadline,
            "the idle session's slot never came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stats = fourth.block();
    assert!(
        stats.iter().any(|l| l.starts_with("admin.refused=")),
        "{stats:?}"
    );
    drop(second);
    stop(server);
}

fn admin_token(runtime: Runtime) {
    let mut options = options(runtime);
    options.admin_token = Some(Secret::new("s3cret word"));
    let server = start(&options);
    let mut admin = Client::connect(server.admin_addr);
    admin.send("list\n");
    assert_eq!(admin.line(), "error auth required\n");
    admin.send("shutdown\n");
    assert_eq!(admin.line(), "error auth required\n");
    admin.send("auth s3cret\n");
    assert_eq!(admin.line(), "error bad token\n");
    assert_eq!(admin.line(), "", "closed after a bad token");
    let mut admin = Client::connect(server.admin_addr);
    admin.send("auth s3cret word\n");
    assert_eq!(admin.line(), "ok\n");
    admin.send("list\n");
    assert_eq!(admin.block(), Vec::<String>::new());
    assert!(
        !server.handle.is_stopped(),
        "the unauthenticated shutdown was ignored"
    );
    stop(server);
}

/// A counter of `stats`, read straight from the console's executor (no
/// session of its own).
fn console_stat(server: &ChatServer, key: &str) -> u64 {
    let answer = server.console().execute(tether_chat::AdminCommand::Stats);
    answer
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {answer}"))
}

/// Waits (at most 5 s) until `key` reads `value`.
fn await_stat(server: &ChatServer, key: &str, value: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while console_stat(server, key) != value {
        assert!(Instant::now() < deadline, "{key} never reached {value}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `--admin-login 1s`: a session that sends nothing, or only part of a
/// line, or (with a token) commands but no `auth`, is told why and closed
/// between 1 s and 10 s after it connected, and counted.
fn admin_login_deadline(runtime: Runtime) {
    let mut options = options(runtime);
    options.admin_login = Some(Duration::from_secs(1));
    let server = start(&options);
    let started = Instant::now();
    let mut silent = Client::connect(server.admin_addr);
    let mut partial = Client::connect(server.admin_addr);
    partial.send("sta");
    let mut operator = Client::connect(server.admin_addr);
    operator.send("list\n");
    assert_eq!(operator.block(), Vec::<String>::new());
    for client in [&mut silent, &mut partial] {
        assert_eq!(
            client.line(),
            "error no command within 1s (--admin-login); closing\n"
        );
        assert_eq!(client.line(), "", "EOF after the notice");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(10),
        "closed after {took:?}"
    );
    assert_eq!(console_stat(&server, "admin.login_timeouts"), 2);
    // The established session is not bound by it.
    std::thread::sleep(Duration::from_millis(300));
    operator.send("list\n");
    assert_eq!(operator.block(), Vec::<String>::new());
    stop(server);

    options.admin_token = Some(Secret::new("t"));
    let server = start(&options);
    let started = Instant::now();
    let mut guest = Client::connect(server.admin_addr);
    guest.send("stats\n");
    assert_eq!(guest.line(), "error auth required\n");
    assert_eq!(
        guest.line(),
        "error no auth within 1s (--admin-login); closing\n"
    );
    assert_eq!(guest.line(), "");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(10));
    stop(server);
}

/// `--admin-max 2`, `--admin-login off`: a newcomer evicts the oldest
/// session that never ran a command; established sessions stay, and once
/// every slot is established a newcomer is refused.
fn silent_sessions_are_evicted(runtime: Runtime) {
    let mut options = options(runtime);
    options.admin_max = 2;
    options.admin_login = None;
    let server = start(&options);
    let mut first = Client::connect(server.admin_addr);
    let _second = Client::connect(server.admin_addr);
    await_stat(&server, "admin.sessions", 2);
    let mut operator = Client::connect(server.admin_addr);
    operator.send("list\n");
    assert_eq!(operator.block(), Vec::<String>::new());
    assert_eq!(
        first.line(),
        "error evicted: the admin console is full and this session sent no command\n"
    );
    assert_eq!(first.line(), "", "then EOF");
    assert_eq!(console_stat(&server, "admin.evicted"), 1);
    // The second silent one goes next, never the operator.
    let mut colleague = Client::connect(server.admin_addr);
    colleague.send("list\n");
    assert_eq!(colleague.block(), Vec::<String>::new());
    assert_eq!(console_stat(&server, "admin.evicted"), 2);
    // Both slots established: a newcomer is refused, and counted.
    let mut late = Client::connect(server.admin_addr);
    assert_eq!(late.line(), "error too many admin connections\n");
    assert_eq!(late.line(), "");
    let stats = operator.stats();
    assert_eq!(stat(&stats, "admin.refused"), 1);
    assert_eq!(stat(&stats, "admin.evicted"), 2);
    assert_eq!(stat(&stats, "admin.sessions"), 2);
    stop(server);
}

fn a_full_server_says_so(runtime: Runtime) {
    let mut options = options(runtime);
    options.config = options.config.with_max_channels(2);
    let server = start(&options);
    let (_a, _) = Client::join(server.chat_addr);
    let (_b, _) = Client::join(server.chat_addr);
    let mut refused = Client::connect(server.chat_addr);
    assert_eq!(refused.line(), "error server full\n");
    assert_eq!(refused.try_line().unwrap_or_default(), "", "then closed");
    stop(server);
}

/// Console calls that meet the server's stop answer `error …` instead of
/// waiting forever for a driver that is gone. The stop comes once every
/// caller has had an answer (observed, not slept on), so all four are
/// calling when it lands.
fn calls_racing_the_stop_return(runtime: Runtime) {
    use tether_chat::AdminCommand;
    let server = start(&options(runtime));
    let (done, finished) = std::sync::mpsc::channel();
    let (calling, answered) = std::sync::mpsc::channel();
    for _ in 0..4 {
        let console = server.console().clone();
        let done = done.clone();
        let calling = calling.clone();
        std::thread::spawn(move || {
            let mut calls = 0u64;
            loop {
                calls += 1;
                let answer = console.execute(AdminCommand::Stats);
                if calls == 1 {
                    let _ = calling.send(answer.starts_with("live="));
                }
                if answer.starts_with("error ") {
                    break;
                }
            }
            let _ = done.send(calls);
        });
    }
    for _ in 0..4 {
        let served = answered
            .recv_timeout(Duration::from_secs(5))
            .expect("step first console call: no answer within 5s");
        assert!(served, "a console call before the stop was refused");
    }
    server.shutdown(Duration::ZERO).unwrap();
    for _ in 0..4 {
        finished
            .recv_timeout(Duration::from_secs(5))
            .expect("a console call hung across the stop");
    }
    common::wait_ended(server);
}

macro_rules! on_every_runtime {
    ($($scenario:ident),* $(,)?) => {
        mod async_std {
            use super::*;
            $( #[test] fn $scenario() { super::$scenario(Runtime::AsyncStd) } )*
        }
        mod smol {
            use super::*;
            $( #[test] fn $scenario() { super::$scenario(Runtime::Smol) } )*
        }
        mod threads {
            use super::*;
            $( #[test] fn $scenario() { super::$scenario(Runtime::Threads) } )*
        }
        mod tokio {
            use super::*;
            $( #[test] fn $scenario() { super::$scenario(Runtime::Tokio) } )*
        }
    };
}

on_every_runtime!(
    chat_and_kick,
    hostile_lines_cannot_fake_an_id,
    admin_console_limits,
    admin_token,
    admin_login_deadline,
    silent_sessions_are_evicted,
    a_full_server_says_so,
    calls_racing_the_stop_return,
);
