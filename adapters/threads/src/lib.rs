//! tether-threads (under construction).
