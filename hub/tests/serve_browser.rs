//! The web view in a real headless Chromium (Debian's chromium + chromedriver over WebDriver),
//! against `hub serve` and a real mosquitto fed by a simulated fleet: the fleet table lists
//! the devices with their online/offline states; a device that goes offline is shown offline
//! without a reload (fleet table and device page), and a forgotten one (`hub forget`) leaves an
//! open fleet table; a device page receives an event published
//! after it loaded; HTML in a process name, a file name or a device id is shown as text, live
//! and when rendered by the server; a device page's facts and probes follow a new birth, a
//! sample and events without a reload. Screenshots of each page are kept under target/.

mod common;
mod serve_kit;

use common::WAIT;
use edge_hub::testkit::PrivateBroker;
use edge_wire::{AttachMethod, Message, ProbeInfo, ProbeState, bounded, encode};
use serde_json::json;
use serve_kit::{
    ServeHub, artefacts,
    browser::Browser,
    fleet::{Publisher, T0_MS, batch, birth, birth_of, death, exec, exit, metrics},
    hub_run,
};

const EVIL_COMM: &str = "<svg onload=x()>";
const EVIL_FILE: &str = "<img src=x onerror=\"window.__xss=1\">";
const EVIL_DEVICE: &str = "<b>evil&amp;<b>";

fn status_cell(device: &str) -> String {
    format!(
        "return document.querySelector('tr[data-device=\"{device}\"] td[data-col=\"status\"]').textContent"
    )
}

