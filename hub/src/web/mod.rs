//! The web view's pages, rendered on the server as HTML strings: the fleet table ([`fleet`]),
//! a device's page ([`device`]) and the history search ([`events`]), in one [`layout`]. Every
//! string that came from a device goes through [`esc`] (text and double-quoted attributes) or
//! [`pct`] (URL path and query parts); the script (`assets/app.js`) only ever sets
//! `textContent`. The assets are compiled into the binary ([`ASSETS`]).

pub mod device;
pub mod events;
pub mod fleet;

use std::{borrow::Cow, fmt::Write as _};

/// Path, content type and bytes of every static asset.
pub const ASSETS: [(&str, &str, &str); 2] = [
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
    (
        "/assets/style.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/style.css"),
    ),
];

/// The pages' Content-Security-Policy: scripts and styles only from the hub itself, no inline
/// script, no other origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `s` safe in HTML text and in double- or single-quoted attribute values.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` percent-encoded for a URL path segment or a query value (unreserved bytes kept).
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What every page needs: the access token to carry in links (when the operator came with
/// `?token=`) and the hub's clock.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub token: Option<&'a str>,
    pub now_ms: i64,
}

impl Ctx<'_> {
    /// `path` with the token appended, escaped for an attribute.
    pub fn href(&self, path: &str) -> String {
        let full = match self.token {
            Some(t) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!("{path}{sep}token={}", pct(t))
            }
            None => path.to_owned(),
        };
        esc(&full).into_owned()
    }
}

/// A whole page: `page` names it for the script (`data-page`), `data` are more `data-*`
/// attributes of the body (escaped here), `main` is the already-escaped content.
pub fn layout(ctx: &Ctx, title: &str, page: &str, data: &[(&str, &str)], main: &str) -> String {
    let mut attrs = String::new();
    for (k, v) in data {
        let _ = write!(attrs, " data-{k}=\"{}\"", esc(v));
    }
    if let Some(t) = ctx.token {
        let _ = write!(attrs, " data-token=\"{}\"", esc(t));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\
         <body data-page=\"{page}\"{attrs}><header><nav><a href=\"{fleet}\">Fleet</a> \
         <a href=\"{events}\">History</a> <a href=\"{metrics}\">Prometheus</a></nav>\
         <h1>{title}</h1></header><main>{main}</main></body></html>\n",
        title = esc(title),
        fleet = ctx.href("/"),
        events = ctx.href("/events"),
        metrics = ctx.href("/metrics"),
    )
}

/// `12 s ago`, `3 min ago`, `never`.
pub fn age(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= 0 {
        return "never".into();
    }
    let s = (now_ms - then_ms).max(0) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// `12.5`, or `—` for nothing.
pub fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.digits$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_urls_are_escaped() {
        assert_eq!(
            esc("<img src=x onerror=\"alert('1')\">&"),
            "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;"
        );
        assert!(matches!(esc("pi-0042"), Cow::Borrowed(_)));
        assert_eq!(pct("pi 1/é?&"), "pi%201%2F%C3%A9%3F%26");
        let ctx = Ctx {
            token: Some("a&b\""),
            now_ms: 0,
        };
        assert_eq!(ctx.href("/x?y=1"), "/x?y=1&amp;token=a%26b%22");
        assert_eq!(age(100_000, 40_000), "1 min ago");
        assert_eq!(age(100_000, 99_000), "1 s ago");
        assert_eq!(age(100_000, 0), "never");
        assert_eq!(
            (num(Some(1.25), 1), num(None, 1)),
            ("1.2".into(), "—".into())
        );
    }
}
