//! The contract against the built object: every program the contract lists is in the object
//! with the type its hook needs and nothing else is; every probe's programs are listed once;
//! every map has the key and value sizes of the shared types.

use std::collections::BTreeMap;

use aya_obj::{Object, ProgramSection};
use firmware_agent_common::{
    COUNTER_SLOTS, COUNTERS_MAP, DiskStats, MAX_RECORD_BYTES, OFFSETS_GLOBAL, Program, Ring,
    SCRATCH_MAP, SockInfo, TracepointOffsets, Transport, WriteKey, WriteStat, map_names,
};

use edge_wire::AttachMethod;

use super::*;
use crate::config::FunctionAttach;

fn parsed(transport: Transport) -> Object {
    Object::parse(super::object(transport)).expect("the embedded object parses")
}

/// The section type each program's hook needs.
fn expected_sections() -> BTreeMap<&'static str, &'static str> {
    let mut want = BTreeMap::new();
    for spec in PROBES {
        match spec.hook {
            Hook::Tracepoint { program, .. } => {
                want.insert(program.name(), "tracepoint");
            }
            Hook::Function {
                program,
                fexit,
                kprobe,
                kretprobe,
                ..
            } => {
                want.insert(program.name(), "tracepoint");
                want.insert(fexit.name(), "fexit");
                want.insert(kprobe.name(), "kprobe");
                want.insert(kretprobe.name(), "kretprobe");
            }
        }
    }
    want
}

fn section_kind(s: &ProgramSection) -> &'static str {
    match s {
        ProgramSection::TracePoint => "tracepoint",
        ProgramSection::FExit { .. } => "fexit",
        ProgramSection::KProbe => "kprobe",
        ProgramSection::KRetProbe => "kretprobe",
        _ => "other",
    }
}

#[test]
fn the_objects_hold_exactly_the_contract_programs_with_their_hook_types() {
    for transport in Transport::ALL {
        programs_match(&parsed(transport));
    }
}

fn programs_match(obj: &Object) {
    let got: BTreeMap<&str, &str> = obj
        .programs
        .iter()
        .map(|(name, p)| (name.as_str(), section_kind(&p.section)))
        .collect();
    assert_eq!(got, expected_sections());
    let contract: Vec<&str> = Program::ALL.iter().map(|p| p.name()).collect();
    let mut listed: Vec<&str> = got.keys().copied().collect();
    listed.sort_unstable();
    let mut contract_sorted = contract.clone();
    contract_sorted.sort_unstable();
    assert_eq!(listed, contract_sorted, "Program::ALL vs the object");
}

#[test]
fn every_program_is_behind_exactly_one_probe_of_its_family() {
    let mut seen = BTreeMap::new();
    for spec in PROBES {
        for p in spec.programs() {
            assert_eq!(
                p.family(),
                spec.family(),
                "{} in probe {}",
                p.name(),
                spec.name
            );
            assert!(seen.insert(p, spec.name).is_none(), "{p:?} twice");
        }
    }
    for p in Program::ALL {
        assert!(seen.contains_key(&p), "{p:?} is behind no probe");
    }
    let mut names = program_names();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "probe and family names are unique");
}

#[test]
fn every_map_has_the_shared_types_sizes() {
    for transport in Transport::ALL {
        maps_match(&parsed(transport), transport);
    }
}

