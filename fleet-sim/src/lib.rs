//! The fleet simulator: N devices ([`device`], drawing from [`model`] with [`rng`]) publish
//! what firmware agents would, through one MQTT connection each or a few shared ones
//! ([`link`]), on a virtual clock that follows the wall clock; [`report`] sums what the broker
//! acknowledged. [`run`] plays a whole fleet from the command line ([`cli`]).

pub mod cli;
pub mod device;
pub mod link;
pub mod model;
pub mod report;
pub mod rng;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use edge_mqtt::Link;
use tokio::time::Instant;

use crate::{cli::Args, device::Device, link::LinkPlan, report::Report};

/// A setting the simulator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("--password-file {path}: {source}")]
    Password {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("broker settings: {0}")]
    Link(#[from] edge_mqtt::LinkError),
    #[error("a link task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Plays the fleet `args` describes to the end and reports what the broker acknowledged.
pub async fn run(args: &Args) -> Result<Report, SimError> {
    let password = match &args.password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map(|p| p.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|source| SimError::Password {
                    path: path.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let epoch_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let plan = args.plan(epoch_ms);
    let k = args.connections() as usize;
    let mut groups: Vec<Vec<Device>> = (0..k).map(|_| Vec::new()).collect();
    for i in 0..args.devices {
        groups[i as usize % k].push(Device::new(&plan, i));
    }
    log::info!(
        "sim: {} devices over {k} connections to {} ({}), {} events/s each, {} s",
        args.devices,
        args.broker,
        if plan.own_link {
            "one per device: wills are the broker's"
        } else {
            "shared: the simulator publishes each device's will itself"
        },
        args.rate,
        args.duration
    );
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for (g, devices) in groups.into_iter().enumerate() {
        let client_id = if plan.own_link {
            format!("fleet-sim-{}", devices[0].id)
        } else {
            format!("fleet-sim-{}-{g}", std::process::id())
        };
        let options = Link {
            url: args.broker.clone(),
            client_id,
            username: args.username.clone(),
            password: password.clone(),
            ca_file: args.ca_file.clone(),
            client_cert: None,
            client_key: None,
            keep_alive: edge_mqtt::DEFAULT_KEEP_ALIVE,
        }
        .options()?;
        let lp = LinkPlan {
            options,
            prefix: args.prefix.clone(),
            tick: args.tick(),
            ticks: args.total_ticks(),
            start,
            drain: Duration::from_secs_f64(args.drain),
        };
        tasks.push(tokio::spawn(link::run(lp, devices, plan.own_link)));
    }
    let mut report = Report {
        seed: args.seed,
        connections: k,
        own_links: plan.own_link,
        duration_s: args.duration,
        elapsed_s: 0.0,
        devices: Vec::new(),
        errors: 0,
        unacked: 0,
        late_ticks: 0,
    };
    for t in tasks {
        let out = t.await?;
        report.devices.extend(out.devices);
        report.errors += out.errors;
        report.unacked += out.unacked;
        report.late_ticks += out.late_ticks;
    }
    report.elapsed_s = start.elapsed().as_secs_f64();
    report.devices.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(report)
}
