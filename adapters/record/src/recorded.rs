//! The flight recorder as an observer of a shard's hub: [`Recorder`]
//! implements tether-adapter's [`HubObserver`], and [`RecordOptions`] its
//! [`ObserverFactory`], so a server records with
//! `Options { record: Some(Arc::new(RecordOptions::new(path))), .. }`.
//! [`recording`] records one hub outside a server.

use std::time::Instant;

use tether_adapter::{
    HubObserver, ObserverError, ObserverFactory, ObserverStats, Step, runtime::ObservedHub,
};
use tether_core::{Hub, Input, Outcome};

use crate::checksum::Checksum;
use crate::format::Line;
use crate::writer::{RecordError, RecordOptions, SegmentWriter};

#[cfg(test)]
mod tests;

/// A hub with an optional flight recorder: tether-adapter's
/// [`ObservedHub`], whose observer is a [`Recorder`] (see [`recording`]).
pub type RecordedHub = ObservedHub;

/// A hub that records to `options.path` (one shard's file: see
/// [`RecordOptions::for_shard`]), with times as nanoseconds since `epoch`
/// — no later than any `now` it will be fed (earlier times are recorded as
/// the epoch).
///
/// The first segment starts now, with a snapshot of `hub`: outputs it
/// still holds are moved to the wrapper's queues first (they are served by
/// `poll_*` as usual, and are not part of the recording). Fails if the
/// options are invalid or the file cannot be created and written.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tether_core::{Bytes, Config, Hub};
/// use tether_record::{RecordOptions, Recording, recording};
///
/// let dir = std::env::temp_dir().join(format!("tether-record-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("shard.rec");
///
/// let epoch = Instant::now(); // one epoch for every shard of the server
/// let hub = Hub::new(Config::default()).unwrap();
/// let mut hub = recording(hub, epoch, RecordOptions::new(&path)).unwrap();
/// let id = hub.accept(epoch, "127.0.0.1:4000".parse().unwrap()).unwrap();
/// hub.attach(epoch, id).unwrap();
/// hub.send(epoch + Duration::from_millis(1), id, Bytes::from_static(b"hi\n")).unwrap();
/// while hub.poll_action().is_some() {} // served from the wrapper's queues
/// while hub.poll_event().is_some() {}
/// assert_eq!(hub.live(), 1); // queries go to the hub
/// hub.finish().unwrap();
///
/// let (recording, error) = Recording::read(&path).unwrap();
/// assert!(error.is_none());
/// let lines = &recording.segments[0].lines;
/// assert_eq!(lines.len(), 3);
/// assert_eq!(lines[2].at_ns, 1_000_000);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn recording(
    hub: Hub,
    epoch: Instant,
    options: RecordOptions,
) -> Result<RecordedHub, RecordError> {
    let mut failed = None;
    let hub = ObservedHub::observed(hub, |hub| match Recorder::start(hub, epoch, options) {
        Ok(recorder) => Ok(Box::new(recorder)),
        Err(e) => {
            failed = Some(e);
            Err("the recording did not start".into())
        }
    });
    match (hub, failed) {
        (Ok(hub), _) => Ok(hub),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => unreachable!("only the recorder fails: {e}"),
    }
}

/// A recording that could not start: the [`RecordError`], shown without
/// the "recording stopped" of a running recorder (nothing was recording
/// yet). What [`RecordOptions`]' [`ObserverFactory::start`] fails with
/// (boxed, in tether-adapter's `StartError::Observer`).
#[derive(Debug, thiserror::Error)]
#[error("{}", start_message(.0))]
pub struct RecordStartError(pub RecordError);

fn start_message(e: &RecordError) -> String {
    match e {
        RecordError::Io { op, path, source } => {
            format!("cannot {op} {}: {source}", path.display())
        }
        other => other.to_string(),
    }
}

impl ObserverFactory for RecordOptions {
    /// A [`Recorder`] writing `self.for_shard(shard, shards)`.
    fn start(
        &self,
        shard: usize,
        shards: usize,
        epoch: Instant,
        hub: &Hub,
    ) -> Result<Box<dyn HubObserver>, ObserverError> {
        match Recorder::start(hub, epoch, self.for_shard(shard, shards)) {
            Ok(recorder) => Ok(Box::new(recorder)),
            Err(e) => Err(Box::new(RecordStartError(e))),
        }
    }
}

