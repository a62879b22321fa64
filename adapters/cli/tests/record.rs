//! `tether serve --record`: the chat server (its room runs inside the
//! drivers) records every shard's hub inputs on every runtime, counts them
//! in `stats`, and `tether replay` runs each shard's file again and finds
//! every outcome and checksum as recorded; a recording that fails later
//! stops, counted, while the server keeps serving; a recording that cannot
//! be created stops the start with exit status 2, naming the flag and path.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Client, stat};
use tether_chat::cli::{Runtime, ServeOptions};
use tether_record::RecordOptions;

const BIN: &str = env!("CARGO_BIN_EXE_tether");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-record-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn replay(file: &Path) {
    let out = Command::new(BIN)
        .env("TETHER_WEB", "127.0.0.1:0")
        .arg("replay")
        .arg(file)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tether replay");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {stdout}{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("outcomes and checksums match"), "{stdout}");
}

fn recorded_chat(runtime: Runtime) {
    let dir = scratch(runtime.name());
    let path = dir.join("chat.rec");
    let mut options = ServeOptions::ephemeral();
    options.runtime = runtime;
    options.options.shards = 2;
    options.record = Some(RecordOptions::new(&path));
    let server = tether::start(&options).expect("the server starts");
    let (mut alice, alice_id) = Client::join(server.chat_addr);
    let (mut bob, _) = Client::join(server.chat_addr);
    alice.send("hi bob\n");
    assert_eq!(bob.line(), format!("{alice_id}: hi bob\n"));
    assert_eq!(alice.line(), format!("{alice_id}: hi bob\n"));
    let mut admin = Client::connect(server.admin_addr);
    admin.send(&format!("kick {alice_id} graceful bye\n"));
    assert_eq!(admin.line(), "ok\n");
    assert_eq!(alice.line(), "* kicked: bye\n");
    let stats = admin.stats();
    assert!(
        stat(&stats, "adapter.record_lines") >= 8,
        "{runtime}: {stats:?}"
    );
    assert!(stat(&stats, "adapter.record_bytes") > 0, "{stats:?}");
    assert_eq!(stat(&stats, "adapter.record_errors"), 0, "{stats:?}");
    assert_eq!(stat(&stats, "adapter.record_rotations"), 0, "{stats:?}");
    assert!(
        common::console_shutdown(&mut admin, &server),
        "{runtime}: server stopped"
    );
    drop((alice, bob, admin));
    common::wait_ended(server);
    for shard in 0..2 {
        let file = RecordOptions::new(&path).for_shard(shard, 2).path;
        replay(&file);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_recorded_chat_server_replays_on_every_runtime() {
    for runtime in [
        Runtime::AsyncStd,
        Runtime::Smol,
        Runtime::Threads,
        Runtime::Tokio,
    ] {
        recorded_chat(runtime);
    }
}

/// A recording that fails mid-run (its first rotation cannot delete the
/// oldest file: a directory is in the way) stops, is counted in
/// `adapter.record_errors`, and the server goes on serving; what was
/// recorded before still replays.
#[test]
fn a_recording_error_stops_the_recording_not_the_server() {
    let dir = scratch("error");
    let path = dir.join("chat.rec");
    let mut options = ServeOptions::ephemeral();
    options.options.shards = 1;
    let record = RecordOptions::new(&path)
        .with_max_bytes(256 << 10)
        .with_keep(3);
    options.record = Some(record.clone());
    let server = tether::start(&options).expect("the server starts");
    // Created after the start (which clears old rotated files): the first
    // rotation must delete `chat.rec.3` and cannot.
    std::fs::create_dir_all(record.rotated(3).join("in-the-way")).unwrap();
    let (mut alice, alice_id) = Client::join(server.chat_addr);
    let (mut bob, _) = Client::join(server.chat_addr);
    let mut admin = Client::connect(server.admin_addr);
    let mut lines = 0;
    while stat(&admin.stats(), "adapter.record_errors") == 0 {
        assert!(lines < 5_000, "the recording never rotated");
        for _ in 0..100 {
            alice.send("a line long enough to fill a 64 KiB segment soon ....\n");
            assert!(bob.line().starts_with(&alice_id));
            assert!(alice.line().starts_with(&alice_id));
        }
        lines += 100;
    }
    let stats = admin.stats();
    assert_eq!(stat(&stats, "adapter.record_errors"), 1, "{stats:?}");
    assert_eq!(stat(&stats, "adapter.record_rotations"), 0, "{stats:?}");
    let recorded = stat(&stats, "adapter.record_lines");
    // The server keeps serving; the recorder records nothing more.
    alice.send("still here\n");
    assert_eq!(bob.line(), format!("{alice_id}: still here\n"));
    let stats = admin.stats();
    assert_eq!(stat(&stats, "adapter.record_lines"), recorded, "{stats:?}");
    assert!(common::console_shutdown(&mut admin, &server));
    drop((alice, bob, admin));
    common::wait_ended(server);
    replay(&path);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_record_file_that_cannot_be_created_exits_2_naming_flag_and_path() {
    let dir = scratch("unwritable");
    // A regular file where the recording's directory should be.
    let blocker = dir.join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let path = blocker.join("chat.rec");
    let out = Command::new(BIN)
        .env("TETHER_WEB", "127.0.0.1:0")
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--shards", "1", "--record"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .output()
        .expect("run tether serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("tether: --record {}: cannot ", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("Not a directory"), "{stderr}");
    // A cap too small for the files kept is a bad flag value, also 2.
    let out = Command::new(BIN)
        .env("TETHER_WEB", "127.0.0.1:0")
        .args(["serve", "--record"])
        .arg(dir.join("ok.rec"))
        .args(["--record-max", "100k"])
        .output()
        .expect("run tether serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--record-max 102400: "), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
