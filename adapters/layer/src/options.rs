//! Building [`Options`]: `Options::default()` then one `with_*` method per
//! setting, as [`tether_core::Config`] does. `Options` is
//! `#[non_exhaustive]`, so a new setting is not a breaking change.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tether_core::ChannelId;

use crate::{Accept, AppFactory, Greeting, ObserverFactory, Options};

impl Options {
    /// Sets [`Options::backlog`].
    #[must_use]
    pub fn with_backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Sets [`Options::event_backlog`].
    #[must_use]
    pub fn with_event_backlog(mut self, bytes: usize) -> Self {
        self.event_backlog = bytes;
        self
    }

    /// Sets [`Options::command_queue`].
    #[must_use]
    pub fn with_command_queue(mut self, commands: usize) -> Self {
        self.command_queue = commands;
        self
    }

    /// Sets [`Options::reader_queue`].
    #[must_use]
    pub fn with_reader_queue(mut self, chunks: usize) -> Self {
        self.reader_queue = chunks;
        self
    }

    /// Sets [`Options::control_queue`].
    #[must_use]
    pub fn with_control_queue(mut self, inputs: usize) -> Self {
        self.control_queue = inputs;
        self
    }

    /// Sets [`Options::batch`].
    #[must_use]
    pub fn with_batch(mut self, inputs: usize) -> Self {
        self.batch = inputs;
        self
    }

    /// Sets [`Options::read_buffer`].
    #[must_use]
    pub fn with_read_buffer(mut self, bytes: usize) -> Self {
        self.read_buffer = bytes;
        self
    }

    /// Sets [`Options::refuse_line`].
    #[must_use]
    pub fn with_refuse_line(mut self, line: impl Into<Bytes>) -> Self {
        self.refuse_line = Some(line.into());
        self
    }

    /// Sets [`Options::fd_reserve`].
    #[must_use]
    pub fn with_fd_reserve(mut self, fds: u64) -> Self {
        self.fd_reserve = fds;
        self
    }

    /// Sets [`Options::shards`].
    #[must_use]
    pub fn with_shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Sets [`Options::accept`].
    #[must_use]
    pub fn with_accept(mut self, accept: Accept) -> Self {
        self.accept = accept;
        self
    }

    /// Sets [`Options::send_wait`].
    #[must_use]
    pub fn with_send_wait(mut self, wait: Duration) -> Self {
        self.send_wait = wait;
        self
    }

    /// Sets [`Options::greeting`]: `greeting(id)` is queued on every new
    /// channel before anything else.
    #[must_use]
    pub fn with_greeting(
        mut self,
        greeting: impl Fn(ChannelId) -> Bytes + Send + Sync + 'static,
    ) -> Self {
        self.greeting = Some(Greeting(Arc::new(greeting)));
        self
    }

    /// Sets [`Options::app`].
    #[must_use]
    pub fn with_app(mut self, app: AppFactory) -> Self {
        self.app = Some(app);
        self
    }

    /// Sets [`Options::web`]: WebSocket clients on a second listener.
    #[must_use]
    pub fn with_web(mut self, web: Option<crate::Web>) -> Self {
        self.web = web;
        self
    }

    /// Sets [`Options::record`] (`None`: nothing observed), e.g. the
    /// flight recorder's `RecordOptions` in an `Arc`.
    #[must_use]
    pub fn with_record(mut self, record: Option<Arc<dyn ObserverFactory>>) -> Self {
        self.record = record;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builder_sets_its_field() {
        let options = Options::default()
            .with_backlog(7)
            .with_event_backlog(8)
            .with_command_queue(9)
            .with_reader_queue(10)
            .with_control_queue(11)
            .with_batch(12)
            .with_read_buffer(13)
            .with_refuse_line("no\n")
            .with_fd_reserve(14)
            .with_shards(3)
            .with_accept(Accept::ReusePort)
            .with_send_wait(Duration::from_millis(15))
            .with_greeting(|id| Bytes::from(format!("hi {id}\n")))
            .with_record(None);
        assert_eq!(
            (
                options.backlog,
                options.event_backlog,
                options.command_queue
            ),
            (7, 8, 9)
        );
        assert_eq!(
            (options.reader_queue, options.control_queue, options.batch),
            (10, 11, 12)
        );
        assert_eq!((options.read_buffer, options.fd_reserve), (13, 14));
        assert_eq!(options.refuse_line.as_deref(), Some(&b"no\n"[..]));
        assert_eq!((options.shards, options.accept), (3, Accept::ReusePort));
        assert_eq!(options.send_wait, Duration::from_millis(15));
        assert!(options.greeting.is_some() && options.record.is_none());
        assert!(options.app.is_none());
    }
}
