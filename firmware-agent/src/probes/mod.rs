//! The probe loader: reads each probe's tracepoint format, fills the offsets, loads the object
//! and attaches every probe still in play, reporting what became of each one (attached,
//! disabled, or skipped with the reason). A probe that cannot load or attach is reported and
//! the others carry on. The catalogue (what attaches where) is in `catalogue`.

mod attach;
pub mod catalogue;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use aya::{Ebpf, EbpfLoader};
use edge_wire::{AttachMethod, ProbeInfo, ProbeState, bounded};
use firmware_agent_common::{OFFSETS_GLOBAL, TracepointOffsets, Transport};

pub use self::catalogue::{Fit, Hook, Need, PROBES, ProbeSpec};
use crate::{
    config::{FunctionAttach, ProbesConfig, parse_tracepoint},
    ringbuf::RingPlan,
    tracefs::{Field, Tracefs},
};

/// The eBPF objects built by build.rs, aligned for the ELF parser: the same probes, writing
/// records to ring buffers or (the `perf` build) to perf buffers.
pub static OBJECT_RINGBUF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/firmware-agent-ebpf.ringbuf"));
pub static OBJECT_PERF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/firmware-agent-ebpf.perf"));

/// The object for `transport`.
pub fn object(transport: Transport) -> &'static [u8] {
    match transport {
        Transport::RingBuf => OBJECT_RINGBUF,
        Transport::Perf => OBJECT_PERF,
    }
}

/// Probe and family names, for config validation.
pub fn program_names() -> Vec<&'static str> {
    catalogue::names()
}

/// One probe's plan.
pub struct Entry {
    /// Its tracepoint (`category:name`, after `probes.tracepoints`).
    pub point: String,
    /// `Some` if already decided (disabled, or a tracepoint probe whose format failed).
    pub state: Option<ProbeState>,
    /// Whether the tracepoint's format had every field (for a function probe, whether the
    /// tracepoint method can be tried).
    pub tracepoint: Result<(), String>,
}

/// Where each probe will attach, and its state so far.
pub struct Plan {
    pub offsets: TracepointOffsets,
    /// Per probe, in `PROBES` order.
    pub entries: Vec<Entry>,
    pub functions: FunctionAttach,
    /// Whether the kernel exposes BTF (fentry/fexit need it).
    pub btf: bool,
}

/// Reads every probe's tracepoint format and fills the offsets; tracepoint probes whose
/// tracepoint or fields are missing are marked skipped here, before anything is loaded.
pub fn plan(tracefs: &Tracefs, cfg: &ProbesConfig, btf: bool) -> Plan {
    let mut offsets = TracepointOffsets::default();
    let mut entries = Vec::new();
    for spec in PROBES {
        let (tracepoint, needs) = match spec.hook {
            Hook::Tracepoint {
                tracepoint, needs, ..
            }
            | Hook::Function {
                tracepoint, needs, ..
            } => (tracepoint, needs),
        };
        let point = cfg
            .tracepoints
            .get(spec.name)
            .map_or(tracepoint, String::as_str)
            .to_owned();
        let disabled = cfg.disabled.iter().any(|d| catalogue::matches(spec, d));
        let skip_tracepoint = matches!(spec.hook, Hook::Function { .. })
            && matches!(
                cfg.kernel_functions,
                FunctionAttach::Fentry | FunctionAttach::Kprobe
            );
        let resolved = if disabled || skip_tracepoint {
            Err("not tried".to_owned())
        } else {
            resolve(tracefs, &point, needs, &mut offsets)
        };
        let state = if disabled {
            Some(ProbeState::Disabled)
        } else {
            match (&spec.hook, &resolved) {
                (Hook::Tracepoint { .. }, Err(reason)) => Some(ProbeState::Skipped {
                    reason: bounded(reason),
                }),
                _ => None,
            }
        };
        entries.push(Entry {
            point,
            state,
            tracepoint: resolved,
        });
    }
    Plan {
        offsets,
        entries,
        functions: cfg.kernel_functions,
        btf,
    }
}

