//! Broker URLs: `mqtt://host[:port]` (plain, port 1883) and `mqtts://host[:port]` (TLS, port
//! 8883). An IPv6 literal is written in brackets (`mqtt://[::1]:1884`). Nothing else is
//! accepted: no user info, path, query or fragment, so a typo cannot silently become part of a
//! host name.

use std::{fmt, net::Ipv6Addr, str::FromStr};

/// Where a broker URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    /// `mqtts://`: connect with TLS.
    pub tls: bool,
    /// A host name or IP address; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
}

/// Why a broker URL was refused. Each variant carries the URL as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{url:?} must start with mqtt:// or mqtts://")]
    Scheme { url: String },
    #[error("{url:?} has no host")]
    NoHost { url: String },
    #[error("{url:?} has a bad host {host:?}: {reason}")]
    BadHost {
        url: String,
        host: String,
        reason: &'static str,
    },
    #[error("{url:?} has a bad port {port:?} (1 to 65535)")]
    BadPort { url: String, port: String },
}

/// The port a scheme implies.
pub const fn default_port(tls: bool) -> u16 {
    if tls { 8883 } else { 1883 }
}

/// Parses a broker URL (see the module comment).
pub fn parse_url(url: &str) -> Result<Broker, UrlError> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| UrlError::Scheme { url: url.into() })?;
    let tls = match url[..scheme_end].to_ascii_lowercase().as_str() {
        "mqtt" => false,
        "mqtts" => true,
        _ => return Err(UrlError::Scheme { url: url.into() }),
    };
    // One trailing slash is harmless (`mqtt://h:1883/`).
    let authority = &url[scheme_end + 3..];
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let bad_host = |host: &str, reason| UrlError::BadHost {
        url: url.into(),
        host: host.into(),
        reason,
    };
    if let Some(c) = authority
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control())
    {
        return Err(bad_host(
            authority,
            match c {
                '/' | '?' | '#' => "a broker URL has no path, query or fragment",
                '@' => "credentials go in their own settings, not in the URL",
                _ => "not a host name",
            },
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (inside, after) = bracketed
            .split_once(']')
            .ok_or_else(|| bad_host(authority, "no closing bracket"))?;
        if inside.parse::<Ipv6Addr>().is_err() {
            return Err(bad_host(inside, "not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad_host(authority, "text after the bracketed address"))?,
            ),
        };
        (inside, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) if p.contains(':') => {
                return Err(bad_host(
                    &format!("{h}:{p}"),
                    "an IPv6 address needs brackets",
                ));
            }
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost { url: url.into() });
    }
    if host.contains(['[', ']']) {
        return Err(bad_host(host, "not a host name"));
    }
    let port = match port {
        None => default_port(tls),
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(UrlError::BadPort {
                    url: url.into(),
                    port: p.into(),
                });
            }
        },
    };
    Ok(Broker {
        tls,
        host: host.to_owned(),
        port,
    })
}

impl FromStr for Broker {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_url(s)
    }
}

impl fmt::Display for Broker {
    /// The URL again, always with its port: `mqtts://[::1]:8883`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(tls: bool, host: &str, port: u16) -> Broker {
        Broker {
            tls,
            host: host.into(),
            port,
        }
    }

    #[test]
    fn urls_parse_with_default_ports() {
        // The agent's former `MqttConfig::broker` cases first.
        assert_eq!(parse_url("mqtt://h"), Ok(broker(false, "h", 1883)));
        assert_eq!(parse_url("mqtts://h:9000/"), Ok(broker(true, "h", 9000)));
        assert_eq!(parse_url("mqtts://h").map(|b| b.port), Ok(8883));
        assert_eq!(
            parse_url("mqtt://[::1]:1884"),
            Ok(broker(false, "::1", 1884))
        );
        assert_eq!(parse_url("mqtt://[::1]"), Ok(broker(false, "::1", 1883)));
        assert_eq!(
            parse_url("mqtts://[fe80::2]/"),
            Ok(broker(true, "fe80::2", 8883))
        );
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883"),
            Ok(broker(false, "127.0.0.1", 1883))
        );
        assert_eq!(
            parse_url("MQTTS://broker.lan:8884"),
            Ok(broker(true, "broker.lan", 8884))
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let url = |u: &str| u.to_owned();
        assert_eq!(
            parse_url("mqtt://:1883"),
            Err(UrlError::NoHost {
                url: url("mqtt://:1883")
            })
        );
        assert_eq!(
            parse_url("mqtt://[]:1883"),
            Err(UrlError::BadHost {
                url: url("mqtt://[]:1883"),
                host: "".into(),
                reason: "not an IPv6 address"
            })
        );
        for u in ["tcp://h", "http://x", "h:1883", "mqtt:/h", ""] {
            assert_eq!(parse_url(u), Err(UrlError::Scheme { url: url(u) }), "{u}");
        }
        for (u, port) in [
            ("mqtt://h:notaport", "notaport"),
            ("mqtt://h:", ""),
            ("mqtt://h:0", "0"),
            ("mqtt://h:65536", "65536"),
            ("mqtt://h:+1", "+1"),
            ("mqtt://[::1]:x", "x"),
        ] {
            assert_eq!(
                parse_url(u),
                Err(UrlError::BadPort {
                    url: url(u),
                    port: port.into()
                }),
                "{u}"
            );
        }
        let reason = |u: &str| match parse_url(u) {
            Err(UrlError::BadHost { reason, .. }) => reason,
            other => panic!("{u}: {other:?}"),
        };
        assert_eq!(reason("mqtt://::1"), "an IPv6 address needs brackets");
        assert_eq!(reason("mqtt://[::1"), "no closing bracket");
        assert_eq!(
            reason("mqtt://[::1]1883"),
            "text after the bracketed address"
        );
        assert_eq!(reason("mqtt://[nope]:1"), "not an IPv6 address");
        assert_eq!(
            reason("mqtt://h/path"),
            "a broker URL has no path, query or fragment"
        );
        assert_eq!(
            reason("mqtt://user:pw@h"),
            "credentials go in their own settings, not in the URL"
        );
        assert_eq!(reason("mqtt://a b"), "not a host name");
        assert_eq!(
            parse_url("ftp://x").map_err(|e| e.to_string()),
            Err("\"ftp://x\" must start with mqtt:// or mqtts://".to_owned())
        );
    }

    #[test]
    fn display_gives_the_url_back_with_its_port() {
        for (u, shown) in [
            ("mqtt://h", "mqtt://h:1883"),
            ("mqtts://[::1]", "mqtts://[::1]:8883"),
            ("mqtts://10.0.0.2:9000/", "mqtts://10.0.0.2:9000"),
        ] {
            let b: Broker = u.parse().expect(u);
            assert_eq!(b.to_string(), shown);
            assert_eq!(parse_url(shown), Ok(b));
        }
    }
}
