//! Unit tests of the command line: today's flags and modes still parse (global flags before or
//! after the mode), new flags turn into the right `Link`, and every error names its flag.

use super::*;

fn parse(args: &[&str]) -> Result<Cli, String> {
    Cli::try_parse_from(std::iter::once("hub").chain(args.iter().copied()))
        .map_err(|e| e.to_string())
}

fn error(args: &[&str]) -> String {
    match parse(args) {
        Ok(cli) => panic!("{args:?} accepted: {cli:?}"),
        Err(e) => e,
    }
}

#[test]
fn todays_invocations_still_parse() {
    let cli = parse(&[]).expect("no args");
    assert!(cli.mode.is_none() && !cli.json && cli.totals_every.is_none());
    assert_eq!(
        (cli.conn.broker.as_str(), cli.conn.prefix.as_str()),
        ("mqtt://127.0.0.1:1883", "edge")
    );
    let cli = parse(&[
        "--broker",
        "mqtt://127.0.0.1:1999",
        "--json",
        "--prefix",
        "fleet",
    ])
    .expect("flags");
    assert!(cli.json);
    assert_eq!(cli.conn.broker, "mqtt://127.0.0.1:1999");
    assert_eq!(cli.conn.prefix, "fleet");
    for args in [
        &["bridge", "--json", "--broker", "mqtt://h"][..],
        &["--json", "--broker", "mqtt://h", "bridge"][..],
    ] {
        let cli = parse(args).expect("bridge");
        assert!(cli.json, "{args:?}");
        assert_eq!(cli.conn.broker, "mqtt://h");
        assert!(matches!(
            cli.mode,
            Some(Mode::Bridge {
                bridge_prefix: None,
                ..
            })
        ));
    }
    let cli = parse(&["bridge", "--bridge-prefix", "out"]).expect("bridge prefix");
    assert!(matches!(cli.mode, Some(Mode::Bridge { bridge_prefix: Some(p), .. }) if p == "out"));
}

#[test]
fn new_flags_and_rebirth_parse() {
    let cli = parse(&[
        "--broker",
        "mqtts://[::1]:8884",
        "--ca-file",
        "/ca.pem",
        "--username",
        "hub",
        "--client-cert",
        "/c.pem",
        "--client-key",
        "/c.key",
        "--client-id",
        "me",
        "--totals-every",
        "0.5",
    ])
    .expect("flags");
    assert_eq!(cli.totals_every, Some(Duration::from_millis(500)));
    let link = cli
        .conn
        .link_with_env("default".into(), None)
        .expect("link");
    assert_eq!(
        link,
        Link {
            url: "mqtts://[::1]:8884".into(),
            client_id: "me".into(),
            username: Some("hub".into()),
            password: None,
            ca_file: Some("/ca.pem".into()),
            client_cert: Some("/c.pem".into()),
            client_key: Some("/c.key".into()),
            keep_alive: edge_mqtt::DEFAULT_KEEP_ALIVE,
        }
    );
    let cli = parse(&["rebirth", "dev1", "--timeout", "2"]).expect("rebirth");
    assert!(matches!(
        cli.mode,
        Some(Mode::Rebirth { device, timeout }) if device == "dev1" && timeout == Duration::from_secs(2)
    ));
    let cli = parse(&["rebirth", "dev1"]).expect("rebirth");
    assert!(
        matches!(cli.mode, Some(Mode::Rebirth { timeout, .. }) if timeout == Duration::from_secs(10))
    );
}

#[test]
fn home_assistant_flags_and_forget_parse() {
    let ha = |args: &[&str]| match parse(args).expect("bridge").mode {
        Some(Mode::Bridge { ha, bridge_prefix }) => {
            let bridge = bridge_prefix.unwrap_or_else(|| "edge-json".into());
            ha.settings(&bridge).expect("settings")
        }
        other => panic!("{other:?}"),
    };
    let s = ha(&["bridge"]).expect("on by default");
    assert_eq!(
        (s.discovery_prefix.as_str(), s.bridge_prefix.as_str()),
        ("homeassistant", "edge-json")
    );
    let s = ha(&["bridge", "--ha-prefix", "ha2", "--bridge-prefix", "out"]).expect("on");
    assert_eq!(
        (s.discovery_prefix.as_str(), s.bridge_prefix.as_str()),
        ("ha2", "out")
    );
    assert_eq!(ha(&["bridge", "--no-ha"]), None);
    assert!(error(&["bridge", "--no-ha", "--ha-prefix", "x"]).contains("cannot be used with"));
    assert!(error(&["bridge", "--ha-prefix", "a/b"]).contains("--ha-prefix <PREFIX>"));
    assert!(error(&["--no-ha"]).contains("--no-ha"), "bridge mode only");

    match parse(&["serve", "--data-dir", "/d", "--ha-prefix", "ha3"]).map(|c| c.mode) {
        Ok(Some(Mode::Serve(args))) => {
            let s = args
                .ha
                .settings("edge-json")
                .expect("settings")
                .expect("on");
            assert_eq!(s.discovery_prefix, "ha3");
        }
        other => panic!("{other:?}"),
    }
    match parse(&["serve", "--data-dir", "/d", "--no-ha"]).map(|c| c.mode) {
        Ok(Some(Mode::Serve(args))) => assert_eq!(args.ha.settings("b").expect("ok"), None),
        other => panic!("{other:?}"),
    }
    let cli = parse(&["forget", "pi-7", "--ha-prefix", "ha2", "--timeout", "3"]).expect("forget");
    assert!(matches!(
        cli.mode,
        Some(Mode::Forget { device, bridge_prefix: None, ha_prefix, timeout })
            if device == "pi-7" && ha_prefix == "ha2" && timeout == Duration::from_secs(3)
    ));
    assert!(error(&["forget", "a#"]).contains("<DEVICE>"));
    assert!(error(&["forget"]).contains("<DEVICE>"));
}

