//! The command line (clap derive) and what it means: the [`Plan`] in ticks, how many
//! connections, and the broker settings. Every error names its flag.

use std::{path::PathBuf, time::Duration};

use clap::Parser;

use crate::{device::Plan, model::Mix};

/// Plays N simulated devices against an MQTT broker: births (schema 2), event batches,
/// metrics, wills, outages and restarts, then prints what the broker acknowledged per device.
#[derive(Debug, Parser)]
#[command(name = "fleet-sim", version)]
pub struct Args {
    /// mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (with --ca-file).
    #[arg(long, value_name = "URL", default_value = "mqtt://127.0.0.1:1883", value_parser = broker_url)]
    pub broker: String,
    /// Topic prefix of the fleet.
    #[arg(long, default_value = "edge", value_parser = topic_level)]
    pub prefix: String,
    /// How many devices.
    #[arg(long, default_value = "20", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub devices: u32,
    /// Kernel events per second per device (Poisson).
    #[arg(long, value_name = "EVENTS_PER_S", default_value = "5", value_parser = non_negative)]
    pub rate: f64,
    /// Seconds to simulate.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = positive)]
    pub duration: f64,
    /// Seed of everything random (ids, runs, events, schedules).
    #[arg(long, default_value = "1")]
    pub seed: u64,
    /// Each device loses its link about every SECONDS (0.5x to 1.5x, per device).
    #[arg(long, value_name = "SECONDS", value_parser = positive)]
    pub outage_every: Option<f64>,
    /// How long an outage lasts.
    #[arg(long, value_name = "SECONDS", default_value = "2", value_parser = positive)]
    pub outage_for: f64,
    /// Each device's agent restarts about every SECONDS (new run id, seq from 0).
    #[arg(long, value_name = "SECONDS", value_parser = positive)]
    pub restart_every: Option<f64>,
    /// Seconds between metrics samples of a device.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = positive)]
    pub metrics_every: f64,
    /// A batch is published when its oldest event is this old...
    #[arg(long, value_name = "MS", default_value = "200", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_ms: u64,
    /// ... or when it holds this many events.
    #[arg(long, default_value = "256", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_max_events: u64,
    /// The simulation's clock step.
    #[arg(long, value_name = "MS", default_value = "100", value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub tick_ms: u64,
    /// MQTT connections; default one per device up to 100 devices (real wills), else 16
    /// shared ones (the simulator publishes each device's will itself).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: Option<u32>,
    /// Share of exits that are crashes (killed by a signal).
    #[arg(long, default_value = "0.02", value_parser = probability)]
    pub crash_chance: f64,
    /// Share of batches that report ring-buffer drops.
    #[arg(long, default_value = "0.01", value_parser = probability)]
    pub drop_chance: f64,
    /// Device ids are ID_PREFIX-0000, ID_PREFIX-0001, ...
    #[arg(long, default_value = "sim", value_parser = topic_level)]
    pub id_prefix: String,
    /// Seconds to wait after the end for the broker's last acknowledgements.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = positive)]
    pub drain: f64,
    /// Print the summary as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// PEM CA bundle for mqtts://.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// MQTT user name (every connection uses it).
    #[arg(long, value_name = "NAME")]
    pub username: Option<String>,
    /// File holding the MQTT password.
    #[arg(long, value_name = "FILE", requires = "username")]
    pub password_file: Option<PathBuf>,
}

impl Args {
    /// Connections to open (at most one per device).
    pub fn connections(&self) -> u32 {
        self.connections
            .unwrap_or(if self.devices <= 100 {
                self.devices
            } else {
                16
            })
            .min(self.devices)
    }

    /// Seconds as whole ticks (at least one).
    fn ticks(&self, seconds: f64) -> u64 {
        ((seconds * 1000.0 / self.tick_ms as f64).round() as u64).max(1)
    }

    /// The fleet's plan; `epoch_ms` is the wall-clock time of tick 0.
    pub fn plan(&self, epoch_ms: u64) -> Plan {
        Plan {
            seed: self.seed,
            id_prefix: self.id_prefix.clone(),
            tick_ms: self.tick_ms,
            rate: self.rate,
            batch_ticks: (self.batch_ms / self.tick_ms).max(1),
            batch_max_events: self.batch_max_events as usize,
            metrics_ticks: self.ticks(self.metrics_every),
            outage_every: self.outage_every.map(|s| self.ticks(s)),
            outage_ticks: self.ticks(self.outage_for),
            restart_every: self.restart_every.map(|s| self.ticks(s)),
            own_link: self.connections() == self.devices,
            mix: Mix {
                crash_chance: self.crash_chance,
                drop_chance: self.drop_chance,
            },
            epoch_ms,
        }
    }

    /// Ticks in `--duration`.
    pub fn total_ticks(&self) -> u64 {
        self.ticks(self.duration)
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }
}

fn broker_url(s: &str) -> Result<String, String> {
    edge_mqtt::parse_url(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

fn topic_level(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(['/', '+', '#']) || s.chars().any(char::is_control) {
        return Err(
            "must be one plain, non-empty topic level (no /, +, # or control characters)".into(),
        );
    }
    Ok(s.to_owned())
}

fn number(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| "must be a number".into())
}

fn positive(s: &str) -> Result<f64, String> {
    number(s).and_then(|x| {
        if x > 0.0 && x <= 1e6 {
            Ok(x)
        } else {
            Err("must be above 0 (at most 1000000)".into())
        }
    })
}

fn non_negative(s: &str) -> Result<f64, String> {
    number(s).and_then(|x| {
        if (0.0..=1e6).contains(&x) {
            Ok(x)
        } else {
            Err("must be 0 or more (at most 1000000)".into())
        }
    })
}

fn probability(s: &str) -> Result<f64, String> {
    number(s).and_then(|x| {
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err("must be between 0 and 1".into())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::try_parse_from(std::iter::once("fleet-sim").chain(args.iter().copied()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_plans() {
        let a = parse(&[]).expect("defaults");
        assert_eq!((a.devices, a.connections(), a.total_ticks()), (20, 20, 100));
        let p = a.plan(5);
        assert_eq!(
            (p.batch_ticks, p.metrics_ticks, p.outage_ticks),
            (2, 100, 20)
        );
        assert!(p.own_link && p.outage_every.is_none());
        let a = parse(&[
            "--devices",
            "1000",
            "--outage-every",
            "30",
            "--restart-every",
            "60",
        ])
        .expect("fleet");
        assert_eq!(a.connections(), 16);
        let p = a.plan(5);
        assert!(!p.own_link);
        assert_eq!((p.outage_every, p.restart_every), (Some(300), Some(600)));
        let a = parse(&["--devices", "3", "--connections", "9"]).expect("capped");
        assert_eq!(a.connections(), 3);
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (args, flag) in [
            (&["--devices", "0"][..], "--devices"),
            (&["--rate=-1"][..], "--rate"),
            (&["--duration", "0"][..], "--duration"),
            (&["--crash-chance", "2"][..], "--crash-chance"),
            (&["--prefix", "a/b"][..], "--prefix"),
            (&["--broker", "tcp://h"][..], "--broker"),
            (&["--tick-ms", "1"][..], "--tick-ms"),
            (&["--password-file", "/p"][..], "--username"),
        ] {
            let e = parse(args).map(|_| ()).expect_err("must fail");
            assert!(e.contains(flag), "{args:?}: {e}");
        }
    }
}
