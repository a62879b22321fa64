//! wip
#![forbid(unsafe_code)]

mod link;
#[cfg(feature = "testing")]
pub mod testing;
mod url;

pub use url::{RedisUrl, UrlError};
