//! # tether-chat
//!
//! The `tether` chat server, written once for every runtime. The protocol
//! and the console grammar are sans-IO; [`server`] is the glue, on top of
//! the runtime-neutral [`tether_adapter::Handle`] and
//! [`tether_adapter::Events`] and plain std threads, that every runtime's
//! `tether serve --runtime …` runs.
//!
//! * [`protocol`]: the chat line protocol. A client gets `hello <id>\n` on
//!   connect; each line it sends is broadcast to every client as
//!   `<id>: <line>\n`, control characters replaced ([`chat_line`]).
//!   [`LineBuffer`] splits a byte stream into bounded lines and
//!   [`ChatRoom`] turns hub [`Event`](tether_core::Event)s into the sends
//!   and broadcasts the server must make ([`ChatOutput`]).
//! * [`admin`]: the admin console's grammar. [`AdminCommand::parse`] reads
//!   one line (`list`, `kick <id> [graceful|abort] [reason words]`, `stats`,
//!   `shutdown [deadline]`, `auth <token>`; on a cluster node also `nodes`
//!   and `kick NAME/<id> …`); the `format_*` functions write
//!   the answers. Every bad line gets one `error <why>` line and the
//!   console keeps serving.
//! * [`cli`]: the command line (clap): `tether [serve|demo] …`, every flag
//!   also from a `TETHER_*` environment variable ([`cli::parse_from`]).
//! * [`server`]: the room, the admin console, signals and logging;
//!   [`server::serve`] is what the binary runs, [`server::start`] what
//!   tests run.
//!
//! ## An adapter's chat loop
//!
//! ```
//! use tether_chat::{ChatOutput, ChatRoom};
//! use tether_core::{Bytes, ChannelId, Event};
//!
//! /// What the adapter does with the room's output: here, record it.
//! #[derive(Default)]
//! struct Recorder(Vec<String>);
//! impl ChatOutput for Recorder {
//!     fn send(&mut self, id: ChannelId, data: Bytes) {
//!         self.0.push(format!("to {id}: {}", String::from_utf8_lossy(&data)));
//!     }
//!     fn broadcast(&mut self, data: Bytes) {
//!         self.0.push(format!("all: {}", String::from_utf8_lossy(&data)));
//!     }
//!     fn authenticate(&mut self, _id: ChannelId) {}
//! }
//!
//! let mut room = ChatRoom::default();
//! let mut out = Recorder::default();
//! let id: ChannelId = "#0.1".parse().unwrap();
//! room.handle_event(&Event::Opened { id, peer: "127.0.0.1:5000".parse().unwrap() }, &mut out);
//! room.handle_event(&Event::Received { id, data: Bytes::from_static(b"hi\nthe") }, &mut out);
//! room.handle_event(&Event::Received { id, data: Bytes::from_static(b"re\n") }, &mut out);
//! assert_eq!(out.0, ["to #0.1: hello #0.1\n", "all: #0.1: hi\n", "all: #0.1: there\n"]);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod cli;
pub mod protocol;
pub mod server;

pub use admin::{AdminCommand, AdminError};
pub use cli::{Cli, CliError, Command, DemoOptions, Runtime, ServeOptions};
pub use protocol::{ChatOutput, ChatRoom, LineBuffer, LineError, chat_line, hello_line, log_line};
pub use server::{ChatServer, Console, ServeError};