fn maps_match(obj: &Object, transport: Transport) {
    let map = |name: &str| {
        obj.maps
            .get(name)
            .unwrap_or_else(|| panic!("map {name} not in the {transport:?} object"))
    };
    for ring in Ring::ALL {
        let m = map(ring.map_name());
        match transport {
            // BPF_MAP_TYPE_RINGBUF, sized by the loader (0 in the object).
            Transport::RingBuf => assert_eq!((m.map_type(), m.max_entries()), (27, 0), "{ring:?}"),
            // BPF_MAP_TYPE_PERF_EVENT_ARRAY of u32 fds, one per CPU (0: aya sets the count).
            Transport::Perf => assert_eq!(
                (m.map_type(), m.max_entries(), m.key_size(), m.value_size()),
                (4, 0, 4, 4),
                "{ring:?}"
            ),
        }
    }
    // Each object has only its own transport's maps.
    let scratch = obj.maps.get(SCRATCH_MAP);
    match transport {
        Transport::RingBuf => assert!(scratch.is_none(), "SCRATCH in the ring-buffer object"),
        Transport::Perf => {
            let s = scratch.expect("SCRATCH in the perf object");
            // BPF_MAP_TYPE_PERCPU_ARRAY, one slot of the largest record.
            assert_eq!(
                (s.map_type(), s.max_entries(), s.value_size() as usize),
                (6, 1, MAX_RECORD_BYTES)
            );
        }
    }
    let types: Vec<u32> = obj.maps.values().map(|m| m.map_type()).collect();
    let other = match transport {
        Transport::RingBuf => 4,
        Transport::Perf => 27,
    };
    assert!(
        !types.contains(&other),
        "{transport:?} object holds map type {other}"
    );
    let counters = map(COUNTERS_MAP);
    assert_eq!(
        (counters.max_entries(), counters.value_size()),
        (COUNTER_SLOTS, 8)
    );
    for (name, key, value) in [
        (map_names::SOCKS, 8, size_of::<SockInfo>()),
        (
            map_names::WRITES,
            size_of::<WriteKey>(),
            size_of::<WriteStat>(),
        ),
        (map_names::DISKS, 4, size_of::<DiskStats>()),
        (map_names::PARENTS, 4, 4),
        (map_names::WAKES, 4, 8),
    ] {
        let m = map(name);
        assert_eq!(
            (m.key_size() as usize, m.value_size() as usize),
            (key, value),
            "{name}"
        );
    }
    // The offsets global is the shared struct.
    let rodata = obj
        .maps
        .values()
        .find(|m| m.section_kind() == aya_obj::EbpfSectionKind::Rodata)
        .expect(".rodata");
    assert!(rodata.value_size() as usize >= size_of::<TracepointOffsets>());
    assert_eq!(OFFSETS_GLOBAL, "OFFSETS");
}

#[test]
fn need_sizes_come_from_the_slot_types() {
    let by_field = |tp: &str, field: &str| {
        PROBES
            .iter()
            .find_map(|s| match &s.hook {
                Hook::Tracepoint {
                    tracepoint, needs, ..
                } if *tracepoint == tp => needs.iter().find(|n| n.field == field),
                _ => None,
            })
            .map(|n| (n.size, n.fit, n.optional))
            .unwrap_or_else(|| panic!("{tp} {field}"))
    };
    assert_eq!(
        by_field("syscalls:sys_enter_bind", "fd"),
        (8, Fit::Exact, false)
    );
    assert_eq!(by_field("task:task_newtask", "pid"), (4, Fit::Exact, false));
    assert_eq!(
        by_field("sock:inet_sock_set_state", "saddr_v6"),
        (16, Fit::Exact, false)
    );
    assert_eq!(
        by_field("oom:mark_victim", "oom_score_adj"),
        (2, Fit::Exact, true)
    );
    assert_eq!(
        by_field("block:block_rq_issue", "rwbs"),
        (8, Fit::Prefix, false)
    );
}

#[test]
fn kernel_functions_prefer_the_tracepoint_then_fexit_then_kprobes() {
    use AttachMethod::{Fentry, Kprobe, Tracepoint};
    let tcp = PROBES
        .iter()
        .find(|p| p.name == "tcp_send")
        .expect("tcp_send");
    let exec = PROBES.iter().find(|p| p.name == "exec").expect("exec");
    let m = |spec, f, tp_ok, btf| attach::methods(spec, f, tp_ok, btf);
    assert_eq!(
        m(tcp, FunctionAttach::Auto, true, true),
        [Tracepoint, Fentry, Kprobe]
    );
    assert_eq!(m(tcp, FunctionAttach::Auto, false, true), [Fentry, Kprobe]);
    assert_eq!(m(tcp, FunctionAttach::Auto, false, false), [Kprobe]);
    assert_eq!(m(tcp, FunctionAttach::Kprobe, true, true), [Kprobe]);
    assert_eq!(m(tcp, FunctionAttach::Fentry, true, false), [Fentry]);
    assert_eq!(
        m(tcp, FunctionAttach::Tracepoint, false, true),
        [Tracepoint]
    );
    assert_eq!(m(exec, FunctionAttach::Kprobe, false, false), [Tracepoint]);
}
