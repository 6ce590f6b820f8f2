//! A device's page: its status, what its last birth said (agent, kernel, page size, BTF,
//! rings, each probe's fate), its last sample and delivery counts, all kept current by the
//! live stream ([`live_json`]), charts of its recent metrics (drawn by the script from
//! `/api/metrics`), and its event feed: the latest stored records, then live ones as they
//! arrive, filterable by kind.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Ctx, age, esc, fleet, layout, num, pct};
use crate::{
    fleet::{DeviceState, DeviceView},
    history::describe,
    store::{DROPS, GAP, Record, STATUS},
    timespec,
};

/// The charts: element id suffix and caption.
pub const CHARTS: [(&str, &str); 4] = [
    ("cpu", "CPU %"),
    ("mem", "Memory used %"),
    ("temp", "Hottest sensor °C"),
    ("rss", "Agent RSS MiB"),
];

/// The facts table: key (`data-fact`, and the live stream's name for it), heading and text,
/// in table order. The server renders them and the live stream sends them again whenever the
/// device changes, so the page and the stream always agree.
pub fn facts(st: &DeviceState, v: &DeviceView) -> Vec<(&'static str, &'static str, String)> {
    let b = st.birth.as_ref().unwrap_or(&Value::Null);
    let s = |k: &str| match &b[k] {
        Value::Null => "—".to_owned(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    };
    let rings: Vec<String> = b["ring_buffers"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let how = match r["transport"].get("Perf") {
                        Some(p) => format!(
                            " per CPU (perf, {} pages x {} CPUs)",
                            p["pages_per_cpu"], p["cpus"]
                        ),
                        None => String::new(),
                    };
                    format!(
                        "{} {} -> {}{how}",
                        r["name"].as_str().unwrap_or("?"),
                        r["requested"],
                        r["chosen"]
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let load = v.load.map_or_else(
        || "—".into(),
        |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]),
    );
    let temps: Vec<String> = v
        .temperatures
        .iter()
        .map(|(l, c)| format!("{l} {c:.1}"))
        .collect();
    let kinds: Vec<String> = v
        .events_by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let drops: Vec<String> = v.drops.iter().map(|(s, n)| format!("{s}={n}")).collect();
    vec![
        ("agent", "Agent", s("agent_version")),
        (
            "kernel",
            "Kernel",
            format!("{} {}", s("kernel_release"), s("arch")),
        ),
        ("page_size", "Page size", s("page_size")),
        ("btf", "BTF", s("kernel_btf")),
        ("boot_id", "Boot id", s("boot_id")),
        (
            "session",
            "Session / run",
            format!("{} / {}", s("session"), s("run_id")),
        ),
        ("rings", "Ring buffers", rings.join(", ")),
        ("cpu", "CPU %", num(v.cpu_percent, 1)),
        ("mem", "Memory", fleet::memory(v)),
        ("load", "Load", load),
        ("temps", "Temperatures °C", temps.join(", ")),
        (
            "rss",
            "Agent RSS KiB",
            v.agent_rss_kib
                .map_or_else(|| "—".into(), |k| k.to_string()),
        ),
        (
            "events",
            "Events",
            format!("{} ({})", v.events, kinds.join(", ")),
        ),
        (
            "drops",
            "Drops",
            format!("{} {}", v.drops_total, drops.join(" ")),
        ),
        (
            "batches",
            "Missing / duplicate batches",
            format!("{} / {}", v.missing_batches, v.duplicate_batches),
        ),
    ]
}

/// When the status last changed, as the page shows it.
fn since(v: &DeviceView) -> String {
    if v.status_since_ms > 0 {
        timespec::format(v.status_since_ms)
    } else {
        "—".into()
    }
}

/// The device stream's `device` item: the fleet row ([`fleet::row_json`]) with the page's
/// facts, probes and status time, all as text.
pub fn live_json(st: &DeviceState, now_ms: i64) -> Value {
    let v = DeviceView::of(st, now_ms);
    let mut out = fleet::row_json(&v, now_ms);
    let facts: serde_json::Map<String, Value> = facts(st, &v)
        .into_iter()
        .map(|(k, _, t)| (k.to_owned(), Value::String(t)))
        .collect();
    out["facts"] = Value::Object(facts);
    out["probes"] = json!(v.probes);
    out["status_since"] = Value::String(since(&v));
    out
}

fn facts_html(st: &DeviceState, v: &DeviceView) -> String {
    let mut out = String::from("<table class=\"facts\" id=\"facts\">");
    for (key, name, value) in facts(st, v) {
        let _ = write!(
            out,
            "<tr data-fact=\"{key}\"><th>{}</th><td>{}</td></tr>",
            esc(name),
            esc(&value)
        );
    }
    out.push_str("</table><h2>Probes</h2><table class=\"probes\" id=\"probes\"><thead><tr><th>Probe</th><th>State</th><th>Reason</th></tr></thead><tbody id=\"probe-rows\">");
    for p in &v.probes {
        let _ = write!(
            out,
            "<tr class=\"{st}\"><td>{}</td><td>{st}</td><td>{}</td></tr>",
            esc(&p.name),
            esc(p.reason.as_deref().unwrap_or("")),
            st = esc(&p.state),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// One feed row (newest rows go first).
pub fn feed_row(r: &Record, out: &mut String) {
    let _ = write!(
        out,
        "<tr data-kind=\"{k}\"><td>{t}</td><td>{k}</td><td class=\"text\">{x}</td></tr>",
        t = esc(&timespec::format(r.ts_ms)),
        k = esc(&r.kind),
        x = esc(&describe(r)),
    );
}

/// The page for `st`, with `recent` records oldest first.
pub fn page(ctx: &Ctx, st: &DeviceState, recent: &[Record]) -> String {
    let v = DeviceView::of(st, ctx.now_ms);
    let mut main = format!(
        "<p class=\"state\">Status <span id=\"status\" class=\"badge {cls}\">{status}</span> \
         since <span id=\"status-since\">{since}</span>; last seen \
         <span id=\"last-seen\" data-ms=\"{seen_ms}\">{seen}</span>. \
         <a href=\"{hist}\">History of this device</a></p>",
        cls = v.status,
        status = esc(&fleet::status(&v)),
        since = esc(&since(&v)),
        seen_ms = v.last_seen_ms,
        seen = esc(&age(ctx.now_ms, v.last_seen_ms)),
        hist = ctx.href(&format!("/events?device={}", pct(&v.device))),
    );
    main.push_str("<section class=\"charts\" id=\"charts\">");
    for (id, caption) in CHARTS {
        let _ = write!(
            main,
            "<figure><figcaption>{caption} <span class=\"last\" id=\"last-{id}\"></span></figcaption>\
             <svg id=\"chart-{id}\" class=\"chart\" viewBox=\"0 0 600 150\" preserveAspectRatio=\"none\" role=\"img\"></svg></figure>"
        );
    }
    main.push_str("</section><section class=\"split\"><div><h2>Live events</h2>");
    main.push_str("<form class=\"filters\" id=\"feed-filter\"><label>Kind <select id=\"feed-kind\"><option value=\"\">all</option>");
    let mut kinds: Vec<&str> = v.events_by_kind.keys().map(String::as_str).collect();
    for k in ["bind", "exec", "exit", STATUS, GAP, DROPS] {
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    kinds.sort_unstable();
    for k in kinds {
        let _ = write!(main, "<option>{}</option>", esc(k));
    }
    main.push_str("</select></label> <span id=\"feed-state\">connecting…</span></form>");
    main.push_str("<table id=\"feed\"><thead><tr><th>Time</th><th>Kind</th><th>What</th></tr></thead><tbody id=\"feed-rows\">");
    for r in recent.iter().rev() {
        feed_row(r, &mut main);
    }
    main.push_str("</tbody></table></div><div><h2>Device</h2>");
    main.push_str(&facts_html(st, &v));
    main.push_str("</div></section>");
    layout(ctx, &v.device, "device", &[("device", &v.device)], &main)
}
