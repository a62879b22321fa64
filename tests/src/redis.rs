//! A real `redis-server` for the cluster tests (issue 18): the harness of
//! `tether_redis::testing`, shared with that crate's and the binary's tests
//! (a free loopback port, no persistence, its own directory; killed,
//! restarted, paused and resumed as the broker faults need).

pub use tether_redis::testing::{RedisServer, command, require_redis_server};
