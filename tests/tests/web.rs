//! WebSocket clients of real `tether serve` processes, every runtime with
//! one and two shards (`tether_conformance::pressure::web`).

mod async_std {
    tether_conformance::web_suite!("async-std:1");
}

mod async_std_2_shards {
    tether_conformance::web_suite!("async-std:2");
}

mod smol {
    tether_conformance::web_suite!("smol:1");
}

mod smol_2_shards {
    tether_conformance::web_suite!("smol:2");
}

mod threads {
    tether_conformance::web_suite!("threads:1");
}

mod threads_2_shards {
    tether_conformance::web_suite!("threads:2");
}

mod tokio {
    tether_conformance::web_suite!("tokio:1");
}

mod tokio_2_shards {
    tether_conformance::web_suite!("tokio:2");
}
