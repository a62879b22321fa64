//! The command line's tests.

use super::*;
use clap::error::ErrorKind;

fn serve(args: &[&str]) -> Result<ServeOptions, CliError> {
    let mut argv = vec!["tether"];
    argv.extend_from_slice(args);
    match parse_from(argv)? {
        Command::Serve(s) => Ok(*s),
        other => panic!("expected serve, got {other:?}"),
    }
}

fn clap_kind(result: Result<ServeOptions, CliError>) -> ErrorKind {
    match result {
        Err(CliError::Clap(e)) => e.kind(),
        other => panic!("expected a clap error, got {other:?}"),
    }
}

#[test]
fn defaults() {
    let s = serve(&[]).unwrap();
    // `Debug` stands in for equality: the greeting is a function.
    let same = |a: &ServeOptions, b: &ServeOptions| format!("{a:?}") == format!("{b:?}");
    assert!(same(&s, &serve(&["serve"]).unwrap()));
    assert_eq!(s.runtime, Runtime::Tokio);
    assert!(s.options.shards >= 1);
    assert!(s.options.greeting.is_some());
    assert_eq!(s.listen.as_str(), DEFAULT_LISTEN);
    assert_eq!(s.admin.as_str(), DEFAULT_ADMIN);
    assert_eq!(s.config, default_serve_config());
    assert_eq!(s.shutdown_grace, s.config.flush_timeout);
    assert_eq!(s.options.backlog, 1024);
    assert_eq!(s.options.refuse_line.as_deref(), Some(REFUSE_LINE));
    assert_eq!(s.admin_max, 16);
    assert_eq!(s.admin_idle, Some(Duration::from_secs(60)));
    assert_eq!(s.admin_login, Some(Duration::from_secs(2)));
    assert_eq!(s.admin_token, None);
    assert_eq!(s.metrics, None);
    assert!(same(&s, &ServeArgs::defaults().into_options().unwrap()));
    let two = serve(&["--shards", "2"]).unwrap();
    assert_eq!(two.options.shards, 2);
    assert!(serve(&["--shards", "0"]).is_err());
    assert_eq!(s.options.accept, tether_adapter::Accept::RoundRobin);
}

#[test]
fn accept_modes() {
    let accept = |mode: &str| serve(&["--shards", "2", "--accept", mode]).map(|s| s.options.accept);
    assert_eq!(
        accept("reuseport").unwrap(),
        tether_adapter::Accept::ReusePort
    );
    assert_eq!(
        accept("reuse-port").unwrap(),
        tether_adapter::Accept::ReusePort
    );
    assert_eq!(
        accept("round-robin").unwrap(),
        tether_adapter::Accept::RoundRobin
    );
    assert_eq!(
        clap_kind(serve(&["--accept", "random"])),
        ErrorKind::InvalidValue
    );
    let help = Cli::command().render_long_help().to_string();
    assert!(
        help.contains("--accept") && help.contains("reuseport") && help.contains("TETHER_ACCEPT"),
        "{help}"
    );
}

