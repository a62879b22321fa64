//! Counters, for `stats` (`cluster.*` keys).

macro_rules! stats {
    ($($(#[doc = $doc:literal])* $field:ident => $key:literal,)*) => {
        /// The cluster's counters and gauges, from
        /// [`Cluster::stats`](crate::Cluster::stats).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct ClusterStats {
            $($(#[doc = $doc])* pub $field: u64,)*
        }

        impl ClusterStats {
            /// Every counter with its `stats` key, in a fixed order.
            pub fn snapshot(&self) -> [(&'static str, u64); stats!(@count $($field)*)] {
                [$(($key, self.$field),)*]
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + stats!(@count $($tail)*) };
}

stats! {
    /// Payloads handed to the driver to publish.
    published => "cluster.published",
    /// Payloads received from other nodes (decoded, own echoes excluded).
    received => "cluster.received",
    /// Failed broker operations reported by the driver.
    broker_errors => "cluster.broker_errors",
    /// Times the broker link came back after being down.
    reconnects => "cluster.reconnects",
    /// Live nodes, this one included (a gauge).
    live_nodes => "cluster.live_nodes",
    /// Remote lines delivered to this node's clients.
    lines_delivered => "cluster.lines_delivered",
    /// Local lines lost: the outbox was full (or shut down with lines in it).
    lines_lost => "cluster.lines_lost",
    /// Lines in the outbox now (a gauge).
    lines_buffered => "cluster.lines_buffered",
    /// Bytes the outbox holds now, overhead included (a gauge).
    outbox_bytes => "cluster.outbox_bytes",
    /// Lines that went through the outbox and were published after an outage.
    lines_replayed => "cluster.lines_replayed",
    /// Received messages dropped as already applied (or already counted
    /// lost: a straggler behind a gap that was skipped).
    duplicates => "cluster.duplicates",
    /// Messages from a sender's older incarnation or from a node that said goodbye, dropped.
    stale_messages => "cluster.stale_messages",
    /// Gaps in a sender's sequence that did not fill.
    gaps => "cluster.gaps",
    /// Messages those gaps lost.
    messages_lost => "cluster.messages_lost",
    /// Payloads that did not decode.
    decode_errors => "cluster.decode_errors",
    /// Messages from new nodes refused because too many nodes are known.
    nodes_refused => "cluster.nodes_refused",
    /// Presence snapshots published.
    snapshots_sent => "cluster.snapshots_sent",
    /// Presence snapshots asked of other nodes.
    snapshots_requested => "cluster.snapshots_requested",
    /// Cross-node kicks asked for here and published.
    kicks_sent => "cluster.kicks_sent",
    /// Re-publications of pending kicks.
    kicks_resent => "cluster.kicks_resent",
    /// Kicks asked for here that were answered by their owner.
    kicks_answered => "cluster.kicks_answered",
    /// Kicks asked for here that timed out (`Unavailable`).
    kicks_timed_out => "cluster.kicks_timed_out",
    /// Kicks asked for here and refused at once (unknown node, broker down, ...).
    kicks_refused => "cluster.kicks_refused",
    /// Remote kicks executed here (each request at most once).
    kicks_served => "cluster.kicks_served",
    /// Repeats of a remote kick request answered from memory.
    kicks_repeated => "cluster.kicks_repeated",
    /// Remote kick requests ignored because the memory of served requests was full.
    kicks_dropped => "cluster.kicks_dropped",
    /// Remote kick requests dropped unexecuted: they arrived too late for
    /// a reply to reach the asker before its timeout (e.g. a paused broker).
    kicks_expired => "cluster.kicks_expired",
}
