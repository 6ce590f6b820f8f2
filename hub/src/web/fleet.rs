//! The fleet table: one row per device with its status, last seen, agent, kernel, page size,
//! BTF, probe states, CPU, memory, temperature, throttling, events, drops and gaps. The same
//! [`cells`] fill the rows on the server and, through the live fleet stream, update them in
//! the browser (which sets each cell's text), so both always agree.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Ctx, age, esc, layout, num, pct};
use crate::fleet::DeviceView;

/// Column key and heading, in table order (the device column is a link, not a cell).
pub const COLUMNS: [(&str, &str); 15] = [
    ("status", "Status"),
    ("last_seen", "Last seen"),
    ("agent", "Agent"),
    ("kernel", "Kernel"),
    ("page", "Page size"),
    ("btf", "BTF"),
    ("probes", "Probes"),
    ("cpu", "CPU %"),
    ("mem", "Memory"),
    ("temp", "Temp °C"),
    ("throttled", "Throttling"),
    ("events", "Events"),
    ("drops", "Drops"),
    ("gaps", "Missing batches"),
    ("dups", "Duplicates"),
];

fn text(v: Option<&String>) -> String {
    v.cloned().unwrap_or_else(|| "—".into())
}

/// `1.0 / 3.8 GiB (26 %)`.
pub fn memory(v: &DeviceView) -> String {
    match (v.mem_used_kib, v.mem_total_kib) {
        (Some(u), Some(t)) if t > 0 => format!(
            "{:.1} / {:.1} GiB ({:.0} %)",
            u as f64 / 1_048_576.0,
            t as f64 / 1_048_576.0,
            u as f64 * 100.0 / t as f64
        ),
        _ => "—".into(),
    }
}

/// `online`, `offline (Shutdown)`, `unknown`.
pub fn status(v: &DeviceView) -> String {
    match &v.offline_cause {
        Some(cause) if v.status == "offline" => format!("offline ({cause})"),
        _ => v.status.to_owned(),
    }
}

/// The text of each column for `v`, unescaped (the caller escapes or sets text nodes).
pub fn cells(v: &DeviceView, now_ms: i64) -> Vec<(&'static str, String)> {
    let drops = if v.drops.is_empty() {
        "0".to_owned()
    } else {
        let by: Vec<String> = v.drops.iter().map(|(s, n)| format!("{s}={n}")).collect();
        format!("{} ({})", v.drops_total, by.join(" "))
    };
    let values = [
        status(v),
        age(now_ms, v.last_seen_ms),
        text(v.agent_version.as_ref()),
        match (&v.kernel, &v.arch) {
            (Some(k), Some(a)) => format!("{k} {a}"),
            (k, _) => text(k.as_ref()),
        },
        v.page_size.map_or_else(|| "—".into(), |p| p.to_string()),
        v.btf
            .map_or("—", |b| if b { "yes" } else { "no" })
            .to_owned(),
        if v.probes.is_empty() {
            "—".into()
        } else {
            v.probe_summary()
        },
        num(v.cpu_percent, 1),
        memory(v),
        num(v.temperature_c, 1),
        v.throttled.clone().unwrap_or_else(|| "—".into()),
        v.events.to_string(),
        drops,
        v.missing_batches.to_string(),
        v.duplicate_batches.to_string(),
    ];
    COLUMNS.iter().map(|(k, _)| *k).zip(values).collect()
}

/// The live stream's record for one device: id, status, last seen and every cell's text.
pub fn row_json(v: &DeviceView, now_ms: i64) -> Value {
    let cells: serde_json::Map<String, Value> = cells(v, now_ms)
        .into_iter()
        .map(|(k, t)| (k.to_owned(), Value::String(t)))
        .collect();
    json!({"device": v.device, "status": v.status, "last_seen_ms": v.last_seen_ms, "cells": cells})
}