/// Finds every field `needs` in the tracepoint's format and sets its offset; all or nothing.
fn resolve(
    tracefs: &Tracefs,
    tp: &str,
    needs: &[Need],
    offsets: &mut TracepointOffsets,
) -> Result<(), String> {
    let (category, name) = parse_tracepoint(tp)?;
    let fields = tracefs.fields(category, name).map_err(|e| e.to_string())?;
    let by_name: BTreeMap<&str, &Field> = fields.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut next = *offsets;
    for need in needs {
        let Some(field) = by_name.get(need.field) else {
            if need.optional {
                log::info!(
                    "{tp}: no field `{}` in this kernel; the probe goes without it",
                    need.field
                );
                continue;
            }
            return Err(format!("field `{}` not in {tp} format", need.field));
        };
        let fits = match need.fit {
            Fit::Exact => field.size == need.size,
            Fit::Prefix => field.size >= need.size,
        };
        if !fits {
            return Err(format!(
                "field `{}` of {tp} is {} bytes, the probe reads {}",
                need.field, field.size, need.size
            ));
        }
        // Probes of one tracepoint class share slots: they must agree.
        let before = (need.get)(&next);
        if before != 0 && before != field.offset {
            return Err(format!(
                "field `{}` of {tp} is at offset {}, but a probe sharing its slot read it at {before}",
                need.field, field.offset
            ));
        }
        (need.set)(&mut next, field.offset);
    }
    *offsets = next;
    Ok(())
}

/// Loads `transport`'s object with the planned offsets and ring sizes, then loads and attaches
/// each probe that is still in play. Returns the object and each probe's final state.
pub fn load_and_attach(
    plan: Plan,
    rings: &[RingPlan],
    transport: Transport,
) -> Result<(Ebpf, Vec<ProbeInfo>), aya::EbpfError> {
    let mut loader = EbpfLoader::new();
    loader.override_global(OFFSETS_GLOBAL, &plan.offsets, true);
    if transport == Transport::RingBuf {
        for ring in rings {
            // Checked against MAX_RING_BYTES (1 GiB) when chosen, so it fits in u32.
            loader.map_max_entries(ring.map, ring.chosen as u32);
        }
    }
    // Perf event arrays keep max_entries 0 in the object: aya makes it the number of possible
    // CPUs; their buffers are sized when the agent opens them (`transport::take`).
    let mut ebpf = loader.load(object(transport))?;
    let mut btf = attach::KernelBtf::new(plan.btf);
    let mut report = Vec::new();
    for (spec, entry) in PROBES.iter().zip(plan.entries) {
        let order = attach::methods(spec, plan.functions, entry.tracepoint.is_ok(), plan.btf);
        let first = order.first().copied().unwrap_or(AttachMethod::Tracepoint);
        let (method, point, state) = match entry.state.clone() {
            Some(state) => (first, entry.point.clone(), state),
            None => match attach::attach(&mut ebpf, spec, &entry, &order, &mut btf) {
                Ok(a) => (a.method, a.point, ProbeState::Attached),
                Err(f) => {
                    // The birth carries a short reason; the whole one (verifier log included)
                    // is here for whoever runs with RUST_LOG=debug.
                    log::debug!("probe {}: full error: {}", spec.name, f.reason);
                    (
                        f.method,
                        f.point,
                        ProbeState::Skipped {
                            reason: bounded(&f.reason),
                        },
                    )
                }
            },
        };
        let how = attach::method_name(method);
        match &state {
            ProbeState::Attached => log::info!("probe {}: attached to {point} ({how})", spec.name),
            ProbeState::Disabled => log::info!("probe {}: disabled in config", spec.name),
            ProbeState::Skipped { reason } => {
                log::warn!("probe {}: skipped ({point}, {how}): {reason}", spec.name)
            }
        }
        report.push(ProbeInfo {
            name: bounded(spec.name),
            tracepoint: bounded(&point),
            state,
            method,
        });
    }
    Ok((ebpf, report))
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
