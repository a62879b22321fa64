//! Node names and node-qualified channel ids.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tether_core::ChannelId;

/// The longest node name, in bytes (issue 18: 1–32 characters).
pub const MAX_NODE_NAME: usize = 32;

/// A node's name: 1–32 characters of `[A-Za-z0-9_-]`, unique among the live
/// nodes of a cluster (the driver claims it in the broker at start).
///
/// Cheap to clone (shared), ordered by its text.
///
/// ```
/// use tether_cluster::NodeName;
/// let name: NodeName = "edge-1".parse().unwrap();
/// assert_eq!(name.as_str(), "edge-1");
/// assert!("".parse::<NodeName>().is_err());
/// assert!("a/b".parse::<NodeName>().is_err());
/// assert!("x".repeat(33).parse::<NodeName>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks and builds a name from bytes (the wire form).
    pub fn from_bytes(bytes: &[u8]) -> Result<NodeName, NodeNameError> {
        if bytes.is_empty() {
            return Err(NodeNameError::Empty);
        }
        if bytes.len() > MAX_NODE_NAME {
            return Err(NodeNameError::TooLong { len: bytes.len() });
        }
        if let Some(&bad) = bytes
            .iter()
            .find(|b| !(b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-'))
        {
            return Err(NodeNameError::BadByte { byte: bad });
        }
        // Every byte is ASCII, so this is valid UTF-8.
        let text = std::str::from_utf8(bytes).map_err(|_| NodeNameError::BadByte { byte: 0 })?;
        Ok(NodeName(Arc::from(text)))
    }
}

impl FromStr for NodeName {
    type Err = NodeNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeName::from_bytes(s.as_bytes())
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Why a text is not a [`NodeName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeNameError {
    /// The name is empty.
    #[error("node name is empty (expected 1-32 characters of [A-Za-z0-9_-])")]
    Empty,
    /// The name is longer than [`MAX_NODE_NAME`] bytes.
    #[error("node name is {len} bytes long (at most 32 characters of [A-Za-z0-9_-])")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name holds a byte outside `[A-Za-z0-9_-]`.
    #[error("node name holds byte {byte:#04x} (only [A-Za-z0-9_-] allowed)")]
    BadByte {
        /// The first offending byte.
        byte: u8,
    },
}

/// A channel anywhere in the cluster: its node and its id there.
///
/// Displayed and parsed as `NAME/<local id>`, e.g. `n1/#0:3.1` or `n1/#3.1`.
///
/// ```
/// use tether_cluster::NodeId;
/// let id: NodeId = "n1/#2:3.1".parse().unwrap();
/// assert_eq!(id.node.as_str(), "n1");
/// assert_eq!(id.to_string(), "n1/#2:3.1");
/// assert!("n1#2:3.1".parse::<NodeId>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// The node that holds the channel.
    pub node: NodeName,
    /// The channel's id on that node.
    pub id: ChannelId,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.id)
    }
}

/// Why a text is not a [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NodeIdError {
    /// No `/` between the node and the id.
    #[error("expected NAME/<id>, e.g. n1/#0:3.1")]
    NoSlash,
    /// The part before `/` is not a node name.
    #[error(transparent)]
    Name(#[from] NodeNameError),
    /// The part after `/` is not a channel id.
    #[error(transparent)]
    Id(#[from] tether_core::ParseIdError),
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (node, id) = s.trim().split_once('/').ok_or(NodeIdError::NoSlash)?;
        Ok(NodeId {
            node: node.parse()?,
            id: id.parse()?,
        })
    }
}
