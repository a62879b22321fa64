//! Testing kit.
