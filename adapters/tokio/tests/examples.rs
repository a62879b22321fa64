//! The embedding examples run to completion on their own: each starts a
//! server, connects a client, exchanges a line, kicks the client and
//! returns (it asserts what the client read). `cargo run -p tether-tokio
//! --example embed` (or `mio_loop`) does the same by hand.

use std::sync::mpsc;
use std::time::Duration;

#[path = "../examples/embed.rs"]
mod embed;
#[path = "../examples/mio_loop.rs"]
mod mio_loop;

/// Runs `main` on its own thread; fails if it errs, panics or hangs.
fn completes(name: &str, main: fn() -> std::io::Result<()>) {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(main());
    });
    match finished.recv_timeout(Duration::from_secs(30)) {
        Ok(result) => result.unwrap_or_else(|e| panic!("{name}: {e}")),
        Err(_) => panic!("{name} did not finish (or panicked)"),
    }
}

#[test]
fn the_tokio_embedding_example_completes() {
    completes("embed", embed::main);
}

#[test]
fn the_mio_loop_example_completes() {
    completes("mio_loop", mio_loop::main);
}
