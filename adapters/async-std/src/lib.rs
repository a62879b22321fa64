//! tether-async-std (under construction).
