//! The flags of `hub serve` (web view, JSON API, Prometheus exporter, history, bridge) and of
//! `hub query` (the history from the command line), and the rule that keeps the web view on
//! loopback unless it is protected or the operator insists.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use clap::Args;

use super::topic_level;

/// Where the web token comes from when neither --token nor --token-file is given.
pub const TOKEN_ENV: &str = "HUB_HTTP_TOKEN";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the web view, the JSON API (/api/...) and the Prometheus exporter (/metrics).
    /// Port 0 picks a free port (the URL is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of the history database (hub.sqlite; created if missing).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Delete history received more than DAYS ago (0: keep regardless of age).
    #[arg(long, value_name = "DAYS", default_value = "30", value_parser = non_negative)]
    pub retain_days: f64,
    /// Delete the oldest history while the database holds more than MB megabytes (0: no cap).
    #[arg(long, value_name = "MB", default_value = "1024", value_parser = non_negative)]
    pub retain_mb: f64,
    /// Do not republish decoded messages as JSON (nor Home Assistant discovery).
    #[arg(long)]
    pub no_bridge: bool,
    /// Prefix of the JSON bridge topics. Default: PREFIX-json.
    #[arg(long, value_name = "BRIDGE_PREFIX", value_parser = topic_level, conflicts_with = "no_bridge")]
    pub bridge_prefix: Option<String>,
    /// Home Assistant discovery from the bridge (--ha-prefix, --no-ha).
    #[command(flatten)]
    pub ha: super::HaArgs,
    /// Require this token on every request except the static assets: `Authorization: Bearer
    /// TOKEN`, `?token=TOKEN`, or basic auth with TOKEN as the password. Default: the
    /// HUB_HTTP_TOKEN environment variable, if set.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the token from FILE (a trailing newline is dropped).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve beyond loopback without a token (anyone who can reach the address sees the
    /// fleet).
    #[arg(long)]
    pub insecure_listen: bool,
    /// Write the history at least every MS milliseconds (one transaction per write).
    #[arg(long, value_name = "MS", default_value = "250", value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub flush_ms: u64,
}

impl ServeArgs {
    /// The token from --token, --token-file or the environment (`env`), if any.
    pub fn token(&self, env: Option<String>) -> anyhow::Result<Option<String>> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(read_token(path)?),
            (None, None) => env.filter(|t| !t.is_empty()),
        };
        if let Some(t) = &token
            && (t.is_empty() || t.chars().any(char::is_control))
        {
            bail!("--token must not be empty or hold control characters");
        }
        Ok(token)
    }
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("--token-file {}", path.display()))?;
    let t = raw.trim_end_matches(['\n', '\r']);
    if t.is_empty() {
        bail!("--token-file {}: empty", path.display());
    }
    Ok(t.to_owned())
}

/// Refuses an address beyond loopback without a token, unless --insecure-listen.
pub fn check_listen(addr: SocketAddr, token: bool, insecure: bool) -> anyhow::Result<()> {
    if addr.ip().is_loopback() || token {
        return Ok(());
    }
    if insecure {
        log::warn!(
            "hub: serving on {addr} beyond loopback without a token (--insecure-listen): anyone who can reach it sees the fleet"
        );
        return Ok(());
    }
    bail!(
        "--listen {addr} is reachable beyond this machine: protect it with --token (or --token-file, {TOKEN_ENV}), or give --insecure-listen"
    )
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Directory of the history database (as given to `hub serve`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Only this device.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// Only these kinds (repeat or separate with commas): bind, exec, exit, ..., status, gap,
    /// drops.
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub kind: Vec<String>,
    /// From this time: unix ms, 2026-03-01T12:00:00Z, or an age (15m, 2h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Up to this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most N records (the newest), printed oldest first.
    #[arg(long, value_name = "N", default_value = "1000")]
    pub limit: usize,
    /// Metrics samples instead of records.
    #[arg(long)]
    pub metrics: bool,
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err("must be a number, 0 or more".into()),
    }
}