#[test]
fn every_flag() {
    let s = serve(&[
        "serve",
        "--runtime",
        "threads",
        "--listen",
        "localhost:9000",
        "--admin=[::1]:9001",
        "--max-channels",
        "50",
        "--idle-timeout",
        "2m",
        "--login-timeout",
        "1.5s",
        "--queue-limit",
        "64KiB",
        "--stall-timeout",
        "off",
        "--flush-timeout",
        "500ms",
        "--shutdown-grace",
        "1m30s",
        "--backlog",
        "4096",
        "--admin-token",
        "hunter2",
        "--admin-max",
        "3",
        "--admin-idle",
        "off",
        "--admin-login",
        "750ms",
        "--metrics",
        "localhost:9090",
    ])
    .unwrap();
    assert_eq!(s.runtime, Runtime::Threads);
    assert_eq!(s.listen.as_str(), "localhost:9000");
    assert_eq!(s.admin.as_str(), "[::1]:9001");
    assert_eq!(s.config.max_channels, 50);
    assert_eq!(s.config.idle_timeout, Some(Duration::from_secs(120)));
    assert_eq!(s.config.login_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(s.config.queue_limit, 65536);
    assert_eq!(s.config.high_watermark, 65536 / 4);
    assert_eq!(s.config.stall_timeout, None);
    assert_eq!(s.config.flush_timeout, Duration::from_millis(500));
    assert_eq!(s.shutdown_grace, Duration::from_secs(90));
    assert_eq!(s.options.backlog, 4096);
    assert!(s.admin_token.as_ref().is_some_and(|t| t.matches("hunter2")));
    assert!(
        !format!("{s:?}").contains("hunter2"),
        "the token is redacted"
    );
    assert_eq!(s.admin_max, 3);
    assert_eq!(s.admin_idle, None);
    assert_eq!(s.admin_login, Some(Duration::from_millis(750)));
    assert_eq!(serve(&["--admin-login", "off"]).unwrap().admin_login, None);
    assert_eq!(
        clap_kind(serve(&["--admin-login", "0s"])),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        s.metrics.as_ref().map(HostPort::as_str),
        Some("localhost:9090")
    );
    // The grace follows the flush timeout unless given.
    let s = serve(&["--flush-timeout", "2s"]).unwrap();
    assert_eq!(s.shutdown_grace, Duration::from_secs(2));
    let s = serve(&["--stall-timeout", "3s"]).unwrap();
    assert_eq!(s.config.stall_timeout, Some(Duration::from_secs(3)));
}

#[test]
fn sizes() {
    for (text, n) in [
        ("65536", 65536),
        ("64k", 65536),
        ("64K", 65536),
        ("64KiB", 65536),
        ("64kb", 65536),
        ("1m", 1 << 20),
        ("1.5m", 3 << 19),
        ("1g", 1 << 30),
        ("1_000", 1000),
    ] {
        assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(n)), "{text}");
    }
    for bad in ["lots", "", "-1k", "1q", "64 kilo"] {
        assert!(bad.parse::<ByteSize>().is_err(), "{bad:?}");
    }
    assert_eq!(
        clap_kind(serve(&["--queue-limit", "lots"])),
        ErrorKind::ValueValidation
    );
    // Parses, but leaves no room for the per-message overhead.
    assert!(matches!(
        serve(&["--queue-limit", "64"]),
        Err(CliError::Config(ConfigError::MessageOverhead { .. }))
    ));
}

#[test]
fn durations() {
    for (text, d) in [
        ("250us", Duration::from_micros(250)),
        ("500ms", Duration::from_millis(500)),
        ("1.5s", Duration::from_millis(1500)),
        ("1m30s", Duration::from_secs(90)),
        ("1m 30s", Duration::from_secs(90)),
        ("2h", Duration::from_secs(7200)),
    ] {
        assert_eq!(text.parse::<Dur>(), Ok(Dur(d)), "{text}");
        assert_eq!(text.parse::<Timeout>(), Ok(Timeout(Some(d))), "{text}");
    }
    assert_eq!("off".parse::<Timeout>(), Ok(Timeout(None)));
    assert_eq!("OFF".parse::<Timeout>(), Ok(Timeout(None)));
    assert_eq!("0s".parse::<Dur>(), Err(DurationError::Zero));
    assert_eq!("0s".parse::<Timeout>(), Err(DurationError::ZeroUseOff));
    for bad in ["30", "off5", "5 parsecs", "-1s", "", "1e400s"] {
        assert!(bad.parse::<Dur>().is_err(), "{bad:?}");
    }
    // `off` only where a timeout can be disabled.
    assert_eq!(
        clap_kind(serve(&["--flush-timeout", "off"])),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        clap_kind(serve(&["--idle-timeout", "30"])),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        clap_kind(serve(&["--flush-timeout", "0s"])),
        ErrorKind::ValueValidation
    );
    assert_eq!(Dur(Duration::from_millis(1500)).to_string(), "1s 500ms");
}

#[test]
fn addresses() {
    for good in [
        "127.0.0.1:7000",
        "localhost:7000",
        "chat.example.com:0",
        "[::1]:7000",
        "0.0.0.0:65535",
    ] {
        assert_eq!(
            good.parse::<HostPort>().map(|h| h.to_string()).as_deref(),
            Ok(good)
        );
    }
    for bad in [
        "nowhere",
        "localhost",
        ":7000",
        "host:port",
        "host:70000",
        "[::1:7000",
        "::1:7000",
        "a b:1",
        "[nope]:1",
    ] {
        assert!(bad.parse::<HostPort>().is_err(), "{bad:?}");
    }
    let err = serve(&["--listen", "nowhere"]).unwrap_err().to_string();
    assert!(
        err.contains("--listen") && err.contains("HOST:PORT"),
        "{err}"
    );
}

