//! `--cluster`: the chat server as one node of several (issue 18).
//!
//! The node ([`tether_redis::Node`]) is started before the adapter, so a
//! Redis that cannot be reached or a name that is live elsewhere stops the
//! start before any client connects. The room of each shard hands it
//! every local open, close and line without blocking (a full hand-off is
//! counted and logged); the node's delivery thread relays remote lines to
//! the local clients through this module's [`ChatLocal`] with the
//! handle's posting broadcast, paced by the layer's flow control; its kick
//! thread executes remote kicks the way the console does a local one.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tether_adapter::{Error, Handle};
use tether_cluster::{KickResult, NodeId};

use self::answers::{NOT_CLUSTERED, UNAVAILABLE};
use tether_core::{ChannelId, KickMode, SendError};

use super::ChatCounters;
use crate::admin;
use crate::protocol::{MAX_BATCH, MAX_LINE, push_chat_line};

/// The local server as the cluster node sees it. The handle is set once
/// the adapter runs; before that there is no client to relay to or kick.
#[derive(Debug)]
pub(super) struct ChatLocal {
    pub handle: OnceLock<Handle>,
    pub counters: Arc<ChatCounters>,
}

impl tether_redis::Local for ChatLocal {
    fn deliver(&self, lines: &[(NodeId, Bytes)]) {
        let Some(handle) = self.handle.get() else {
            return;
        };
        // The lines of one read go out as few broadcasts as fit MAX_BATCH,
        // each line with the same hygiene as a local one.
        let mut batch = Vec::new();
        for (from, text) in lines {
            if text.len() > MAX_LINE {
                // A remote node never sends one (its room drops them); a
                // hostile payload might.
                self.counters.lines_dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            push_chat_line(&mut batch, from, text);
            if batch.len() >= MAX_BATCH && !post(handle, std::mem::take(&mut batch)) {
                return;
            }
        }
        if !batch.is_empty() {
            post(handle, batch);
        }
    }

    fn kick(&self, id: ChannelId, mode: KickMode, reason: &str) -> KickResult {
        let Some(handle) = self.handle.get() else {
            return KickResult::Stale;
        };
        match local_kick(handle, id, mode, reason) {
            Ok(()) => KickResult::Done,
            Err(e) => {
                tracing::debug!(%id, "remote kick refused here: {e}");
                KickResult::Stale
            }
        }
    }
}

/// Broadcasts one batch, waiting for room in the command queues (the
/// flow control); `false` once the server has stopped.
fn post(handle: &Handle, batch: Vec<u8>) -> bool {
    super::call(handle, handle.post_broadcast(Bytes::from(batch))).is_ok()
}

/// A kick of a channel of this node, as the console makes it: a graceful
/// kick's notice first (a stale id is answered from that send and not
/// tried again), then the kick.
pub(super) fn local_kick(
    handle: &Handle,
    id: ChannelId,
    mode: KickMode,
    reason: &str,
) -> Result<(), Error> {
    let notice = match mode {
        KickMode::Graceful => super::call(handle, handle.send(id, admin::kick_notice(reason))),
        _ => Ok(()), // an abort: no notice, the RST is the news
    };
    match notice {
        Err(e @ Error::Send(SendError::Id(_))) => Err(e),
        _ => super::call(handle, handle.kick(id, mode, admin::ADMIN_KICK_CODE)),
    }
}

impl super::Console {
    /// Every `cluster.*` counter, on a cluster node (the driver's alone
    /// when the node cannot answer in time); nothing otherwise.
    pub fn cluster_stats(&self) -> Vec<(&'static str, u64)> {
        match &self.cluster {
            None => Vec::new(),
            Some(node) => node
                .stats()
                .unwrap_or_else(|_| node.counters().snapshot().to_vec()),
        }
    }

    /// `list`: this server's channels; on a cluster node with qualified ids,
    /// then every other live node's.
    pub(super) fn list(&self) -> String {
        let handle = &self.handle;
        let channels = match super::call(handle, handle.channels()) {
            Ok(channels) => channels,
            Err(e) => return admin::format_error(&e),
        };
        let Some(node) = &self.cluster else {
            return admin::format_list(&channels);
        };
        match node.presence() {
            Ok(presence) => {
                let me = node.name();
                let remote = presence.into_iter().filter(|id| &id.node != me);
                admin::format_cluster_list(Some(me), &channels, remote)
            }
            Err(_) => UNAVAILABLE.to_owned(),
        }
    }

