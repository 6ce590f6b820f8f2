//! The command line (clap derive): the modes (`hub`, `hub bridge`, `hub serve`, `hub query`,
//! `hub rebirth <device>`, `hub forget <device>`), the connection flags shared by all of them,
//! the Home Assistant flags ([`HaArgs`]), and turning those flags into an `edge_mqtt::Link`.
//! Every error names the flag (or environment variable) to fix.

mod serve_args;

pub use serve_args::{QueryArgs, ServeArgs, TOKEN_ENV, check_listen};

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use edge_mqtt::{Link, LinkError, Setting};

/// Where the password comes from when `--password-file` is not given.
pub const PASSWORD_ENV: &str = "HUB_MQTT_PASSWORD";

/// Subscribes to PREFIX/+/#, decodes the agents' messages and prints them (text or JSON lines),
/// with per-device delivery totals on exit.
#[derive(Debug, Parser)]
#[command(name = "hub", version)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub conn: Conn,
    /// Print JSON lines instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Keep a persistent MQTT session under --client-id (clean session off): the broker queues
    /// QoS 1 messages for the hub while it is disconnected, so a hub restart or a network blip
    /// misses nothing (as long as the broker keeps the session).
    #[arg(long, global = true, requires = "client_id")]
    pub persistent_session: bool,
    /// Also print the per-device totals every SECONDS (they are always printed on exit).
    #[arg(long, global = true, value_name = "SECONDS", value_parser = seconds)]
    pub totals_every: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Also republish every decoded message as JSON on BRIDGE_PREFIX/<device>/<leaf>, and
    /// announce each device to Home Assistant (MQTT discovery) unless --no-ha.
    Bridge {
        /// Default: PREFIX-json.
        #[arg(long, value_name = "BRIDGE_PREFIX", value_parser = topic_level)]
        bridge_prefix: Option<String>,
        #[command(flatten)]
        ha: HaArgs,
    },
    /// One long-running process: decode, store the history (SQLite under --data-dir), serve the
    /// web view, the JSON API and Prometheus metrics on --listen, and bridge JSON.
    Serve(ServeArgs),
    /// Print stored history (from the database of `hub serve`, which may be running).
    Query(QueryArgs),
    /// Ask a device's agent to publish its birth again (QoS 1 on PREFIX/DEVICE/cmd/rebirth),
    /// and exit once the broker acknowledged it.
    Rebirth {
        #[arg(value_parser = topic_level)]
        device: String,
        /// Give up after SECONDS without the broker's acknowledgement.
        #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
        timeout: Duration,
    },
    /// Decommission a device: remove it from Home Assistant (empty retained discovery config)
    /// and clear its retained topics (the bridge's status, availability and summary, and the
    /// agent's PREFIX/DEVICE/status). Stop the device's agent first, or it announces itself
    /// again. Exits once the broker acknowledged every message.
    Forget {
        #[arg(value_parser = topic_level)]
        device: String,
        /// Default: PREFIX-json.
        #[arg(long, value_name = "BRIDGE_PREFIX", value_parser = topic_level)]
        bridge_prefix: Option<String>,
        /// Home Assistant's discovery prefix.
        #[arg(long, value_name = "PREFIX", default_value = edge_hub::ha::DEFAULT_DISCOVERY_PREFIX, value_parser = topic_level)]
        ha_prefix: String,
        /// Give up after SECONDS without the broker's acknowledgement.
        #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = seconds)]
        timeout: Duration,
    },
}

/// Home Assistant MQTT discovery, for the modes that bridge.
#[derive(Debug, Args)]
pub struct HaArgs {
    /// Home Assistant's discovery prefix (configs go to PREFIX/device/<device>/config, and
    /// PREFIX/status announces Home Assistant).
    #[arg(long, value_name = "PREFIX", default_value = edge_hub::ha::DEFAULT_DISCOVERY_PREFIX, value_parser = topic_level)]
    pub ha_prefix: String,
    /// Do not publish Home Assistant discovery.
    #[arg(long, conflicts_with = "ha_prefix")]
    pub no_ha: bool,
}

impl HaArgs {
    /// The discovery settings, or `None` with --no-ha.
    pub fn settings(&self, bridge_prefix: &str) -> anyhow::Result<Option<edge_hub::ha::Settings>> {
        if self.no_ha {
            return Ok(None);
        }
        edge_hub::ha::Settings::new(&self.ha_prefix, bridge_prefix)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--ha-prefix/--bridge-prefix: {e}"))
    }
}