#[test]
fn misspelt_and_unknown_flags_are_clap_errors_with_suggestions() {
    let Err(CliError::Clap(e)) = serve(&["--lisen", "127.0.0.1:1"]) else {
        panic!("expected an error");
    };
    assert_eq!(e.kind(), ErrorKind::UnknownArgument);
    assert!(e.to_string().contains("--listen"), "suggests --listen: {e}");
    let Err(CliError::Clap(e)) = serve(&["serve", "--max-chanels", "5"]) else {
        panic!("expected an error");
    };
    assert!(e.to_string().contains("--max-channels"), "{e}");
    let Err(CliError::Clap(e)) = parse_from(["tether", "sevre"]) else {
        panic!("expected an error");
    };
    assert!(e.to_string().contains("serve"), "suggests serve: {e}");
    assert_eq!(clap_kind(serve(&["--listen"])), ErrorKind::InvalidValue);
    assert_eq!(
        clap_kind(serve(&["--runtime", "tokyo"])),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        clap_kind(serve(&["--admin-max", "0"])),
        ErrorKind::ValueValidation
    );
    assert_eq!(
        clap_kind(serve(&["--backlog", "-1"])),
        ErrorKind::UnknownArgument
    );
    assert!(matches!(
        serve(&["--max-channels", "0"]),
        Err(CliError::Config(ConfigError::MaxChannels(0)))
    ));
    // Server flags do not go with `demo`.
    assert!(parse_from(["tether", "--listen", "127.0.0.1:1", "demo"]).is_err());
}

#[test]
fn help_and_version_end_the_program() {
    for flag in ["--help", "-h", "--version", "-V"] {
        let Err(CliError::Clap(e)) = parse_from(["tether", flag]) else {
            panic!("{flag}: expected help");
        };
        assert!(!e.use_stderr(), "{flag} prints to stdout and exits 0");
    }
    let Err(CliError::Clap(e)) = parse_from(["tether", "serve", "--help"]) else {
        panic!("expected help");
    };
    let help = e.to_string();
    assert!(
        help.contains("TETHER_ADMIN_TOKEN") && help.contains("--stall-timeout"),
        "{help}"
    );
}

