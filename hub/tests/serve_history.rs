//! `hub serve` history against a real mosquitto: events stored in batches come back from the
//! JSON API and from `hub query` (text and JSON), the same after a hub restart, with the
//! device's counts carried over; retention deletes the oldest when the size cap is hit; a
//! corrupt or locked database file ends the hub with an error naming it; the web view refuses
//! to listen beyond loopback without a token, and the token guards every page but the assets.

mod common;
mod serve_kit;

use std::time::Duration;

use common::WAIT;
use edge_hub::testkit::PrivateBroker;
use serde_json::Value;
use serve_kit::{
    ServeHub,
    fleet::{Publisher, batch, birth, exec, exit, metrics},
    hub_run,
};

fn kinds(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(|r| r["kind"].as_str()).collect())
        .unwrap_or_default()
}

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

#[test]
fn events_survive_a_restart_and_come_back_from_the_api_and_hub_query() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = ServeHub::start(&broker.url(), dir.path(), &["--no-bridge"]);
    let mut sim = Publisher::connect(broker.port, "sim-history");
    sim.publish("edge/pi-h/status", birth("pi-h", 1), true);
    sim.publish(
        "edge/pi-h/events",
        batch(
            "pi-h",
            0,
            vec![exec(100, "nginx", "/usr/sbin/nginx"), exit(100, 0)],
            &[],
        ),
        false,
    );
    sim.publish(
        "edge/pi-h/events",
        batch("pi-h", 1, vec![exit(101, 3)], &[("queue", 2)]),
        false,
    );
    sim.publish(
        "edge/pi-h/events",
        batch("pi-h", 3, vec![exit(102, 139)], &[]),
        false,
    );
    sim.publish(
        "edge/pi-h/metrics",
        metrics("pi-h", serve_kit::fleet::T0_MS, 12.5, 48.0),
        false,
    );
    sim.wait_acked(WAIT);

    let all = "/api/events?device=pi-h&limit=100";
    let before = hub.wait_json(all, "7 records stored", |v| len(v) == 7);
    assert_eq!(
        kinds(&before),
        ["exec", "exit", "drops", "exit", "exit", "status", "gap"]
    );
    let texts: Vec<&str> = before
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["text"].as_str())
        .collect();
    assert_eq!(
        texts[..5],
        [
            "[100] nginx exec /usr/sbin/nginx (ppid 1)",
            "[100] worker exit code 0 (ppid 1)",
            "DROPS queue: 2",
            "[101] worker exit code 3 (ppid 1)",
            "[102] worker exit code 139 (ppid 1)",
        ]
    );
    assert_eq!(texts[6], "GAP expected batch 2 got 3 (1 batches lost)");
    assert_eq!(before[0]["time"], "2026-03-01T12:00:00.000Z");
    assert_eq!(
        (before[3]["seq"].as_u64(), before[3]["run_id"].as_u64()),
        (Some(1), Some(77))
    );
    let events = "/api/events?device=pi-h&kind=exec,exit&limit=100";
    let events_before = hub.get(events).json();
    assert_eq!(len(&events_before), 4);
    let metrics_before = hub.wait_json("/api/metrics?device=pi-h", "a sample", |v| len(v) == 1);
    assert_eq!(metrics_before[0]["cpu_percent"], 12.5);

    let (status, log) = hub.stop();
    assert!(status.success(), "hub exit {status}:\n{log}");

    let hub = ServeHub::start(&broker.url(), dir.path(), &["--no-bridge"]);
    // The saved state is there before any message: counts of the first run.
    let dev = hub.get("/api/devices/pi-h").json();
    assert_eq!(
        (
            dev["device"]["events"].as_u64(),
            dev["device"]["missing_batches"].as_u64(),
            dev["device"]["drops_total"].as_u64()
        ),
        (Some(4), Some(1), Some(2))
    );
    // The retained birth comes again and is stored as a new status record after the old ones.
    let after = hub.wait_json(all, "the retained birth stored again", |v| len(v) == 8);
    assert_eq!(
        after.as_array().expect("array")[..7],
        before.as_array().expect("array")[..]
    );
    assert_eq!(after[7]["kind"], "status");
    assert_eq!(hub.get(events).json(), events_before);
    assert_eq!(hub.get("/api/metrics?device=pi-h").json(), metrics_before);

    // hub query reads the same database while the server runs.
    let data = dir.path().to_str().expect("utf-8 path");
    let (st, out, err) = hub_run(&[
        "query",
        "--data-dir",
        data,
        "--device",
        "pi-h",
        "--kind",
        "exec,exit",
        "--json",
    ]);
    assert!(st.success(), "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(Value::Array(lines), events_before);
    let (st, out, err) = hub_run(&[
        "query",
        "--data-dir",
        data,
        "--device",
        "pi-h",
        "--kind",
        "exit",
        "--since",
        "2026-03-01T12:00:01Z",
    ]);
    assert!(st.success(), "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "2026-03-01T12:00:01.000Z pi-h exit [101] worker exit code 3 (ppid 1)",
            "2026-03-01T12:00:03.000Z pi-h exit [102] worker exit code 139 (ppid 1)",
        ]
    );
    let (st, _, err) = hub_run(&["query", "--data-dir", data, "--since", "yesterday"]);
    assert!(!st.success());
    assert!(
        err.contains("--since: \"yesterday\" is not a time"),
        "{err}"
    );
    let (status, log) = hub.stop();
    assert!(status.success(), "hub exit {status}:\n{log}");
}

fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn retention_removes_the_oldest_when_the_size_cap_is_hit() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = 250_000.0;
    let hub = ServeHub::start(
        &broker.url(),
        dir.path(),
        &["--no-bridge", "--retain-mb", "0.25"],
    );
    let mut sim = Publisher::connect(broker.port, "sim-retention");
    let batches = 60u32;
    for seq in 0..batches {
        let events = (0..50)
            .map(|i| {
                exec(
                    seq * 100 + i,
                    "cron",
                    &format!("/usr/lib/job/runner-{seq:04}-{i:04}.sh"),
                )
            })
            .collect();
        sim.publish("edge/pi-r/events", batch("pi-r", seq, events, &[]), false);
    }
    sim.wait_acked(WAIT);
    // Every batch went through the hub, and the history is back under its cap.
    hub.wait_json("/api/devices/pi-r", "all batches counted", |v| {
        v["device"]["events"] == 3000
    });
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let page = hub.get("/metrics").text();
        let rows = gauge(&page, "edge_hub_store_rows_total").unwrap_or(0.0);
        let bytes = gauge(&page, "edge_hub_history_bytes").unwrap_or(f64::MAX);
        if rows >= 3000.0 && bytes <= cap {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rows {rows} bytes {bytes}:\n{page}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kept = hub.get("/api/events?device=pi-r&limit=100000").json();
    let seqs: Vec<u64> = kept
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .collect();
    assert!(seqs.len() < 3000, "nothing was deleted");
    assert!(
        seqs[0] > 0,
        "the oldest batch is gone (first kept {})",
        seqs[0]
    );
    assert_eq!(seqs.last(), Some(&59), "the newest batch is kept");
    assert!(
        seqs.windows(2).all(|w| w[0] <= w[1]),
        "only the oldest were deleted: {seqs:?}"
    );
    let (status, log) = hub.stop();
    assert!(status.success());
    assert!(log.contains("hub: retention deleted the "), "{log}");
}

#[test]
fn a_corrupt_or_locked_database_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let db = dir.path().join("hub.sqlite");
    let serve = [
        "--broker",
        "mqtt://127.0.0.1:1",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ];
    std::fs::write(&db, b"not a database at all, ".repeat(200)).expect("garbage");
    let (st, _, err) = hub_run(&serve);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "hub: history database {} is not a usable SQLite database (corrupt or not a database: file is not a database); move it away to start a new history",
            db.display()
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    std::fs::remove_file(&db).expect("rm");
    drop(edge_hub::store::SqliteStore::open(&db).expect("create"));
    let holder = rusqlite::Connection::open(&db).expect("open");
    holder
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .expect("lock");
    let locked = format!(
        "hub: history database {} is locked by another process or connection (database is locked)",
        db.display()
    );
    for args in [&serve[..], &["query", "--data-dir", data][..]] {
        let (st, _, err) = hub_run(args);
        assert_eq!(st.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&locked), "{args:?}: {err}");
    }
    drop(holder);
    let (st, _, err) = hub_run(&["query", "--data-dir", "/nonexistent/edge"]);
    assert_eq!(st.code(), Some(1));
    assert!(
        err.contains("hub: history database /nonexistent/edge/hub.sqlite: no such file (nothing stored yet, or another --data-dir?)"),
        "{err}"
    );
}

#[test]
fn the_web_view_stays_on_loopback_unless_protected_and_the_token_guards_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    // Refused before anything binds.
    let (st, _, err) = hub_run(&["serve", "--listen", "0.0.0.0:0", "--data-dir", data]);
    assert_eq!(st.code(), Some(1));
    assert!(
        err.contains("hub: --listen 0.0.0.0:0 is reachable beyond this machine: protect it with --token (or --token-file, HUB_HTTP_TOKEN), or give --insecure-listen"),
        "{err}"
    );
    let broker = PrivateBroker::start().expect("mosquitto");
    let hub = ServeHub::start(&broker.url(), dir.path(), &["--token", "s3cr&t"]);
    for path in [
        "/",
        "/metrics",
        "/api/devices",
        "/device/x",
        "/api/stream?device=x",
    ] {
        let r = hub.get(path);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"edge hub\", charset=\"UTF-8\"")
        );
    }
    assert_eq!(hub.get("/?token=s3cr%26t").status, 200);
    assert_eq!(hub.get("/?token=wrong").status, 401);
    let url = format!("{}/api/devices", hub.url);
    assert_eq!(
        serve_kit::http::get_with(&url, &[("Authorization", "Bearer s3cr&t")]).status,
        200
    );
    // Basic auth, any user: "op:s3cr&t".
    assert_eq!(
        serve_kit::http::get_with(&url, &[("Authorization", "Basic b3A6czNjciZ0")]).status,
        200
    );
    let js = hub.get("/assets/app.js");
    assert_eq!(
        (js.status, js.header("content-type")),
        (200, Some("text/javascript; charset=utf-8"))
    );
    let (status, _) = hub.stop();
    assert!(status.success());
}
