//! Building [`Options`](crate::Options): one `with_*` method per setting.