#[test]
fn the_fleet_view_in_a_real_browser() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = ServeHub::start(&broker.url(), dir.path(), &[]);
    let mut sim = Publisher::connect(broker.port, "sim-browser");
    for d in ["pi-a", "pi-b", "pi-c", EVIL_DEVICE] {
        sim.publish(&format!("edge/{d}/status"), birth(d, 1), true);
        sim.publish(
            &format!("edge/{d}/metrics"),
            metrics(d, T0_MS, 20.0, 50.0),
            false,
        );
    }
    sim.publish("edge/pi-c/status", death("pi-c", 1), true);
    sim.wait_acked(WAIT);
    hub.wait_json("/api/devices", "4 devices, pi-c offline", |v| {
        v.as_array().is_some_and(|a| a.len() == 4) && v[3]["status"] == "offline"
    });
    let shots = artefacts();
    let b = Browser::start();

    // The fleet table.
    b.goto(&format!("{}/", hub.url));
    b.wait_true(
        "4 rows",
        "return document.querySelectorAll('#fleet-rows tr').length === 4",
    );
    let rows = b.eval(
        "return Array.from(document.querySelectorAll('#fleet-rows tr')).map(tr => \
         [tr.dataset.device, tr.querySelector('td[data-col=\"status\"]').textContent, \
          tr.querySelector('td[data-col=\"page\"]').textContent, tr.querySelector('td[data-col=\"cpu\"]').textContent])",
    );
    assert_eq!(
        rows,
        json!([
            [EVIL_DEVICE, "online", "16384", "20.0"],
            ["pi-a", "online", "16384", "20.0"],
            ["pi-b", "online", "16384", "20.0"],
            ["pi-c", "offline (Shutdown)", "16384", "20.0"]
        ])
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('#fleet b').length"),
        0,
        "the device id is text"
    );
    b.eval("window.__marker = 42; return true");
    sim.publish("edge/pi-b/status", death("pi-b", 1), true);
    sim.publish("edge/pi-d/status", birth("pi-d", 1), true);
    b.wait_true(
        "pi-b offline",
        &format!("{} === 'offline (Shutdown)'", status_cell("pi-b")),
    );
    b.wait_true(
        "pi-d listed",
        &format!("{} === 'online'", status_cell("pi-d")),
    );
    assert_eq!(
        b.eval("return window.__marker"),
        42,
        "the page was not reloaded"
    );
    assert_eq!(
        b.eval("return document.getElementById('count-offline').textContent"),
        "2"
    );
    // `hub forget`: the open table drops the row and counts again, without a reload.
    let (st, _, err) = hub_run(&["--broker", &broker.url(), "forget", "pi-d"]);
    assert!(st.success(), "{err}");
    b.wait_true(
        "pi-d's row gone",
        "return !document.querySelector('tr[data-device=\"pi-d\"]')",
    );
    assert_eq!(
        b.eval(
            "return [document.querySelectorAll('#fleet-rows tr').length, \
             document.getElementById('count-devices').textContent, \
             document.getElementById('count-online').textContent, window.__marker]"
        ),
        json!([4, "4", "2", 42])
    );
    b.screenshot(&shots, "fleet");

    // A device page: a live event published after it loaded, shown as text.
    b.goto(&format!("{}/device/pi-a", hub.url));
    b.wait_true(
        "the live stream",
        "return document.getElementById('feed-state').textContent === 'live'",
    );
    b.eval("window.__marker = 7; return true");
    sim.publish(
        "edge/pi-a/events",
        batch("pi-a", 0, vec![exec(4242, EVIL_COMM, EVIL_FILE)], &[]),
        false,
    );
    sim.publish(
        "edge/pi-a/metrics",
        metrics("pi-a", T0_MS + 10_000, 35.0, 52.5),
        false,
    );
    b.wait_true(
        "the event in the feed",
        "const r = document.querySelector('#feed-rows tr'); return !!r && r.dataset.kind === 'exec'",
    );
    let expected = format!("[4242] {EVIL_COMM} exec {EVIL_FILE} (ppid 1)");
    assert_eq!(
        b.eval("return document.querySelector('#feed-rows tr td.text').textContent"),
        expected
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('main img, #feed svg').length"),
        0
    );
    assert_eq!(b.eval("return window.__xss === undefined"), true);
    b.wait_true(
        "the CPU chart with two samples",
        "const p = document.querySelector('#chart-cpu polyline'); return !!p && p.getAttribute('points').split(' ').length === 2",
    );
    assert_eq!(
        b.eval("return document.getElementById('last-cpu').textContent"),
        "now 35.0"
    );
    sim.publish("edge/pi-a/status", death("pi-a", 1), true);
    b.wait_true(
        "pi-a offline",
        "return document.getElementById('status').textContent === 'offline (Shutdown)'",
    );
    assert_eq!(
        b.eval("return document.getElementById('status').className"),
        "badge offline"
    );
    assert_eq!(
        b.eval("return window.__marker"),
        7,
        "the page was not reloaded"
    );
    b.screenshot(&shots, "device");

    // The same event rendered by the server (a reload) and in the history search.
    b.goto(&format!("{}/device/pi-a", hub.url));
    assert_eq!(
        b.eval("return Array.from(document.querySelectorAll('#feed-rows tr')).find(r => r.dataset.kind === 'exec').querySelector('td.text').textContent"),
        expected
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('main img, #feed svg').length"),
        0
    );
    b.goto(&format!(
        "{}/events?device=pi-a&kind=exec&since=2026-03-01",
        hub.url
    ));
    assert_eq!(
        b.eval("return document.getElementById('found').textContent"),
        "1 records, newest first."
    );
    assert_eq!(
        b.eval("return document.querySelector('#history td.text').textContent"),
        expected
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('main img').length"),
        0
    );
    b.screenshot(&shots, "history");
    b.goto(&format!(
        "{}/device/{}",
        hub.url,
        serve_kit::http::enc(EVIL_DEVICE)
    ));
    assert_eq!(
        b.eval("return document.querySelector('h1').textContent"),
        EVIL_DEVICE
    );
    assert_eq!(
        b.eval(
            "return window.__xss === undefined && document.querySelectorAll('h1 b').length === 0"
        ),
        true
    );
    assert_eq!(b.eval("return window.__xss === undefined"), true);
    drop(b);
    let (status, log) = hub.stop();
    assert!(status.success(), "{log}");
}

/// A script for the facts table's row under `heading`: `f('Kernel')` is its text.
const FACT: &str = "const f = (h) => Array.from(document.querySelectorAll('#facts tr')).find(tr => tr.cells[0].textContent === h).cells[1].textContent;";

