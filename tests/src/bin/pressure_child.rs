//! `tether-pressure-child <chat addr> <connections> <source ip>`: a client
//! process of the 20,000-connection pressure scenario
//! (`tether_conformance::pressure::child`). Reports on stdout what each
//! connection read first, then holds every socket until stdin closes.
#![forbid(unsafe_code)]

fn main() {
    tether_conformance::pressure::child::child_main(std::env::args().skip(1));
}
