//! Segment files: one recording per shard, rotated by size, written
//! through one buffer (docs/recording.md, "Files").
//!
//! The file being written is always [`RecordOptions::path`]. When it
//! passes `max_bytes / (keep + 1)` it is renamed `PATH.1` (older ones shift
//! to `PATH.2`, … `PATH.<keep>`; the oldest is deleted) and a new segment
//! starts, with its own header and snapshot. So the files of one shard hold
//! at most `max_bytes` in all, plus one line per file (and never less than
//! one header and one line per segment).
//!
//! The writer does not take snapshots: its owner does, with the hub, when
//! [`SegmentWriter::needs_rotation`] says so, and hands it to
//! [`SegmentWriter::start_segment`]. An I/O error (disk full, permission)
//! stops the recording: the call that hit it returns it, every later call
//! does nothing, the buffer is freed, and [`RecordStats::errors`] counts it.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tether_core::{Snapshot, SnapshotError};

use crate::checksum::Checksum;
use crate::format::{EncodeError, Header, Line, VERSION, encode_header, encode_line};

/// The write buffer: lines are written out when it holds this much.
pub const BUFFER: usize = 64 * 1024;

/// The smallest segment [`RecordOptions`] allow: `max_bytes` must be at
/// least this times `keep + 1`.
pub const MIN_SEGMENT: u64 = 64 * 1024;

/// The most rotated files [`RecordOptions`] allow.
pub const MAX_KEEP: u32 = 1000;

/// Where and how much to record (one shard's files; see
/// [`RecordOptions::for_shard`]).
///
/// ```
/// use tether_record::RecordOptions;
/// let options = RecordOptions::new("/var/log/tether.rec")
///     .with_max_bytes(64 << 20)
///     .with_keep(2)
///     .with_bytes(true);
/// options.validate().unwrap();
/// assert_eq!(options.segment_limit(), (64 << 20) / 3);
/// assert_eq!(options.for_shard(1, 2).path.to_str(), Some("/var/log/tether.rec.shard1"));
/// assert_eq!(options.for_shard(0, 1).path.to_str(), Some("/var/log/tether.rec"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordOptions {
    /// The file being written (rotated ones are `PATH.1`, `PATH.2`, …).
    pub path: PathBuf,
    /// The most bytes all of this shard's files hold together (plus one
    /// line per file). Default 256 MiB.
    pub max_bytes: u64,
    /// How many rotated files to keep besides the current one. Default 3.
    pub keep: u32,
    /// Whether payloads go into the recording (as hex). Default off, for
    /// privacy: lengths are recorded, replay feeds zeros.
    pub bytes: bool,
}

/// Why [`RecordOptions`] are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// `max_bytes` is below `MIN_SEGMENT × (keep + 1)`.
    #[error("max_bytes {max_bytes} is too small for keep {keep}: at least {min} (64 KiB per file)")]
    TooSmall {
        /// The configured total.
        max_bytes: u64,
        /// The configured number of rotated files.
        keep: u32,
        /// The least that works.
        min: u64,
    },
    /// `keep` is over [`MAX_KEEP`].
    #[error("keep {0} is more than {MAX_KEEP} rotated files")]
    TooManyKept(u32),
    /// The path is empty.
    #[error("the recording path is empty")]
    EmptyPath,
}