    /// `kick NAME/<id>`: local when NAME is this node, else through the
    /// cluster (answered once the owning node did it, or why not).
    pub(super) fn kick_remote(&self, target: NodeId, mode: KickMode, reason: String) -> String {
        let Some(node) = &self.cluster else {
            return NOT_CLUSTERED.to_owned();
        };
        if &target.node == node.name() {
            // The same words as from any other node (whose kick server
            // answers every refusal as stale): `error stale` for an id not
            // live here, whether already released or still closing. A
            // second abort races the first one's release, and the answer
            // must not depend on which side wins.
            return match local_kick(&self.handle, target.id, mode, &reason) {
                Ok(()) => admin::OK.to_owned(),
                Err(
                    Error::Send(SendError::Id(_))
                    | Error::Kick(
                        tether_core::KickError::Id(_)
                        | tether_core::KickError::AlreadyClosing { .. },
                    ),
                ) => answers::kick(Err(tether_cluster::KickError::Stale)),
                Err(e) => admin::format_error(&e),
            };
        }
        answers::kick(node.kick(target, mode, reason))
    }
}

/// The console's answers for the cluster, as text.
pub(super) mod answers {
    use std::fmt::Write as _;

    use tether_cluster::{KickError, NodeInfo};

    /// `nodes`: `NAME channels=N age_ms=M` per live node, then `.`.
    pub fn nodes(nodes: &[NodeInfo]) -> String {
        let mut out = String::new();
        for node in nodes {
            let _ = writeln!(
                out,
                "{} channels={} age_ms={}",
                node.name,
                node.channels,
                node.age.as_millis()
            );
        }
        out.push_str(".\n");
        out
    }

    /// A remote kick's answer: `ok`, `error stale`, `error unknown node
    /// NAME`, `error cluster unavailable`.
    pub fn kick(result: Result<(), KickError>) -> String {
        match result {
            Ok(()) => crate::admin::OK.to_owned(),
            Err(KickError::Stale) => "error stale\n".to_owned(),
            Err(KickError::UnknownNode(node)) => format!("error unknown node {node}\n"),
            Err(KickError::Unavailable) => UNAVAILABLE.to_owned(),
            Err(other) => crate::admin::format_error(&other),
        }
    }

    /// What a cross-node question gets when no answer came in time.
    pub const UNAVAILABLE: &str = "error cluster unavailable\n";

    /// What a cluster command gets on a server started without `--cluster`.
    pub const NOT_CLUSTERED: &str =
        "error not in a cluster (start the server with --cluster redis://HOST:PORT --node NAME)\n";
}

/// Starts the cluster node of `--cluster`, if any: connects to Redis and
/// claims the name, or says which flag is at fault. The [`ChatLocal`] it
/// relays through gets the server's handle once the adapter runs.
pub(super) fn start_node(
    options: &crate::cli::ServeOptions,
    counters: &Arc<ChatCounters>,
) -> Result<(Arc<ChatLocal>, ClusterNode), super::ServeError> {
    let local = Arc::new(ChatLocal {
        handle: OnceLock::new(),
        counters: counters.clone(),
    });
    let Some(cluster) = &options.cluster else {
        return Ok((local, None));
    };
    let (url, name) = (cluster.url.to_string(), cluster.name.to_string());
    match tether_redis::Node::start(cluster.clone(), local.clone()) {
        Ok(node) => Ok((local, Some(Arc::new(node)))),
        Err(source) => {
            let (flag, value) = match source {
                tether_redis::StartError::NameTaken { .. } => ("--node", name),
                _ => ("--cluster", url),
            };
            Err(super::ServeError::Cluster {
                flag,
                value,
                source,
            })
        }
    }
}

/// The node, if `--cluster` was given: shared by the rooms, the console and
/// the server.
pub(super) type ClusterNode = Option<Arc<tether_redis::Node>>;
