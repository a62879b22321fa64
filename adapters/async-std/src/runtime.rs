//! The only runtime-specific code of the adapter: how to spawn a task and
//! how to block on a future.
//!
//! Everything else is written against `async-io` (reactor, timers, `Async`
//! sockets), `async-channel` and `futures-lite`, which async-std and smol
//! both run on. Supporting another such runtime is one more impl here.

use std::future::Future;

/// An executor that can run the adapter's tasks.
pub trait Runtime: tether_adapter::runtime::Spawn + Sync {
    /// A short name for logs and test names.
    const NAME: &'static str;

    /// Whether each shard runs on an executor thread of its own: its driver,
    /// its readers and waiters (and, with `Accept::ReusePort`, its listener)
    /// on one thread, so a reader waking its driver is a same-thread
    /// wake-up, and shards run in parallel. `false`: everything is spawned
    /// on the runtime's own executor.
    const THREAD_PER_SHARD: bool = false;

    /// Runs `future` in the background, detached.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Runs `future` to completion on the current thread (for `main` and
    /// blocking callers such as tests).
    fn block_on<F: Future>(&self, future: F) -> F::Output;
}

/// async-std's global executor (the primary runtime; discontinued upstream).
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

impl Runtime for AsyncStd {
    const NAME: &'static str = "async-std";

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Dropping an async-std JoinHandle detaches the task.
        drop(async_std::task::spawn(future));
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        async_std::task::block_on(future)
    }
}

/// smol (where async-std users are moving): each shard on an executor
/// thread of its own (`tether-smol-<shard>`), the listener of
/// `Accept::RoundRobin` beside shard 0 (on its thread).
///
/// Why not everything on the global executor: it runs one thread unless
/// `SMOL_THREADS` says otherwise, so every shard would share that thread;
/// and with several threads its work stealing spreads a shard's readers
/// and driver over them, making each read a cross-thread wake-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

impl Runtime for Smol {
    const NAME: &'static str = "smol";
    const THREAD_PER_SHARD: bool = true;

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        smol::spawn(future).detach();
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        smol::block_on(future)
    }
}