fn row(ctx: &Ctx, v: &DeviceView, out: &mut String) {
    let _ = write!(
        out,
        "<tr data-device=\"{id}\" data-status=\"{st}\" class=\"{st}\"><td data-col=\"device\"><a href=\"{href}\">{id}</a></td>",
        id = esc(&v.device),
        st = v.status,
        href = ctx.href(&format!("/device/{}", pct(&v.device))),
    );
    for (k, t) in cells(v, ctx.now_ms) {
        let extra = if k == "last_seen" {
            format!(" data-ms=\"{}\"", v.last_seen_ms)
        } else {
            String::new()
        };
        let _ = write!(out, "<td data-col=\"{k}\"{extra}>{}</td>", esc(&t));
    }
    out.push_str("</tr>");
}

/// The fleet page; `filter` is the device filter given in the URL (shown in the form),
/// `version` the fleet's version the rows show (the live stream continues from it).
pub fn page(ctx: &Ctx, devices: &[DeviceView], filter: &str, version: u64) -> String {
    let online = devices.iter().filter(|d| d.status == "online").count();
    let offline = devices.iter().filter(|d| d.status == "offline").count();
    let mut main = format!(
        "<form id=\"filters\" class=\"filters\" method=\"get\" action=\"/\">\
         <label>Device <input id=\"filter-device\" name=\"device\" value=\"{f}\" placeholder=\"part of an id\"></label> \
         <label>Status <select id=\"filter-status\" name=\"status\"><option value=\"\">any</option>\
         <option>online</option><option>offline</option><option>unknown</option></select></label> \
         {tok}<button>Filter</button></form>\
         <p id=\"summary\"><span id=\"count-devices\">{n}</span> devices: \
         <span id=\"count-online\">{online}</span> online, <span id=\"count-offline\">{offline}</span> offline.</p>\
         <table id=\"fleet\"><thead><tr><th>Device</th>",
        f = esc(filter),
        n = devices.len(),
        tok = ctx.token.map_or_else(String::new, |t| format!(
            "<input type=\"hidden\" name=\"token\" value=\"{}\">",
            esc(t)
        )),
    );
    for (_, title) in COLUMNS {
        let _ = write!(main, "<th>{title}</th>");
    }
    main.push_str("</tr></thead><tbody id=\"fleet-rows\">");
    for v in devices {
        row(ctx, v, &mut main);
    }
    main.push_str("</tbody></table>");
    layout(
        ctx,
        "Fleet",
        "fleet",
        &[("filter", filter), ("version", &version.to_string())],
        &main,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::DeviceState;

    #[test]
    fn rows_escape_device_strings_and_cells_agree_with_the_stream() {
        let st = DeviceState {
            device: "<b>x\"</b>".into(),
            online: Some(false),
            offline_cause: Some("Shutdown".into()),
            drops: [("queue".to_owned(), 2), ("ring:exec".to_owned(), 3)].into(),
            ..DeviceState::default()
        };
        let v = DeviceView::of(&st, 0);
        let ctx = Ctx {
            token: None,
            now_ms: 0,
        };
        let html = page(&ctx, std::slice::from_ref(&v), "<script>", 9);
        assert!(
            !html.contains("<b>") && !html.contains("<script>"),
            "{html}"
        );
        assert!(html.contains(
            "<tr data-device=\"&lt;b&gt;x&quot;&lt;/b&gt;\" data-status=\"offline\" class=\"offline\"><td data-col=\"device\"><a href=\"/device/%3Cb%3Ex%22%3C%2Fb%3E\">&lt;b&gt;x&quot;&lt;/b&gt;</a></td><td data-col=\"status\">offline (Shutdown)</td>"
        ));
        assert!(html.contains("data-filter=\"&lt;script&gt;\" data-version=\"9\""));
        let row = row_json(&v, 0);
        assert_eq!(row["cells"]["drops"], "5 (queue=2 ring:exec=3)");
        assert_eq!(row["cells"]["last_seen"], "never");
        assert_eq!(row["cells"]["cpu"], "—");
    }
}
