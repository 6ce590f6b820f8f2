//! Agent configuration: typed serde structs with defaults, layered (defaults < main file <
//! per-card file < environment) and validated in one place. Every error names the key.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Largest ring buffer the config may ask for.
pub const MAX_RING_BYTES: u64 = 1 << 30;
/// Environment override for `mqtt.url`.
pub const ENV_BROKER_URL: &str = "FIRMWARE_AGENT_BROKER_URL";
/// Environment override for `device_id`.
pub const ENV_DEVICE_ID: &str = "FIRMWARE_AGENT_DEVICE_ID";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    #[error(
        "config file {path} holds mqtt.password but its mode is {mode:04o}: readable by group or others; chmod 600 it (or 640 with a group only the agent is in is still refused)"
    )]
    InsecurePassword { path: PathBuf, mode: u32 },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Device id used in topics; default: board serial, else /etc/machine-id.
    pub device_id: Option<String>,
    pub mqtt: MqttConfig,
    pub batch: BatchConfig,
    pub ring_buffers: RingBufferConfig,
    pub metrics: MetricsConfig,
    pub probes: ProbesConfig,
    pub queue: QueueConfig,
    pub summaries: SummariesConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM CA bundle for `mqtts://`; default: the system's roots are not bundled, so required.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and its private key, for brokers that require mutual TLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub topic_prefix: String,
    /// Default: `firmware-agent-<device_id>`.
    pub client_id: Option<String>,
    pub keep_alive_s: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            topic_prefix: "edge".into(),
            client_id: None,
            keep_alive_s: 30,
        }
    }
}

/// The outbox: where messages wait for the broker's acknowledgement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Bytes of encoded messages held in RAM; past it the oldest go to the spool, or without
    /// one are dropped (and counted).
    pub ram_bytes: u64,
    /// Directory for the disk spool (off when unset). Survives restarts and power cuts.
    pub spool_dir: Option<PathBuf>,
    /// Bytes the spool may hold; past it the oldest spooled messages are dropped (and counted).
    pub spool_bytes: u64,
    /// At SIGTERM, how long to keep trying to deliver before spooling or dropping the rest.
    pub shutdown_timeout_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            ram_bytes: 8 << 20,
            spool_dir: None,
            spool_bytes: 64 << 20,
            shutdown_timeout_ms: 5000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Flush when a batch's encoded events reach this many bytes.
    pub max_bytes: usize,
    /// Flush when the oldest event in a batch is this old.
    pub max_age_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024,
            max_age_ms: 200,
        }
    }
}

/// Requested ring buffer sizes in bytes; the agent rounds each up to a power of two that is
/// also a multiple of the running kernel's page size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RingBufferConfig {
    /// bind() events.
    pub watch_events: u64,
    /// exec, exit and OOM-kill events.
    pub proc_events: u64,
    /// TCP connection closes (summarised per interval, not published one by one).
    pub net_events: u64,
}

impl Default for RingBufferConfig {
    fn default() -> Self {
        Self {
            watch_events: 64 * 1024,
            proc_events: 256 * 1024,
            net_events: 256 * 1024,
        }
    }
}

/// The per-interval summaries: TCP flows, page-cache writers, block I/O per disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SummariesConfig {
    /// Seconds per summary interval.
    pub interval_s: u64,
    /// TCP flows (process, peer, port, direction) published per interval; the rest are summed.
    pub tcp_max_flows: usize,
    /// Writing processes published per interval; the rest are summed.
    pub max_writers: usize,
}