/// One shard's flight recorder: appends every input the hub is fed — its
/// time as nanoseconds since the epoch, its arguments, its outcome, the
/// running [`Checksum`] of the outputs — to the shard's segment file.
/// Before a line, if the segment is full, it snapshots the hub (drained at
/// that point by construction) and starts the next segment with it.
///
/// Writing is buffered (64 KiB): the driver flushes it when idle and
/// finishes it at the end (dropping also flushes). An I/O error stops the
/// recording and nothing else: the hub carries on, the error is kept for
/// [`HubObserver::take_error`] (once) and counted in its stats.
#[derive(Debug)]
pub struct Recorder {
    writer: SegmentWriter,
    epoch: Instant,
    checksum: Checksum,
    /// Recording: false once finished or stopped by an error.
    active: bool,
    error: Option<RecordError>,
}

impl Recorder {
    /// A recorder of `hub` (drained) to `options.path`, with times as
    /// nanoseconds since `epoch`: the first segment starts now, with a
    /// snapshot of `hub`. Fails if the options are invalid or the file
    /// cannot be created and written.
    pub fn start(hub: &Hub, epoch: Instant, options: RecordOptions) -> Result<Self, RecordError> {
        let mut writer = SegmentWriter::new(options, hub.config().shard)?;
        writer.start_segment(hub.snapshot(epoch)?, Checksum::ZERO)?;
        Ok(Recorder {
            writer,
            epoch,
            checksum: Checksum::ZERO,
            active: true,
            error: None,
        })
    }

    /// The running output checksum.
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }

    #[cold]
    fn rotate(&mut self, hub: &Hub) {
        let result = match hub.snapshot(self.epoch) {
            Ok(snapshot) => self.writer.start_segment(snapshot, self.checksum),
            Err(e) => {
                // The writer stops on its own errors; this one is the hub's.
                self.writer.stop_on_error();
                Err(e.into())
            }
        };
        self.fail(result);
    }

    fn fail(&mut self, result: Result<(), RecordError>) {
        if let Err(e) = result {
            self.active = false;
            if self.error.is_none() {
                self.error = Some(e);
            }
        }
    }

    /// Writes one input's line (the outputs are in the checksum already).
    fn write(&mut self, now: Instant, input: Input, outcome: Outcome) {
        let at_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let line = Line {
            at_ns,
            input,
            outcome,
            checksum: self.checksum,
        };
        let result = self.writer.write_line(&line);
        self.fail(result);
    }
}

impl HubObserver for Recorder {
    fn is_active(&self) -> bool {
        self.active
    }

    /// Starts a new segment if this one is full. The hub was drained after
    /// the previous input, so it can be snapshot.
    #[inline]
    fn before_input(&mut self, hub: &Hub) {
        if self.writer.needs_rotation() {
            self.rotate(hub);
        }
    }

    /// Checksums the input's outputs and writes its line.
    #[inline]
    fn after_input(&mut self, step: Step<'_>) {
        step.actions
            .for_each(|action| self.checksum.update_action(action));
        step.events
            .for_each(|event| self.checksum.update_event(event));
        if self.active {
            // (else stopped by `before_input`)
            self.write(step.now, step.input, step.outcome);
        }
    }

    fn flush(&mut self) -> Result<(), ObserverError> {
        if let Some(e) = self.error.take() {
            return Err(e.into());
        }
        let result = self.writer.flush();
        self.active &= !self.writer.is_stopped();
        result.map_err(Into::into)
    }

    fn finish(&mut self) -> Result<(), ObserverError> {
        self.active = false;
        let result = self.writer.finish();
        match self.error.take() {
            Some(e) => Err(e.into()),
            None => result.map_err(Into::into),
        }
    }

    fn take_error(&mut self) -> Option<ObserverError> {
        self.error.take().map(Into::into)
    }

    fn stats(&self) -> ObserverStats {
        let stats = self.writer.stats();
        ObserverStats {
            lines: stats.lines,
            bytes: stats.bytes,
            rotations: stats.rotations,
            errors: stats.errors,
        }
    }
}
