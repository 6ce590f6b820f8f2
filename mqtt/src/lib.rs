//! The fleet's MQTT connection settings, shared by the agent and the hub: [`parse_url`] reads a
//! broker URL (`mqtt://host[:port]`, `mqtts://host[:port]`, IPv6 in brackets) and
//! [`Link::options`] builds `rumqttc` options from a URL, a client id, credentials and TLS
//! files (rustls with the ring provider; CA from a PEM file; optional client certificate for
//! mutual TLS). Errors are typed and name the setting they are about. [`tls_failure`] finds the
//! TLS error inside a failed connection attempt.

mod failure;
mod link;
mod url;

pub use failure::tls_failure;

pub use link::{
    DEFAULT_KEEP_ALIVE, Link, LinkError, MAX_CLIENT_ID, MAX_PACKET_BYTES, Setting, tls_config,
};
pub use url::{Broker, UrlError, default_port, parse_url};
