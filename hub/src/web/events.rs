//! The history page: a form (device, kind, since, until, limit) and the matching stored
//! records, newest first. The form's values come back escaped; an unreadable time is shown as
//! an error above the form instead of a result.

use std::fmt::Write as _;

use super::{Ctx, esc, layout, pct};
use crate::{history::describe, store::Record, timespec};

/// The form's values as the operator typed them.
#[derive(Clone, Debug, Default)]
pub struct Form {
    pub device: String,
    pub kind: String,
    pub since: String,
    pub until: String,
    pub limit: String,
}

fn input(out: &mut String, label: &str, name: &str, value: &str, hint: &str) {
    let _ = write!(
        out,
        "<label>{label} <input name=\"{name}\" id=\"q-{name}\" value=\"{}\" placeholder=\"{hint}\"></label> ",
        esc(value)
    );
}

/// The page; `result` is the records found, or why the query could not run.
pub fn page(ctx: &Ctx, form: &Form, result: &Result<Vec<Record>, String>) -> String {
    let mut main = String::new();
    if let Err(e) = result {
        let _ = write!(main, "<p class=\"error\" id=\"error\">{}</p>", esc(e));
    }
    main.push_str("<form class=\"filters\" method=\"get\" action=\"/events\">");
    input(&mut main, "Device", "device", &form.device, "exact id");
    input(
        &mut main,
        "Kind",
        "kind",
        &form.kind,
        "exec, exit, bind, status, gap, drops",
    );
    input(
        &mut main,
        "Since",
        "since",
        &form.since,
        "1h, 2026-03-01T12:00:00Z",
    );
    input(&mut main, "Until", "until", &form.until, "now");
    input(&mut main, "Limit", "limit", &form.limit, "200");
    if let Some(t) = ctx.token {
        let _ = write!(
            main,
            "<input type=\"hidden\" name=\"token\" value=\"{}\">",
            esc(t)
        );
    }
    main.push_str("<button>Search</button></form>");
    if let Ok(records) = result {
        let _ = write!(
            main,
            "<p id=\"found\">{} records, newest first.</p><table id=\"history\"><thead><tr><th>Time</th><th>Device</th><th>Kind</th><th>What</th></tr></thead><tbody>",
            records.len()
        );
        for r in records.iter().rev() {
            let _ = write!(
                main,
                "<tr data-kind=\"{k}\"><td>{t}</td><td><a href=\"{href}\">{d}</a></td><td>{k}</td><td class=\"text\">{x}</td></tr>",
                t = esc(&timespec::format(r.ts_ms)),
                d = esc(&r.device),
                href = ctx.href(&format!("/device/{}", pct(&r.device))),
                k = esc(&r.kind),
                x = esc(&describe(r)),
            );
        }
        main.push_str("</tbody></table>");
    }
    layout(ctx, "History", "events", &[], &main)
}
