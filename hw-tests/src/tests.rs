//! Unit tests of the cell rules (lib.rs), on hand-written hub records and consoles.
use super::*;
use serde_json::json;

fn birth(page: u64, chosen: u64, state: Value) -> Value {
    json!({"type": "online", "device": "hwtest-e2e-16k", "body": {
        "page_size": page, "arch": "aarch64", "kernel_btf": true,
        "ring_buffers": [{"name": "WATCH_EVENTS", "requested": 4096, "chosen": chosen,
            "transport": "RingBuf"}],
        "probes": [{"name": "exec", "state": state}]}})
}

#[test]
fn cells_parse() {
    let c = Cell::parse("ringbuf-negative-16k").unwrap();
    assert_eq!(
        (c.scenario, c.page_size),
        (Scenario::RingbufNegative, 16384)
    );
    assert_eq!(Cell::parse("e2e-64k").unwrap().device(), "hwtest-e2e-64k");
    assert!(Cell::parse("e2e-8k").is_err());
    assert_eq!(Cell::parse("e2e-510").unwrap().page_size, 4096);
    assert!(Cell::parse("boot-4k").is_err());
}

#[test]
fn birth_rules() {
    assert!(check_birth(&birth(16384, 16384, json!("Attached")), 16384, true).is_empty());
    // 4096 on a 16K kernel: the original bug.
    let f = check_birth(&birth(16384, 4096, json!("Attached")), 16384, true);
    assert!(f.iter().any(|m| m.contains("not a multiple")), "{f:?}");
    let f = check_birth(
        &birth(16384, 16384, json!({"Skipped": {"reason": "x"}})),
        16384,
        true,
    );
    assert!(f.iter().any(|m| m.contains("not attached")), "{f:?}");
    let f = check_birth(&birth(16384, 16384, json!("Attached")), 4096, false);
    assert_eq!(f.len(), 2, "{f:?}"); // page size and btf
}

#[test]
fn e2e_rules() {
    let cell = Cell::parse("e2e-16k").unwrap();
    let d = "hwtest-e2e-16k";
    let mut recs = vec![
        birth(16384, 16384, json!("Attached")),
        json!({"type": "event", "device": d, "event": {"Bind": {"task": {"comm": "httpd"}, "ret": 0,
            "addr": {"V4": {"ip": [0, 0, 0, 0], "port": 4242}}}}}),
        json!({"type": "event", "device": d, "event": {"Bind": {"task": {"comm": "nc"}, "ret": 0,
            "addr": {"V6": {"ip": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "port": 4243, "scope_id": 0}}}}}),
        json!({"type": "event", "device": d, "event": {"Exec": {"filename": MARKER}}}),
        json!({"type": "offline", "device": d, "body": {"cause": "Shutdown"}}),
    ];
    for (comm, how, value) in EXITS {
        recs.push(json!({"type": "event", "device": d, "event": {"Exit": {
            "task": {"comm": comm}, "how": {how: value}}}}));
    }
    let console = "x\nHWTEST-RESULT: agent-exit=0 scenario=e2e\n";
    assert_eq!(
        check_e2e(&cell, &recs, console, true, 2),
        Vec::<String>::new()
    );
    assert_eq!(
        check_e2e(
            &cell,
            &recs,
            "HWTEST-RESULT: agent-exit=143 scenario=e2e",
            true,
            2
        )
        .len(),
        1
    );
    let crashed = format!("[agent] thread 'main' panicked at src/x.rs:1:1\n{console}");
    let f = check_e2e(&cell, &recs, &crashed, true, 2);
    assert!(
        f.len() == 1 && f[0].starts_with("crash on the console"),
        "{f:?}"
    );
    // The crash that ends as a code, or missing: both fail.
    let last = recs.len() - 1;
    recs[last]["event"]["Exit"]["how"] = json!({"Code": 139});
    let f = check_e2e(&cell, &recs, console, true, 2);
    assert!(f.len() == 1 && f[0].contains("hwtest-crash"), "{f:?}");
    recs.pop();
    assert_eq!(check_e2e(&cell, &recs, console, true, 2).len(), 1);
    recs.remove(1);
    assert_eq!(check_e2e(&cell, &recs, console, true, 2).len(), 2);
    let nobtf = Cell::parse("nobtf-16k").unwrap();
    assert!(!check_e2e(&nobtf, &recs, console, true, 2).is_empty());
}

#[test]
fn console_parsing() {
    let c = "HWTEST-RSS: 5120 phase=ready\r\nHWTEST-RSS: 6000 phase=before-stop\nHWTEST-RESULT: a\nHWTEST-RESULT: b\n";
    assert_eq!(rss_kb(c, "ready"), Some(5120));
    assert_eq!(rss_kb(c, "before-stop"), Some(6000));
    assert_eq!(result_line(c), Some("b"));
    let r = "HWTEST-INFO: agent started pid=9 uptime=1.50s args=x\nHWTEST-INFO: agent ready (log matched 'mqtt: connected', poll 2) uptime=2.25s\r";
    assert_eq!(guest_ready_s(r), Some(0.75));
    let b = "HWTEST-BOOT: host_to_init=1.85s\nHWTEST-BOOT: total=9.10s qemu_exit=0";
    assert_eq!(boot_figure(b, "host_to_init"), Some(1.85));
    assert_eq!(boot_figure(b, "total"), Some(9.10));
}

#[test]
fn selftest_rules() {
    let c16 = Cell::parse("ringbuf-negative-16k").unwrap();
    let ok16 = "raw_ringbuf bytes=4096 result=EINVAL (Invalid argument)\nsized_ringbuf requested=4096 chosen=16384 max_entries=16384 result=ok\nselftest-ringbuf PASS\nHWTEST-RESULT: selftest-exit=0 pagesize=16384 scenario=ringbuf-negative";
    assert!(check_ringbuf_negative(&c16, ok16).is_empty());
    let c4 = Cell::parse("ringbuf-negative-4k").unwrap();
    assert_eq!(check_ringbuf_negative(&c4, ok16).len(), 2);
}
