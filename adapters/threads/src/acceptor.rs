//! The acceptor thread, and the switch the driver uses to pause and stop it.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tether_adapter::listen::{AcceptErrors, refuse_std};
use tether_adapter::runtime::{AcceptRouter, AdapterCounters, Input, ListenContext};
use tether_adapter::{Counter, Options};

use crate::ThreadOptions;
use crate::conn::{self, Accepted, ThreadSocket};

/// Starts the acceptor thread, and a stopper thread that, once every
/// shard's driver has ended, wakes the acceptor (`shutdown` on a listening
/// socket wakes a blocked `accept` on Linux; a connection to ourselves is
/// the fallback), joins it, and only then releases `stopped`.
pub(crate) fn start(
    listener: TcpListener,
    context: ListenContext<ThreadSocket, Accepted>,
    options: ThreadOptions,
) -> io::Result<()> {
    let stopping = Arc::new(AtomicBool::new(false));
    let listener = Arc::new(listener);
    let ListenContext {
        router,
        counters,
        stopped,
        stop,
        options: adapter,
        transport,
    } = context;
    let thread = std::thread::Builder::new()
        .name("tether-accept".into())
        .stack_size(options.stack_size)
        .spawn({
            let stopping = stopping.clone();
            let listener = listener.clone();
            let options = options.clone();
            move || {
                let how = Accepting {
                    adapter: &adapter,
                    options: &options,
                    transport,
                };
                run(&listener, &stopping, router, &counters, how)
            }
        })?;
    std::thread::Builder::new()
        .name("tether-accept-stop".into())
        .stack_size(options.stack_size)
        .spawn(move || {
            let _closed = stop.recv_blocking();
            stopping.store(true, Ordering::Release);
            let _ = socket2::SockRef::from(&*listener).shutdown(Shutdown::Both);
            if !thread.is_finished()
                && let Ok(addr) = listener.local_addr()
            {
                let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(100));
            }
            let _ = thread.join();
            drop(listener);
            drop(stopped);
        })?;
    Ok(())
}

/// How one acceptor accepts: the adapter's and the threads' settings, and
/// what its connections speak.
struct Accepting<'a> {
    adapter: &'a Options,
    options: &'a ThreadOptions,
    transport: tether_adapter::Transport,
}

fn run(
    listener: &TcpListener,
    stopping: &AtomicBool,
    mut router: AcceptRouter<ThreadSocket, Accepted>,
    counters: &AdapterCounters,
    how: Accepting<'_>,
) {
    let Accepting {
        adapter,
        options,
        transport,
    } = how;
    let refusal = match transport {
        tether_adapter::Transport::WebSocket => tether_adapter::Web::refusal(),
        _ => adapter.refuse_line.clone().unwrap_or_default(),
    };
    let refuse_line = &refusal[..];
    let mut errors = AcceptErrors::new("listener");
    let mut last_spawn_log: Option<Instant> = None;
    while !stopping.load(Ordering::Acquire) {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                counters.bump(Counter::AcceptErrors);
                std::thread::sleep(errors.failed(&e));
                continue;
            }
        };
        errors.success();
        if stopping.load(Ordering::Acquire) {
            break;
        }
        counters.bump(Counter::Accepted);
        let Some(inputs) = router.pick() else {
            refuse_std(stream, refuse_line);
            counters.bump(Counter::RefusedFull);
            continue;
        };
        if options.nodelay {
            let _ = stream.set_nodelay(true);
        }
        match spawn_reader(stream, peer, options, adapter.read_buffer, transport) {
            Ok(input) => {
                if let Err(gone) = inputs.send_blocking(input) {
                    // That shard's driver has ended: end the reader we
                    // started (its socket closes with it).
                    if let Input::Accepted { socket, .. } = gone.0 {
                        let _ = socket.stream().shutdown(Shutdown::Both);
                    }
                }
            }
            Err((e, stream)) => {
                // No thread for it: a resource limit is an input, not a
                // crash. Refuse this one, keep serving the rest.
                if let Some(stream) = stream {
                    refuse_std(stream, refuse_line);
                }
                counters.bump(Counter::RefusedResources);
                let now = Instant::now();
                if last_spawn_log.is_none_or(|at| now - at >= Duration::from_secs(1)) {
                    tracing::warn!("cannot start a reader thread: {e}; refusing connections");
                    last_spawn_log = Some(now);
                }
            }
        }
    }
}

/// Starts the connection's reader here, off the driver's thread (a thread
/// start costs tens of microseconds the driver would otherwise not spend
/// deciding). The reader learns its id and its connection's inputs (with
/// their read-ahead credit) from `start` (see [`conn::run_reader`]).
fn spawn_reader(
    stream: TcpStream,
    peer: SocketAddr,
    options: &ThreadOptions,
    read_buffer: usize,
    transport: tether_adapter::Transport,
) -> Result<Input<ThreadSocket, Accepted>, (io::Error, Option<TcpStream>)> {
    let socket = ThreadSocket::new(stream);
    let (start, started) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("tether-read".into())
        .stack_size(options.stack_size)
        .spawn({
            let socket = socket.clone();
            move || conn::run_reader(socket, started, read_buffer)
        });
    match spawned {
        Ok(thread) => Ok(Input::Accepted {
            socket,
            peer,
            accepted: Accepted { start, thread },
            transport,
        }),
        // A failed spawn drops the closure and its clone: ours is the last.
        Err(e) => Err((
            e,
            Arc::try_unwrap(socket).ok().map(ThreadSocket::into_stream),
        )),
    }
}
