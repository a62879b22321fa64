//! The test kit (feature `testing`).