impl RecordOptions {
    /// Records to `path` with the defaults: 256 MiB in all, 3 rotated
    /// files, no payload bytes.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RecordOptions {
            path: path.into(),
            max_bytes: 256 << 20,
            keep: 3,
            bytes: false,
        }
    }

    /// Sets [`max_bytes`](RecordOptions::max_bytes).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets [`keep`](RecordOptions::keep).
    #[must_use]
    pub fn with_keep(mut self, keep: u32) -> Self {
        self.keep = keep;
        self
    }

    /// Sets [`bytes`](RecordOptions::bytes).
    #[must_use]
    pub fn with_bytes(mut self, bytes: bool) -> Self {
        self.bytes = bytes;
        self
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.path.as_os_str().is_empty() {
            return Err(OptionsError::EmptyPath);
        }
        if self.keep > MAX_KEEP {
            return Err(OptionsError::TooManyKept(self.keep));
        }
        let min = MIN_SEGMENT * (u64::from(self.keep) + 1);
        if self.max_bytes < min {
            return Err(OptionsError::TooSmall {
                max_bytes: self.max_bytes,
                keep: self.keep,
                min,
            });
        }
        Ok(())
    }

    /// The size at which a segment is rotated: `max_bytes / (keep + 1)`.
    pub fn segment_limit(&self) -> u64 {
        self.max_bytes / (u64::from(self.keep) + 1)
    }

    /// The options for shard `shard` of `shards`: the same path with one
    /// shard, `PATH.shard<k>` with more.
    pub fn for_shard(&self, shard: usize, shards: usize) -> RecordOptions {
        let mut options = self.clone();
        if shards > 1 {
            options.path = suffixed(&self.path, &format!("shard{shard}"));
        }
        options
    }

    /// The `n`th rotated file: `PATH.<n>`.
    pub fn rotated(&self, n: u32) -> PathBuf {
        suffixed(&self.path, &n.to_string())
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Why recording stopped (or could not start).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The options are not usable.
    #[error("recording options: {0}")]
    Options(#[from] OptionsError),
    /// A file operation failed: the recording stopped there.
    #[error("recording stopped: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done: `create`, `write`, `rename`, `remove`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The hub could not be snapshot for a new segment.
    #[error("recording stopped: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The snapshot could not be encoded.
    #[error("recording stopped: {0}")]
    Encode(#[from] EncodeError),
}

/// What a recorder did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordStats {
    /// Input lines recorded.
    pub lines: u64,
    /// Bytes recorded (headers included), buffered ones too.
    pub bytes: u64,
    /// Segments started after the first.
    pub rotations: u64,
    /// Errors that stopped the recording (0 or 1).
    pub errors: u64,
}

/// Writes one shard's segment files.
#[derive(Debug)]
pub struct SegmentWriter {
    options: RecordOptions,
    shard: u8,
    limit: u64,
    file: Option<File>,
    buf: Vec<u8>,
    /// Bytes in the current segment, buffered ones included.
    segment_bytes: u64,
    /// Lines in the current segment.
    segment_lines: u64,
    /// The number of the next segment.
    next_segment: u64,
    stopped: bool,
    stats: RecordStats,
}

impl SegmentWriter {
    /// A writer for `options` (validated) and the hub of shard `shard`.
    /// Nothing is written until [`start_segment`](Self::start_segment).
    pub fn new(options: RecordOptions, shard: u8) -> Result<SegmentWriter, RecordError> {
        options.validate()?;
        Ok(SegmentWriter {
            limit: options.segment_limit(),
            options,
            shard,
            file: None,
            buf: Vec::with_capacity(BUFFER),
            segment_bytes: 0,
            segment_lines: 0,
            next_segment: 0,
            stopped: false,
            stats: RecordStats::default(),
        })
    }

    /// The options.
    pub fn options(&self) -> &RecordOptions {
        &self.options
    }

    /// Whether a new segment must start before the next line: none has
    /// started yet, or the current one reached the segment limit (and holds
    /// at least one line). Never once stopped.
    #[inline]
    pub fn needs_rotation(&self) -> bool {
        !self.stopped
            && (self.file.is_none() || (self.segment_bytes >= self.limit && self.segment_lines > 0))
    }

    /// Whether an error stopped the recording (or it was finished).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// What was recorded so far.
    pub fn stats(&self) -> RecordStats {
        self.stats
    }

    /// Starts a segment: the current one (if any) is flushed and rotated
    /// out, and a new file begins with a header holding `snapshot` (the
    /// hub's, taken drained, with the recording's epoch) and the running
    /// `checksum`. The first segment also removes rotated files a previous
    /// recording left at this path.
    pub fn start_segment(
        &mut self,
        snapshot: Snapshot,
        checksum: Checksum,
    ) -> Result<(), RecordError> {
        if self.stopped {
            return Ok(());
        }
        let result = self.try_start(snapshot, checksum);
        self.check(result)
    }

    fn try_start(&mut self, snapshot: Snapshot, checksum: Checksum) -> Result<(), RecordError> {
        let header = Header {
            version: VERSION,
            shard: self.shard,
            segment: self.next_segment,
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            bytes: self.options.bytes,
            checksum,
            snapshot,
        };
        // Encoded apart (a snapshot line can be large): a segment start is
        // rare, and a failed encoding leaves the current segment as it is.
        let mut text = Vec::new();
        encode_header(&header, &mut text)?;
        self.write_out()?;
        if self.file.is_some() {
            self.file = None;
            self.rotate_files()?;
            self.stats.rotations += 1;
        } else {
            for n in 1..=self.options.keep {
                remove(&self.options.rotated(n))?;
            }
        }
        let path = &self.options.path;
        let mut file = File::create(path).map_err(io_error("create", path))?;
        file.write_all(&text).map_err(io_error("write", path))?;
        self.file = Some(file);
        self.segment_bytes = text.len() as u64;
        self.segment_lines = 0;
        self.stats.bytes += text.len() as u64;
        self.next_segment += 1;
        Ok(())
    }

    /// Shifts `PATH.<n>` to `PATH.<n+1>` (deleting `PATH.<keep>`) and
    /// `PATH` to `PATH.1`; with `keep` 0, deletes `PATH`.
    fn rotate_files(&self) -> Result<(), RecordError> {
        let o = &self.options;
        if o.keep == 0 {
            return remove(&o.path);
        }
        remove(&o.rotated(o.keep))?;
        for n in (1..o.keep).rev() {
            rename(&o.rotated(n), &o.rotated(n + 1))?;
        }
        rename(&o.path, &o.rotated(1))
    }

    /// Appends one input line (see [`encode_line`]); written out once the
    /// buffer holds [`BUFFER`] bytes. Does nothing once stopped.
    #[inline]
    pub fn write_line(&mut self, line: &Line) -> Result<(), RecordError> {
        if self.stopped || self.file.is_none() {
            return Ok(());
        }
        let before = self.buf.len();
        encode_line(line, self.options.bytes, &mut self.buf);
        let n = (self.buf.len() - before) as u64;
        self.segment_bytes += n;
        self.segment_lines += 1;
        self.stats.bytes += n;
        self.stats.lines += 1;
        if self.buf.len() >= BUFFER {
            return self.flush();
        }
        Ok(())
    }

    /// Writes out what is buffered. Does nothing once stopped.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        if self.stopped {
            return Ok(());
        }
        let result = self.flush_inner();
        self.check(result)
    }

    /// Flushes and closes the file: the recording is complete. Later calls
    /// do nothing.
    pub fn finish(&mut self) -> Result<(), RecordError> {
        let result = self.flush();
        self.stop();
        result
    }

    /// Stops the recording for an error outside the writer (the hub could
    /// not be snapshot for a new segment): what is buffered is written
    /// out, and the error is counted.
    pub fn stop_on_error(&mut self) {
        let _ = self.flush();
        self.stats.errors += 1;
        self.stop();
    }

    fn flush_inner(&mut self) -> Result<(), RecordError> {
        self.write_out()?;
        if self.buf.capacity() > 4 * BUFFER {
            self.buf.shrink_to(BUFFER);
        }
        Ok(())
    }

    fn write_out(&mut self) -> Result<(), RecordError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Some(file) = &mut self.file {
            file.write_all(&self.buf)
                .map_err(io_error("write", &self.options.path))?;
        }
        self.buf.clear();
        Ok(())
    }

    /// Stops the recording on an error: counted, buffer freed, file closed.
    fn check(&mut self, result: Result<(), RecordError>) -> Result<(), RecordError> {
        if result.is_err() {
            self.stats.errors += 1;
            self.stop();
        }
        result
    }

    fn stop(&mut self) {
        self.stopped = true;
        self.file = None;
        self.buf = Vec::new();
    }
}

impl Drop for SegmentWriter {
    /// Writes out what is buffered (errors are lost here: call
    /// [`finish`](SegmentWriter::finish) to see them).
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RecordError + 'a {
    move |source| RecordError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Removes a file; one that is not there is fine.
fn remove(path: &Path) -> Result<(), RecordError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Renames a file; one that is not there is fine.
fn rename(from: &Path, to: &Path) -> Result<(), RecordError> {
    match fs::rename(from, to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("rename", from)(e)),
        _ => Ok(()),
    }
}