#[test]
fn record_flags() {
    assert_eq!(serve(&[]).unwrap().record, None);
    let r = serve(&[
        "--record",
        "/var/log/chat.rec",
        "--record-max",
        "64MiB",
        "--record-keep",
        "2",
        "--record-bytes",
    ])
    .unwrap()
    .record
    .unwrap();
    assert_eq!(r.path, std::path::PathBuf::from("/var/log/chat.rec"));
    assert_eq!((r.max_bytes, r.keep, r.bytes), (64 << 20, 2, true));
    let r = serve(&["--record", "chat.rec"]).unwrap().record.unwrap();
    assert_eq!((r.max_bytes, r.keep, r.bytes), (256 << 20, 3, false));
    // Values that make no usable recording name their flag.
    let e = serve(&["--record", "x", "--record-max", "100k"]).unwrap_err();
    assert!(
        matches!(
            e,
            CliError::Record {
                flag: "--record-max",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("--record-max 102400: "), "{e}");
    let e = serve(&[
        "--record",
        "x",
        "--record-keep",
        "5000",
        "--record-max",
        "1g",
    ])
    .unwrap_err();
    assert!(
        matches!(
            e,
            CliError::Record {
                flag: "--record-keep",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        clap_kind(serve(&["--record", "x", "--record-max", "lots"])),
        ErrorKind::ValueValidation
    );
    // The other recording flags need --record.
    for flags in [&["--record-bytes"][..], &["--record-keep", "2"]] {
        assert_eq!(
            clap_kind(serve(flags)),
            ErrorKind::MissingRequiredArgument,
            "{flags:?}"
        );
    }
}

#[test]
fn cluster_flags_come_together_and_are_validated() {
    // Without --cluster: no cluster, the plain greeting.
    let plain = serve(&[]).unwrap();
    assert!(plain.cluster.is_none());
    let id = "#1:2.3".parse().unwrap();
    let greet = |o: &ServeOptions| (o.options.greeting.as_ref().unwrap().0)(id);
    assert_eq!(&greet(&plain)[..], b"hello #1:2.3\n");
    let on = serve(&[
        "--cluster",
        "redis://127.0.0.1:6380/2",
        "--node",
        "n1",
        "--cluster-ttl",
        "5s",
        "--cluster-outbox",
        "64k",
    ])
    .unwrap();
    let cluster = on.cluster.as_ref().unwrap();
    assert_eq!(cluster.name.as_str(), "n1");
    assert_eq!(cluster.url.to_string(), "redis://127.0.0.1:6380/2");
    assert_eq!(cluster.config.ttl, Duration::from_secs(5));
    assert_eq!(cluster.config.heartbeat, Duration::from_secs(1));
    assert_eq!(cluster.config.timeout, Duration::from_secs(1));
    assert_eq!(cluster.config.outbox_bytes, 64 << 10);
    assert_eq!(&greet(&on)[..], b"hello n1/#1:2.3\n");
    // One without the other is a usage error.
    for flags in [
        &["--node", "n1"][..],
        &["--cluster", "redis://127.0.0.1:6380"],
    ] {
        assert_eq!(
            clap_kind(serve(flags)),
            ErrorKind::MissingRequiredArgument,
            "{flags:?}"
        );
    }
    // Bad values name their flag.
    for (flags, flag) in [
        (&["--cluster", "http://x", "--node", "n1"][..], "--cluster"),
        (
            &["--cluster", "redis://h:port", "--node", "n1"],
            "--cluster",
        ),
        (&["--cluster", "redis://h", "--node", "bad name"], "--node"),
        (
            &["--cluster", "redis://h", "--node", &"x".repeat(33)],
            "--node",
        ),
    ] {
        let e = serve(flags).unwrap_err();
        assert!(
            matches!(&e, CliError::Clap(c) if c.kind() == ErrorKind::ValueValidation),
            "{flags:?}: {e}"
        );
        assert!(e.to_string().contains(flag), "{flags:?}: {e}");
    }
    // Timings that cannot work: the TTL must exceed the heartbeat.
    let e = serve(&[
        "--cluster",
        "redis://h",
        "--node",
        "n1",
        "--cluster-ttl",
        "500ms",
    ])
    .unwrap_err();
    assert!(matches!(e, CliError::Cluster(_)), "{e:?}");
    assert!(e.to_string().contains("--cluster-ttl"), "{e}");
}

#[test]
fn every_flag_has_its_environment_variable() {
    let cli = Cli::command();
    let mut checked = 0;
    for command in [
        &cli,
        cli.find_subcommand("serve").unwrap(),
        cli.find_subcommand("demo").unwrap(),
    ] {
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or("");
            let expected = match long {
                "duration" | "clients" => format!("TETHER_DEMO_{}", long.to_uppercase()),
                _ => format!("TETHER_{}", long.to_uppercase().replace('-', "_")),
            };
            assert_eq!(env, expected, "--{long}");
            checked += 1;
        }
    }
    assert_eq!(checked, 29 * 2 + 3);
}

#[test]
fn demo() {
    let Command::Demo(d) =
        parse_from(["tether", "demo", "--duration", "5s", "--runtime", "smol"]).unwrap()
    else {
        panic!("expected demo");
    };
    assert_eq!(
        d,
        DemoOptions {
            runtime: Runtime::Smol,
            duration: Duration::from_secs(5),
            clients: 60
        }
    );
    assert!(parse_from(["tether", "demo", "--clients", "0"]).is_err());
    assert!(parse_from(["tether", "demo", "--clients", "5001"]).is_err());
    assert!(parse_from(["tether", "demo", "--max-channels", "5"]).is_err());
}

#[test]
fn secrets_compare_whole() {
    let s = Secret::new("abc");
    assert!(s.matches("abc"));
    for wrong in ["", "ab", "abd", "abcd", "xbc"] {
        assert!(!s.matches(wrong), "{wrong:?}");
    }
    assert!(Secret::new("").matches(""));
}