#[test]
fn bad_values_name_their_flag() {
    for (args, flag, why) in [
        (
            &["--prefix", "a/b"][..],
            "--prefix <PREFIX>",
            "one plain topic level",
        ),
        (
            &["--prefix", ""][..],
            "--prefix <PREFIX>",
            "must not be empty",
        ),
        (
            &["--broker", "tcp://h"][..],
            "--broker <URL>",
            "must start with mqtt:// or mqtts://",
        ),
        (
            &["--broker", "mqtt://h:0"][..],
            "--broker <URL>",
            "bad port",
        ),
        (
            &["--totals-every", "0"][..],
            "--totals-every <SECONDS>",
            "above 0",
        ),
        (
            &["bridge", "--bridge-prefix", "x/#"][..],
            "--bridge-prefix <BRIDGE_PREFIX>",
            "plain topic level",
        ),
        (&["rebirth", "a+b"][..], "<DEVICE>", "plain topic level"),
        (
            &["rebirth", "d", "--timeout", "x"][..],
            "--timeout <SECONDS>",
            "number of seconds",
        ),
    ] {
        let e = error(args);
        assert!(e.contains(flag) && e.contains(why), "{args:?}: {e}");
    }
    assert!(error(&["--bogus"]).contains("--bogus"));
    assert!(error(&["rebirth"]).contains("<DEVICE>"));
}

#[test]
fn the_password_comes_from_its_file_or_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("pw");
    std::fs::write(&file, "s3cret\r\n").expect("write");
    let f = file.to_str().expect("utf-8 path");
    let cli = parse(&["--username", "hub", "--password-file", f]).expect("flags");
    let link = cli
        .conn
        .link_with_env("id".into(), Some("from-env".into()))
        .expect("link");
    assert_eq!(link.password.as_deref(), Some("s3cret"), "the file wins");
    assert_eq!(link.client_id, "id");

    let cli = parse(&["--username", "hub"]).expect("flags");
    let link = cli
        .conn
        .link_with_env("id".into(), Some("from-env".into()))
        .expect("link");
    assert_eq!(link.password.as_deref(), Some("from-env"));
    let link = cli
        .conn
        .link_with_env("id".into(), Some(String::new()))
        .expect("link");
    assert_eq!(link.password, None, "an empty variable is no password");

    let err = |args: &[&str], env: Option<&str>| {
        parse(args)
            .expect("flags")
            .conn
            .link_with_env("id".into(), env.map(str::to_owned))
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
            .expect_err("must fail")
    };
    assert_eq!(
        err(&[], Some("x")),
        "HUB_MQTT_PASSWORD gives a password but --username is missing"
    );
    assert_eq!(
        err(&["--password-file", f], None),
        "--password-file gives a password but --username is missing"
    );
    assert_eq!(
        err(
            &["--username", "u", "--password-file", "/nonexistent/pw"],
            None
        ),
        "--password-file /nonexistent/pw: No such file or directory (os error 2)"
    );
    std::fs::write(&file, "\n").expect("write");
    assert_eq!(
        err(&["--username", "u", "--password-file", f], None),
        format!("--password-file {f}: empty")
    );
}

#[test]
fn connection_errors_name_the_flag() {
    let opts_err = |args: &[&str]| {
        let cli = parse(args).expect("flags");
        let link = cli.conn.link_with_env("id".into(), None).expect("link");
        match options(&link) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(
        opts_err(&["--broker", "mqtts://h"]),
        "--ca-file is required for mqtts:// (a PEM CA bundle)"
    );
    assert_eq!(
        opts_err(&["--broker", "mqtts://h", "--ca-file", "/nonexistent/ca.pem"]),
        "--ca-file /nonexistent/ca.pem: No such file or directory (os error 2)"
    );
    assert_eq!(
        opts_err(&["--client-cert", "/c.pem"]),
        "--client-cert needs --client-key"
    );
    assert_eq!(
        opts_err(&["--client-id", "a b"]),
        "--client-id \"a b\": must not hold spaces or control characters"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let e = empty.to_str().expect("utf-8");
    assert_eq!(
        opts_err(&["--broker", "mqtts://h", "--ca-file", e]),
        format!("--ca-file {e}: no certificate")
    );
}
