//! Terminal-safe text: every string a device sent (process names, file names, socket paths,
//! device ids, probe names, reasons, ...) is shown with control characters escaped, so a
//! process named `"x\n... ONLINE"` or `"\x1b[31m"` can neither forge a line nor colour or move
//! the cursor on the operator's terminal. JSON output needs none of this (serde_json escapes).

use std::{borrow::Cow, fmt::Write as _};

/// `s` with C0 controls, DEL, C1 controls and the invisible bidirectional-text controls
/// escaped (`\n`, `\r`, `\t`, `\x1b`, `\x7f`, `\u{9b}`, `\u{202e}`, ...), and a backslash
/// doubled so an escape cannot be faked either. Borrowed when nothing needs escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x80 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    // `is_control` is exactly C0 (U+0000..U+001F), DEL (U+007F) and C1 (U+0080..U+009F).
    c == '\\'
        || c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_escape_sequences_are_escaped() {
        assert_eq!(escape("nginx"), "nginx");
        assert!(matches!(escape("/usr/sbin/nginx"), Cow::Borrowed(_)));
        assert_eq!(escape("a\nb"), "a\\nb");
        assert_eq!(escape("\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(escape("\r\t\0\x7f"), "\\r\\t\\x00\\x7f");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}txt.exe"), "abc\\u{202e}txt.exe");
        assert_eq!(escape("C:\\x1b"), "C:\\\\x1b");
        assert_eq!(escape("é ü 日本"), "é ü 日本");
    }
}