fn fact(heading: &str) -> String {
    format!("{FACT} return f('{heading}')")
}

#[test]
fn a_device_page_shows_a_new_birth_and_samples_without_a_reload() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = ServeHub::start(&broker.url(), dir.path(), &["--no-bridge"]);
    let mut sim = Publisher::connect(broker.port, "sim-facts");
    sim.publish("edge/pi-live/status", birth("pi-live", 1), true);
    sim.publish(
        "edge/pi-live/metrics",
        metrics("pi-live", T0_MS, 20.0, 50.0),
        false,
    );
    sim.wait_acked(WAIT);
    hub.wait_json("/api/devices", "pi-live with a sample", |v| {
        v[0]["device"] == "pi-live" && v[0]["cpu_percent"] == 20.0
    });
    let b = Browser::start();
    b.goto(&format!("{}/device/pi-live", hub.url));
    b.wait_true(
        "the live stream",
        "return document.getElementById('feed-state').textContent === 'live'",
    );
    assert_eq!(b.eval(&fact("Kernel")), "6.12.25-v8-16k+ aarch64");
    assert_eq!(b.eval(&fact("CPU %")), "20.0");
    let seen_before = b.eval("return Number(document.getElementById('last-seen').dataset.ms)");
    b.eval("window.__marker = 11; return true");

    // The agent restarts on another kernel with other probes, then reports.
    let mut next = birth_of("pi-live", 2);
    next.kernel_release = bounded("6.6.74-v8+");
    next.page_size = 4096;
    next.kernel_btf = true;
    next.probes[1].state = ProbeState::Attached;
    next.probes.push(ProbeInfo {
        name: bounded("oom_kill"),
        tracepoint: bounded("oom:mark_victim"),
        state: ProbeState::Skipped {
            reason: bounded("tracepoint missing"),
        },
        method: AttachMethod::Tracepoint,
    });
    sim.publish(
        "edge/pi-live/status",
        encode(&Message::Online(next)).expect("encode"),
        true,
    );
    sim.publish(
        "edge/pi-live/metrics",
        metrics("pi-live", T0_MS + 10_000, 35.0, 52.5),
        false,
    );
    sim.publish(
        "edge/pi-live/events",
        batch("pi-live", 0, vec![exit(5, 0), exit(6, 1)], &[]),
        false,
    );
    b.wait_true(
        "the new birth, sample and events in the facts",
        &format!(
            "{FACT} return f('Kernel') === '6.6.74-v8+ aarch64' && f('CPU %') === '35.0' && f('Events').startsWith('2 ')"
        ),
    );
    let facts = b.eval(&format!(
        "{FACT} return ['Agent', 'Kernel', 'Page size', 'BTF', 'Session / run', 'CPU %', \
         'Temperatures °C', 'Events'].map(f)"
    ));
    assert_eq!(
        facts,
        json!([
            "0.1.0",
            "6.6.74-v8+ aarch64",
            "4096",
            "true",
            "2 / 77",
            "35.0",
            "cpu_thermal 52.5",
            "2 (exit 2)"
        ])
    );
    let probes = b.eval(
        "return Array.from(document.querySelectorAll('#probes tbody tr')).map(tr => \
         Array.from(tr.cells).map(td => td.textContent))",
    );
    assert_eq!(
        probes,
        json!([
            ["exec", "attached", ""],
            ["bind_exit", "attached", ""],
            ["oom_kill", "skipped", "tracepoint missing"]
        ])
    );
    let seen_after = b.eval("return Number(document.getElementById('last-seen').dataset.ms)");
    assert!(
        seen_after.as_i64() > seen_before.as_i64(),
        "last seen moved: {seen_before} -> {seen_after}"
    );
    assert_eq!(
        b.eval("return window.__marker"),
        11,
        "the page was not reloaded"
    );
    b.screenshot(&artefacts(), "device-facts");
    drop(b);
    let (status, log) = hub.stop();
    assert!(status.success(), "{log}");
}