impl Default for SummariesConfig {
    fn default() -> Self {
        Self {
            interval_s: 10,
            tcp_max_flows: 64,
            max_writers: 32,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Seconds between system samples on `<prefix>/<device>/metrics`; 0 turns them off.
    pub interval_s: u64,
    /// Processes listed per sample by CPU and by memory; 0 turns the lists off.
    pub top_n: usize,
    /// Where sysfs is mounted: board health reads every file under it.
    pub sysfs_root: PathBuf,
    /// Where procfs is mounted: the top-N lists read it.
    pub proc_root: PathBuf,
}

/// Largest `metrics.top_n`.
pub const MAX_TOP_N: u64 = 64;

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            interval_s: 10,
            top_n: 5,
            sysfs_root: "/sys".into(),
            proc_root: "/proc".into(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbesConfig {
    /// Probes not to attach, by probe or family name.
    pub disabled: Vec<String>,
    /// Where a tracepoint probe attaches, `category:name`, overriding its default tracepoint.
    pub tracepoints: BTreeMap<String, String>,
    /// How probes that newer kernels serve by a tracepoint and older ones only by a kernel
    /// function (the TCP byte counters) attach.
    pub kernel_functions: FunctionAttach,
    /// How records reach the agent: `auto` (ring buffers where the kernel has them, else perf
    /// buffers), `ringbuf` or `perf` (forced; for tests and kernels that misreport).
    #[serde(deserialize_with = "transport_choice")]
    pub transport: TransportChoice,
}

/// `probes.transport`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// Ring buffers if the kernel can create one, else perf buffers.
    #[default]
    Auto,
    /// Ring buffers only (the agent stops if the kernel has none).
    Ringbuf,
    /// Perf buffers, even where ring buffers exist.
    Perf,
}

impl TransportChoice {
    pub const VALUES: [(&str, TransportChoice); 3] = [
        ("auto", Self::Auto),
        ("ringbuf", Self::Ringbuf),
        ("perf", Self::Perf),
    ];
}

/// Parses `probes.transport`, naming the key in the error (serde's own message does not).
fn transport_choice<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TransportChoice, D::Error> {
    let s = String::deserialize(d)?;
    TransportChoice::VALUES
        .iter()
        .find(|(name, _)| *name == s)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "probes.transport: unknown transport {s:?} (expected \"auto\", \"ringbuf\" or \"perf\")"
            ))
        })
}

/// `probes.kernel_functions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionAttach {
    /// The tracepoint if the kernel has it, else fentry/fexit if it has BTF, else kprobes
    /// (each failure falls through to the next).
    #[default]
    Auto,
    /// The tracepoint only.
    Tracepoint,
    /// fentry/fexit only.
    Fentry,
    /// kprobe/kretprobe only.
    Kprobe,
}

impl MqttConfig {
    /// Where `mqtt.url` points.
    pub fn broker(&self) -> Result<edge_mqtt::Broker, edge_mqtt::UrlError> {
        edge_mqtt::parse_url(&self.url)
    }

    /// The connection settings, for `client_id`.
    pub fn link(&self, client_id: &str) -> edge_mqtt::Link {
        edge_mqtt::Link {
            url: self.url.clone(),
            client_id: client_id.to_owned(),
            username: self.username.clone(),
            password: self.password.clone(),
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            keep_alive: std::time::Duration::from_secs(self.keep_alive_s),
        }
    }
}

impl Config {
    /// Builds the effective config: defaults, then `main` (if given; must exist), then `card`
    /// (if it exists), then the environment; then validates it.
    pub fn load(
        main: Option<&Path>,
        card: Option<&Path>,
        program_names: &[&str],
    ) -> Result<Self, ConfigError> {
        let mut merged = toml::Table::new();
        if let Some(path) = main {
            merge(&mut merged, read_layer(path)?);
        }
        if let Some(path) = card.filter(|p| p.exists()) {
            merge(&mut merged, read_layer(path)?);
        }
        let mut cfg: Config =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: "(merged layers)".into(),
                    message: e.message().to_owned(),
                })?;
        cfg.apply_env(|k| std::env::var(k).ok());
        cfg.validate(program_names)?;
        Ok(cfg)
    }

    /// Parses one TOML document as a whole config (for tests and `--check-config`).
    pub fn from_toml(text: &str, program_names: &[&str]) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "(inline)".into(),
            message: e.to_string(),
        })?;
        cfg.validate(program_names)?;
        Ok(cfg)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(url) = get(ENV_BROKER_URL) {
            self.mqtt.url = url;
        }
        if let Some(id) = get(ENV_DEVICE_ID) {
            self.device_id = Some(id);
        }
    }
}

fn read_layer(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    // Parse as a whole config first: unknown keys and wrong types are reported against the
    // file that has them, with its line.
    toml::from_str::<Config>(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })?;
    let table = toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })?;
    if table.get("mqtt").and_then(|m| m.get("password")).is_some() {
        secret::check(path)?;
    }
    Ok(table)
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Makes a string safe as one MQTT topic level: keeps [A-Za-z0-9._-], maps the rest to '-'.
pub fn sanitize_device_id(raw: &str) -> String {
    raw.trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

mod secret;
mod validate;
pub use validate::parse_tracepoint;
#[cfg(test)]
mod tests;
