//! Loading and attaching one probe: a tracepoint, or for a `Hook::Function` probe the first
//! method that works in the order `probes.kernel_functions` allows: its tracepoint, fexit on the
//! kernel function (BTF), kprobe + kretprobe (no BTF).

use aya::{
    Btf, Ebpf,
    programs::{FExit, KProbe, TracePoint},
};
use edge_wire::AttachMethod;

use super::{Entry, Hook, ProbeSpec, error_chain};
use crate::config::{FunctionAttach, parse_tracepoint};

pub fn method_name(m: AttachMethod) -> &'static str {
    match m {
        AttachMethod::Tracepoint => "tracepoint",
        AttachMethod::Fentry => "fentry/fexit",
        AttachMethod::Kprobe => "kprobe/kretprobe",
    }
}

/// The kernel's BTF, parsed on first use (only fexit needs it).
pub struct KernelBtf {
    present: bool,
    parsed: Option<Result<Btf, String>>,
}

impl KernelBtf {
    pub fn new(present: bool) -> Self {
        Self {
            present,
            parsed: None,
        }
    }

    fn get(&mut self) -> Result<&Btf, String> {
        self.parsed
            .get_or_insert_with(|| {
                Btf::from_sys_fs().map_err(|e| format!("reading kernel BTF: {}", error_chain(&e)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// The methods a probe may use, in the order they are tried.
pub fn methods(
    spec: &ProbeSpec,
    functions: FunctionAttach,
    tracepoint_ok: bool,
    btf: bool,
) -> Vec<AttachMethod> {
    match spec.hook {
        Hook::Tracepoint { .. } => vec![AttachMethod::Tracepoint],
        Hook::Function { .. } => match functions {
            FunctionAttach::Tracepoint => vec![AttachMethod::Tracepoint],
            FunctionAttach::Fentry => vec![AttachMethod::Fentry],
            FunctionAttach::Kprobe => vec![AttachMethod::Kprobe],
            FunctionAttach::Auto => {
                let mut m = Vec::new();
                if tracepoint_ok {
                    m.push(AttachMethod::Tracepoint);
                }
                if btf {
                    m.push(AttachMethod::Fentry);
                }
                m.push(AttachMethod::Kprobe);
                m
            }
        },
    }
}

/// A successful attach: how, and where.
pub struct Attached {
    pub method: AttachMethod,
    pub point: String,
}

/// A failed one: the last method tried, where, and every reason.
pub struct Failed {
    pub method: AttachMethod,
    pub point: String,
    pub reason: String,
}

/// Loads and attaches `spec`, trying `entry`'s methods in order.
pub fn attach(
    ebpf: &mut Ebpf,
    spec: &ProbeSpec,
    entry: &Entry,
    order: &[AttachMethod],
    btf: &mut KernelBtf,
) -> Result<Attached, Failed> {
    let mut reasons = Vec::new();
    let mut last = None;
    for &method in order {
        let (point, result) = match (&spec.hook, method) {
            (Hook::Tracepoint { program, .. }, _) => (
                entry.point.clone(),
                tracepoint(ebpf, program.name(), &entry.point),
            ),
            (Hook::Function { program, .. }, AttachMethod::Tracepoint) => (
                entry.point.clone(),
                entry
                    .tracepoint
                    .clone()
                    .and_then(|()| tracepoint(ebpf, program.name(), &entry.point)),
            ),
            (
                Hook::Function {
                    function, fexit, ..
                },
                AttachMethod::Fentry,
            ) => (
                (*function).to_owned(),
                function_fexit(ebpf, fexit.name(), function, btf),
            ),
            (
                Hook::Function {
                    function,
                    kprobe,
                    kretprobe,
                    ..
                },
                AttachMethod::Kprobe,
            ) => (
                (*function).to_owned(),
                kprobes(ebpf, kprobe.name(), kretprobe.name(), function),
            ),
        };
        match result {
            Ok(()) => return Ok(Attached { method, point }),
            Err(why) => {
                if order.len() > 1 {
                    log::info!(
                        "probe {}: {} on {point} failed ({why}); trying the next method",
                        spec.name,
                        method_name(method)
                    );
                }
                reasons.push(format!("{}: {why}", method_name(method)));
                last = Some((method, point));
            }
        }
    }
    let (method, point) = last.unwrap_or((AttachMethod::Tracepoint, entry.point.clone()));
    Err(Failed {
        method,
        point,
        reason: reasons.join("; "),
    })
}

fn tracepoint(ebpf: &mut Ebpf, name: &str, tp: &str) -> Result<(), String> {
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

fn function_fexit(
    ebpf: &mut Ebpf,
    name: &str,
    function: &str,
    btf: &mut KernelBtf,
) -> Result<(), String> {
    if !btf.present {
        return Err("the kernel has no BTF (/sys/kernel/btf/vmlinux)".into());
    }
    let btf = btf.get()?;
    let program: &mut FExit = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} not in the eBPF object"))?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    program
        .load(function, btf)
        .map_err(|e| format!("load: {}", error_chain(&e)))?;
    if let Err(e) = program.attach() {
        let _ = program.unload();
        return Err(format!("attach: {}", error_chain(&e)));
    }
    Ok(())
}

fn kprobe(ebpf: &mut Ebpf, name: &str, function: &str) -> Result<(), String> {
    let program: &mut KProbe = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} not in the eBPF object"))?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    program
        .load()
        .map_err(|e| format!("load: {}", error_chain(&e)))?;
    if let Err(e) = program.attach(function, 0) {
        let _ = program.unload();
        return Err(format!("attach: {}", error_chain(&e)));
    }
    Ok(())
}

/// The entry probe remembers the socket, the return probe counts: both or neither.
fn kprobes(ebpf: &mut Ebpf, entry: &str, ret: &str, function: &str) -> Result<(), String> {
    kprobe(ebpf, entry, function)?;
    if let Err(e) = kprobe(ebpf, ret, function) {
        if let Some(Ok(p)) = ebpf.program_mut(entry).map(<&mut KProbe>::try_from) {
            let _ = p.unload();
        }
        return Err(e);
    }
    Ok(())
}
