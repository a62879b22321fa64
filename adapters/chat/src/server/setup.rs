//! What the runtime's adapter is started with, and why it did not start.

use std::sync::Arc;

use tether_adapter::{Options, StartError};

use super::presence::Presence;
use super::{ChatCounters, ServeError, cluster, room};
use crate::cli::ServeOptions;

/// The adapter's options: the recorder, the cluster's greeting, and the
/// room, which runs inside each shard's driver (it sees every event in the
/// step that produced it, with no thread or queue in between).
pub(super) fn adapter_options(
    options: &ServeOptions,
    counters: &Arc<ChatCounters>,
    presence: Option<&Arc<Presence>>,
    node: &cluster::ClusterNode,
) -> Options {
    let mut adapter_options = options.options.clone();
    if let Some(record) = &options.record {
        adapter_options.record = Some(Arc::new(record.clone()));
    }
    if let Some(node) = &node {
        // Ids read NAME/<id> from the greeting on, however the options
        // were made.
        let name = node.name().clone();
        adapter_options = adapter_options
            .with_greeting(move |id| crate::protocol::hello_line_on(name.as_str(), id));
    }
    adapter_options.app = Some(room::factory(
        counters.clone(),
        presence.cloned(),
        options.config.login_timeout.is_some(),
        options.echo,
        node.clone(),
    ));
    adapter_options
}

/// Why the runtime's adapter did not start, naming `--record` when the
/// recording is at fault.
pub(super) fn adapter_error(source: StartError, options: &ServeOptions) -> ServeError {
    match (source, &options.record) {
        (StartError::Observer(source), Some(record)) => ServeError::Record {
            flag: "--record",
            path: record.path.clone(),
            source,
        },
        (source, _) => ServeError::Start {
            runtime: options.runtime,
            source,
        },
    }
}
