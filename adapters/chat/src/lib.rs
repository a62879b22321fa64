//! tether-chat (under construction).