/// How to reach the broker.
#[derive(Debug, Args)]
pub struct Conn {
    /// mqtt://HOST[:PORT] (default port 1883) or mqtts://HOST[:PORT] (8883; needs --ca-file).
    #[arg(long, global = true, value_name = "URL", default_value = "mqtt://127.0.0.1:1883", value_parser = broker_url)]
    pub broker: String,
    /// Topic prefix of the fleet.
    #[arg(long, global = true, value_name = "PREFIX", default_value = "edge", value_parser = topic_level)]
    pub prefix: String,
    /// PEM CA bundle the broker's certificate must chain to (mqtts://).
    #[arg(long, global = true, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// MQTT user name.
    #[arg(long, global = true, value_name = "NAME")]
    pub username: Option<String>,
    /// File holding the MQTT password (a trailing newline is dropped); without it the password
    /// is read from the HUB_MQTT_PASSWORD environment variable, if set.
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with --client-key).
    #[arg(long, global = true, value_name = "PEM")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, global = true, value_name = "PEM")]
    pub client_key: Option<PathBuf>,
    /// MQTT client id (default: edge-hub-<pid>, or edge-hub-rebirth-<pid> for rebirth).
    #[arg(long, global = true, value_name = "ID")]
    pub client_id: Option<String>,
}

impl Conn {
    /// The connection settings, the password read from its file or the environment.
    pub fn link(&self, default_client_id: String) -> anyhow::Result<Link> {
        let env = std::env::var(PASSWORD_ENV).ok();
        self.link_with_env(default_client_id, env)
    }

    fn link_with_env(
        &self,
        default_client_id: String,
        env: Option<String>,
    ) -> anyhow::Result<Link> {
        let password = match &self.password_file {
            Some(path) => Some(read_password(path)?),
            None => env.filter(|p| !p.is_empty()),
        };
        if password.is_some() && self.username.is_none() {
            let from = if self.password_file.is_some() {
                "--password-file"
            } else {
                PASSWORD_ENV
            };
            bail!("{from} gives a password but --username is missing");
        }
        Ok(Link {
            url: self.broker.clone(),
            client_id: self.client_id.clone().unwrap_or(default_client_id),
            username: self.username.clone(),
            password,
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            keep_alive: edge_mqtt::DEFAULT_KEEP_ALIVE,
        })
    }
}

/// The client options for `link`, or an error in the flags' words.
pub fn options(link: &Link) -> anyhow::Result<rumqttc::MqttOptions> {
    link.options()
        .map_err(|e| anyhow::anyhow!(flag_message(&e)))
}

/// The flag that sets `s`.
pub fn flag(s: Setting) -> &'static str {
    match s {
        Setting::Url => "--broker",
        Setting::ClientId => "--client-id",
        Setting::Username => "--username",
        Setting::Password => "--password-file",
        Setting::CaFile => "--ca-file",
        Setting::ClientCert => "--client-cert",
        Setting::ClientKey => "--client-key",
        Setting::KeepAlive => "keep-alive (built in)",
    }
}

/// `e` with the settings named by their flags.
pub fn flag_message(e: &LinkError) -> String {
    match e {
        LinkError::Url(u) => format!("--broker: {u}"),
        LinkError::ClientId { client_id, reason } => format!("--client-id {client_id:?}: {reason}"),
        LinkError::PasswordWithoutUsername => {
            "--password-file gives a password but --username is missing".into()
        }
        LinkError::KeepAlive { keep_alive } => format!("keep-alive {keep_alive:?} is invalid"),
        LinkError::CaFileRequired => "--ca-file is required for mqtts:// (a PEM CA bundle)".into(),
        LinkError::ClientPair { given, missing } => {
            format!("{} needs {}", flag(*given), flag(*missing))
        }
        LinkError::Read {
            setting,
            path,
            source,
        } => format!("{} {}: {source}", flag(*setting), path.display()),
        LinkError::Pem {
            setting,
            path,
            source,
        } => format!(
            "{} {}: not valid PEM: {source}",
            flag(*setting),
            path.display()
        ),
        LinkError::NoCertificate { setting, path } => {
            format!("{} {}: no certificate", flag(*setting), path.display())
        }
        LinkError::NoKey { path } => format!("--client-key {}: no private key", path.display()),
        LinkError::BadCa { path, source } => format!(
            "--ca-file {}: a certificate is not usable as a CA: {source}",
            path.display()
        ),
        LinkError::ClientAuth { cert, key, source } => format!(
            "--client-key {} does not fit --client-cert {}: {source}",
            key.display(),
            cert.display()
        ),
        LinkError::Tls { source } => format!("TLS setup: {source}"),
    }
}

fn read_password(path: &Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("--password-file {}", path.display()))?;
    let password = raw
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&raw);
    if password.is_empty() {
        bail!("--password-file {}: empty", path.display());
    }
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        log::warn!(
            "--password-file {} is readable by every user (chmod o-r)",
            path.display()
        );
    }
    Ok(password.to_owned())
}

fn broker_url(s: &str) -> Result<String, String> {
    edge_mqtt::parse_url(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// A single, plain MQTT topic level: a prefix, a bridge prefix, a device id.
pub(crate) fn topic_level(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.contains(['/', '+', '#']) || s.chars().any(char::is_control) {
        return Err("must be one plain topic level (no /, +, # or control characters)".into());
    }
    Ok(s.to_owned())
}

fn seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 && x <= 1e6 => Ok(Duration::from_secs_f64(x)),
        _ => Err("must be a number of seconds above 0 (at most 1000000)".into()),
    }
}

#[cfg(test)]
mod tests;
