//! tether-sim (under construction).
