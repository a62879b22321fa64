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
    server.wait();
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
    assert_eq!(keys.last(), Some(&"admin.refused"));
    admin.send(&format!("kick {bob_id} abort\n"));
    assert_eq!(admin.line(), "ok\n");
    assert!(bob.try_line().is_err(), "an abortive kick resets");
    assert!(
        common::console_shutdown(&mut admin, &server),
        "server stopped"
    );
    // The console closes its sessions once the server has stopped.
    assert_eq!(admin.line(), "");
    server.wait();
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
/// waiting forever for a driver that is gone.
fn calls_racing_the_stop_return(runtime: Runtime) {
    use tether_chat::AdminCommand;
    let server = start(&options(runtime));
    let (done, finished) = std::sync::mpsc::channel();
    for _ in 0..4 {
        let console = server.console().clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut calls = 0u64;
            loop {
                calls += 1;
                let answer = console.execute(AdminCommand::Stats);
                if answer.starts_with("error ") {
                    break;
                }
            }
            let _ = done.send(calls);
        });
    }
    std::thread::sleep(Duration::from_millis(50));
    server.shutdown(Duration::ZERO).unwrap();
    for _ in 0..4 {
        finished
            .recv_timeout(Duration::from_secs(5))
            .expect("a console call hung across the stop");
    }
    server.wait();
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
    a_full_server_says_so,
    calls_racing_the_stop_return,
);
