//! tether-conformance (under construction).
