//! Validation: the one place every rule of the agent's configuration lives. Each error names
//! the key it is about.

use super::{Config, ConfigError, MAX_RING_BYTES, MAX_TOP_N, MetricsConfig, invalid};

impl Config {
    /// The one place every rule lives.
    pub fn validate(&self, program_names: &[&str]) -> Result<(), ConfigError> {
        if let Some(id) = &self.device_id {
            check_topic_word("device_id", id)?;
        }
        let broker = self
            .mqtt
            .broker()
            .map_err(|e| invalid("mqtt.url", e.to_string()))?;
        if let Some(ca) = &self.mqtt.ca_file
            && !ca.is_file()
        {
            return Err(invalid(
                "mqtt.ca_file",
                format!("{} is not a readable file", ca.display()),
            ));
        }
        if broker.tls && self.mqtt.ca_file.is_none() {
            return Err(invalid(
                "mqtt.ca_file",
                "required for mqtts:// (PEM CA bundle)",
            ));
        }
        for (key, file) in [
            ("mqtt.client_cert", &self.mqtt.client_cert),
            ("mqtt.client_key", &self.mqtt.client_key),
        ] {
            if let Some(f) = file
                && !f.is_file()
            {
                return Err(invalid(
                    key,
                    format!("{} is not a readable file", f.display()),
                ));
            }
        }
        if self.mqtt.client_cert.is_some() != self.mqtt.client_key.is_some() {
            return Err(invalid(
                "mqtt.client_key",
                "mqtt.client_cert and mqtt.client_key go together",
            ));
        }
        if self.mqtt.password.is_some() && self.mqtt.username.is_none() {
            return Err(invalid("mqtt.password", "set without mqtt.username"));
        }
        check_topic_word("mqtt.topic_prefix", &self.mqtt.topic_prefix)?;
        if let Some(id) = &self.mqtt.client_id
            && (id.is_empty() || id.len() > 128)
        {
            return Err(invalid("mqtt.client_id", "must be 1 to 128 characters"));
        }
        range("mqtt.keep_alive_s", self.mqtt.keep_alive_s, 5, 3600)?;
        range("queue.ram_bytes", self.queue.ram_bytes, 64 << 10, 1 << 30)?;
        range(
            "queue.spool_bytes",
            self.queue.spool_bytes,
            256 << 10,
            1 << 40,
        )?;
        range(
            "queue.shutdown_timeout_ms",
            self.queue.shutdown_timeout_ms,
            100,
            600_000,
        )?;
        if let Some(dir) = &self.queue.spool_dir
            && (dir.as_os_str().is_empty() || dir.is_file())
        {
            return Err(invalid(
                "queue.spool_dir",
                format!("{} is not a directory path", dir.display()),
            ));
        }
        range("batch.max_bytes", self.batch.max_bytes as u64, 256, 1 << 20)?;
        range("batch.max_age_ms", self.batch.max_age_ms, 1, 60_000)?;
        range(
            "ring_buffers.watch_events",
            self.ring_buffers.watch_events,
            1,
            MAX_RING_BYTES,
        )?;
        range(
            "ring_buffers.proc_events",
            self.ring_buffers.proc_events,
            1,
            MAX_RING_BYTES,
        )?;
        range(
            "ring_buffers.net_events",
            self.ring_buffers.net_events,
            1,
            MAX_RING_BYTES,
        )?;
        range("metrics.interval_s", self.metrics.interval_s, 0, 86_400)?;
        range("summaries.interval_s", self.summaries.interval_s, 1, 86_400)?;
        range(
            "summaries.tcp_max_flows",
            self.summaries.tcp_max_flows as u64,
            1,
            4096,
        )?;
        range(
            "summaries.max_writers",
            self.summaries.max_writers as u64,
            1,
            4096,
        )?;
        for name in &self.probes.disabled {
            if !program_names.contains(&name.as_str()) {
                return Err(invalid(
                    "probes.disabled",
                    format!(
                        "unknown probe or family {name:?} (known: {})",
                        program_names.join(", ")
                    ),
                ));
            }
        }
        for (name, tp) in &self.probes.tracepoints {
            let key = format!("probes.tracepoints.{name}");
            if !program_names.contains(&name.as_str()) {
                return Err(invalid(
                    key,
                    format!(
                        "unknown program {name:?} (known: {})",
                        program_names.join(", ")
                    ),
                ));
            }
            parse_tracepoint(tp).map_err(|reason| invalid(key, reason))?;
        }
        validate_metrics(&self.metrics)
    }
}

/// Splits `category:name`, refusing path tricks.
pub fn parse_tracepoint(tp: &str) -> Result<(&str, &str), String> {
    let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match tp.split_once(':') {
        Some((cat, name)) if ok(cat) && ok(name) => Ok((cat, name)),
        _ => Err(format!(
            "{tp:?} is not `category:name` (letters, digits, _)"
        )),
    }
}

/// `metrics.top_n`, `metrics.sysfs_root`, `metrics.proc_root`.
fn validate_metrics(m: &MetricsConfig) -> Result<(), ConfigError> {
    range("metrics.top_n", m.top_n as u64, 0, MAX_TOP_N)?;
    for (key, dir) in [
        ("metrics.sysfs_root", &m.sysfs_root),
        ("metrics.proc_root", &m.proc_root),
    ] {
        if !dir.is_absolute() || !dir.is_dir() {
            return Err(invalid(
                key,
                format!("{} is not an absolute path to a directory", dir.display()),
            ));
        }
    }
    Ok(())
}

fn range(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(invalid(key, format!("{v} is outside {lo}..={hi}")));
    }
    Ok(())
}

fn check_topic_word(key: &str, v: &str) -> Result<(), ConfigError> {
    if v.is_empty() || v.len() > 64 {
        return Err(invalid(key, "must be 1 to 64 characters"));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(
            key,
            format!("{v:?} contains {c:?}; use letters, digits, '-', '_', '.'"),
        ));
    }
    Ok(())
}
