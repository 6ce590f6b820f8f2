//! The probe catalogue and its loader: which program attaches where, which tracepoint fields
//! it needs, and what became of each one (attached, disabled, or skipped with the reason).
//! A program that cannot load or attach is reported and the others carry on.

use std::collections::BTreeMap;

use aya::{Ebpf, EbpfLoader, programs::TracePoint};
use edge_wire::{ProbeInfo, ProbeState, bounded};
use firmware_agent_common::{OFFSETS_GLOBAL, TracepointOffsets};

use crate::{
    config::{ProbesConfig, parse_tracepoint},
    ringbuf::RingPlan,
    tracefs::{Field, Tracefs},
};

/// The eBPF object built by build.rs, aligned for the ELF parser.
pub static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/firmware-agent-ebpf"));

type Setter = fn(&mut TracepointOffsets, u32);

/// A tracepoint field a program reads: its name, the size the program reads it as, and where
/// its offset goes.
struct Need {
    field: &'static str,
    size: u32,
    set: Setter,
}

/// One program in the object.
pub struct ProgramSpec {
    pub name: &'static str,
    pub tracepoint: &'static str,
    /// True for programs that write events; if none of these attach the agent has no purpose.
    pub produces_events: bool,
    needs: &'static [Need],
}

macro_rules! need {
    ($field:literal, $size:literal, $slot:ident) => {
        Need {
            field: $field,
            size: $size,
            set: |o, v| o.$slot = v,
        }
    };
}

/// Every program, in attach order (helpers before the programs that use what they record).
pub static PROGRAMS: &[ProgramSpec] = &[
    ProgramSpec {
        name: "fork",
        tracepoint: "sched:sched_process_fork",
        produces_events: false,
        needs: &[need!("child_pid", 4, fork_child_pid)],
    },
    ProgramSpec {
        name: "bind_enter",
        tracepoint: "syscalls:sys_enter_bind",
        produces_events: false,
        needs: &[
            need!("fd", 8, bind_fd),
            need!("umyaddr", 8, bind_addr),
            need!("addrlen", 8, bind_addrlen),
        ],
    },
    ProgramSpec {
        name: "bind_exit",
        tracepoint: "syscalls:sys_exit_bind",
        produces_events: true,
        needs: &[need!("ret", 8, bind_ret)],
    },
    ProgramSpec {
        name: "exec",
        tracepoint: "sched:sched_process_exec",
        produces_events: true,
        needs: &[need!("filename", 4, exec_filename)],
    },
    ProgramSpec {
        name: "exit_group",
        tracepoint: "syscalls:sys_enter_exit_group",
        produces_events: false,
        needs: &[need!("error_code", 8, exit_group_code)],
    },
    ProgramSpec {
        name: "signal_deliver",
        tracepoint: "signal:signal_deliver",
        produces_events: false,
        needs: &[
            need!("sig", 4, signal_sig),
            need!("sa_handler", 8, signal_handler),
        ],
    },
    ProgramSpec {
        name: "exit",
        tracepoint: "sched:sched_process_exit",
        produces_events: true,
        needs: &[],
    },
];

/// Program names, for config validation.
pub fn program_names() -> Vec<&'static str> {
    PROGRAMS.iter().map(|p| p.name).collect()
}

/// Where each program will attach, and its state so far.
pub struct Plan {
    pub offsets: TracepointOffsets,
    /// Per program, in `PROGRAMS` order: the tracepoint, and `Some(state)` if already decided.
    pub entries: Vec<(String, Option<ProbeState>)>,
}

/// Reads every program's tracepoint format and fills the offsets; programs whose tracepoint or
/// fields are missing are marked skipped here, before anything is loaded.
pub fn plan(tracefs: &Tracefs, cfg: &ProbesConfig) -> Plan {
    let mut offsets = TracepointOffsets::default();
    let mut entries = Vec::new();
    for spec in PROGRAMS {
        let tp = cfg
            .tracepoints
            .get(spec.name)
            .map_or(spec.tracepoint, String::as_str)
            .to_owned();
        let state = if cfg.disabled.iter().any(|d| d == spec.name) {
            Some(ProbeState::Disabled)
        } else {
            match resolve(tracefs, &tp, spec.needs, &mut offsets) {
                Ok(()) => None,
                Err(reason) => Some(ProbeState::Skipped {
                    reason: bounded(&reason),
                }),
            }
        };
        entries.push((tp, state));
    }
    Plan { offsets, entries }
}

fn resolve(
    tracefs: &Tracefs,
    tp: &str,
    needs: &[Need],
    offsets: &mut TracepointOffsets,
) -> Result<(), String> {
    let (category, name) = parse_tracepoint(tp)?;
    let fields = tracefs.fields(category, name).map_err(|e| e.to_string())?;
    let by_name: BTreeMap<&str, &Field> = fields.iter().map(|f| (f.name.as_str(), f)).collect();
    for need in needs {
        let field = by_name
            .get(need.field)
            .ok_or_else(|| format!("field `{}` not in {tp} format", need.field))?;
        if field.size != need.size {
            return Err(format!(
                "field `{}` of {tp} is {} bytes, the probe reads {}",
                need.field, field.size, need.size
            ));
        }
        (need.set)(offsets, field.offset);
    }
    Ok(())
}

/// Loads the object with the planned offsets and ring sizes, then loads and attaches each
/// program that is still in play. Returns the object and each program's final state.
pub fn load_and_attach(
    plan: Plan,
    rings: &[RingPlan],
) -> Result<(Ebpf, Vec<ProbeInfo>), aya::EbpfError> {
    let mut loader = EbpfLoader::new();
    loader.override_global(OFFSETS_GLOBAL, &plan.offsets, true);
    for ring in rings {
        // Checked against MAX_RING_BYTES (1 GiB) when chosen, so it fits in u32.
        loader.map_max_entries(ring.map, ring.chosen as u32);
    }
    let mut ebpf = loader.load(OBJECT)?;
    let mut report = Vec::new();
    for (spec, (tp, state)) in PROGRAMS.iter().zip(plan.entries) {
        let state = state.unwrap_or_else(|| match attach(&mut ebpf, spec.name, &tp) {
            Ok(()) => ProbeState::Attached,
            Err(reason) => {
                // The birth carries a short reason; the whole one (verifier log included) is
                // here for whoever runs with RUST_LOG=debug.
                log::debug!("probe {}: full error: {reason}", spec.name);
                ProbeState::Skipped {
                    reason: bounded(&reason),
                }
            }
        });
        match &state {
            ProbeState::Attached => log::info!("probe {}: attached to {tp}", spec.name),
            ProbeState::Disabled => log::info!("probe {}: disabled in config", spec.name),
            ProbeState::Skipped { reason } => {
                log::warn!("probe {}: skipped ({tp}): {reason}", spec.name)
            }
        }
        report.push(ProbeInfo {
            name: bounded(spec.name),
            tracepoint: bounded(&tp),
            state,
        });
    }
    Ok((ebpf, report))
}

fn attach(ebpf: &mut Ebpf, name: &str, tp: &str) -> Result<(), String> {
    let (category, event) = parse_tracepoint(tp)?;
    let program: &mut TracePoint = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} not in the eBPF object"))?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    program
        .load()
        .map_err(|e| format!("load: {}", error_chain(&e)))?;
    program
        .attach(category, event)
        .map_err(|e| format!("attach: {}", error_chain(&e)))?;
    Ok(())
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
