//! The probe catalogue: every probe the agent can attach, the BPF program(s) behind it, where
//! it attaches, and the tracepoint fields it reads. Field sizes are not written here: `need!`
//! takes them from the type of the `TracepointOffsets` slot the probe reads (the same type the
//! BPF side reads it as), so the format check cannot disagree with the probe.

use firmware_agent_common::{Family, Program, TracepointOffsets};

/// How a field's size in the `format` file must relate to what the probe reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Exactly the slot type's size.
    Exact,
    /// At least that size: the probe reads a prefix (e.g. `rwbs`, 8 or 10 bytes by version).
    Prefix,
}

/// A tracepoint field a program reads: its name in the `format` file, the size the program
/// reads, and where its offset goes.
pub struct Need {
    pub field: &'static str,
    pub size: u32,
    pub fit: Fit,
    /// The program runs without it (offset left 0) on kernels whose format lacks it.
    pub optional: bool,
    pub set: fn(&mut TracepointOffsets, u32),
    pub get: fn(&TracepointOffsets) -> u32,
}

macro_rules! need {
    ($field:literal => $slot:ident) => {
        need!(@ $field, $slot, Fit::Exact, false)
    };
    ($field:literal => $slot:ident, optional) => {
        need!(@ $field, $slot, Fit::Exact, true)
    };
    ($field:literal => $slot:ident, prefix) => {
        need!(@ $field, $slot, Fit::Prefix, false)
    };
    (@ $field:literal, $slot:ident, $fit:expr, $optional:expr) => {
        Need {
            field: $field,
            size: TracepointOffsets::UNKNOWN.$slot.size(),
            fit: $fit,
            optional: $optional,
            set: |o, v| o.$slot.offset = v,
            get: |o| o.$slot.offset,
        }
    };
}

/// Where a probe attaches.
pub enum Hook {
    /// A tracepoint (`category:name`), its offsets from tracefs.
    Tracepoint {
        program: Program,
        tracepoint: &'static str,
        needs: &'static [Need],
    },
    /// What newer kernels have a tracepoint for and older ones only a kernel function: the
    /// tracepoint where it exists, else fexit on the function (BTF), else kprobe + kretprobe.
    Function {
        tracepoint: &'static str,
        program: Program,
        needs: &'static [Need],
        function: &'static str,
        fexit: Program,
        kprobe: Program,
        kretprobe: Program,
    },
}

/// One probe: what an operator sees in the birth and names in `probes.disabled`.
pub struct ProbeSpec {
    pub name: &'static str,
    pub hook: Hook,
    /// True for probes that produce data (events or summaries); if none of these attach the
    /// agent has no purpose.
    pub produces_events: bool,
}

impl ProbeSpec {
    /// The BPF programs behind this probe.
    pub fn programs(&self) -> Vec<Program> {
        match self.hook {
            Hook::Tracepoint { program, .. } => vec![program],
            Hook::Function {
                program,
                fexit,
                kprobe,
                kretprobe,
                ..
            } => vec![program, fexit, kprobe, kretprobe],
        }
    }

    pub fn family(&self) -> Family {
        match self.hook {
            Hook::Tracepoint { program, .. } | Hook::Function { program, .. } => program.family(),
        }
    }
}

const fn tp(
    program: Program,
    tracepoint: &'static str,
    produces_events: bool,
    needs: &'static [Need],
) -> ProbeSpec {
    ProbeSpec {
        name: program.name(),
        hook: Hook::Tracepoint {
            program,
            tracepoint,
            needs,
        },
        produces_events,
    }
}

const EXT4_WRITE_END: &[Need] = &[need!("dev" => ext4_dev), need!("copied" => ext4_copied)];
const SOCK_LENGTH: &[Need] = &[
    need!("sk" => sock_len_sk),
    need!("protocol" => sock_len_protocol),
    need!("ret" => sock_len_ret),
    need!("flags" => sock_len_flags),
];

/// Every probe, in attach order (helpers before the probes that use what they record).
pub static PROBES: &[ProbeSpec] = &[
    tp(
        Program::Fork,
        "task:task_newtask",
        false,
        &[
            need!("pid" => fork_pid),
            need!("clone_flags" => fork_clone_flags),
        ],
    ),
    tp(
        Program::BindEnter,
        "syscalls:sys_enter_bind",
        false,
        &[
            need!("fd" => bind_fd),
            need!("umyaddr" => bind_addr),
            need!("addrlen" => bind_addrlen),
        ],
    ),
    tp(
        Program::BindExit,
        "syscalls:sys_exit_bind",
        true,
        &[need!("ret" => bind_ret)],
    ),
    tp(
        Program::Exec,
        "sched:sched_process_exec",
        true,
        &[need!("filename" => exec_filename)],
    ),
    tp(
        Program::ExitGroup,
        "syscalls:sys_enter_exit_group",
        false,
        &[need!("error_code" => exit_group_code)],
    ),
    tp(
        Program::SignalGenerate,
        "signal:signal_generate",
        false,
        &[
            need!("sig" => generate_sig),
            need!("pid" => generate_pid),
            need!("result" => generate_result),
        ],
    ),
    tp(
        Program::SignalDeliver,
        "signal:signal_deliver",
        false,
        &[
            need!("sig" => signal_sig),
            need!("sa_handler" => signal_handler),
        ],
    ),
    tp(Program::Exit, "sched:sched_process_exit", true, &[]),
    tp(
        Program::OomMarkVictim,
        "oom:mark_victim",
        true,
        &[
            need!("pid" => oom_pid),
            need!("comm" => oom_comm, optional),
            need!("total_vm" => oom_total_vm, optional),
            need!("anon_rss" => oom_anon_rss, optional),
            need!("file_rss" => oom_file_rss, optional),
            need!("shmem_rss" => oom_shmem_rss, optional),
            need!("uid" => oom_uid, optional),
            need!("pgtables" => oom_pgtables, optional),
            need!("oom_score_adj" => oom_score_adj, optional),
        ],
    ),
    ProbeSpec {
        name: "tcp_send",
        hook: Hook::Function {
            tracepoint: "sock:sock_send_length",
            program: Program::TcpSendLength,
            needs: SOCK_LENGTH,
            function: "tcp_sendmsg",
            fexit: Program::TcpSendmsgFexit,
            kprobe: Program::TcpSendmsgKprobe,
            kretprobe: Program::TcpSendmsgKretprobe,
        },
        produces_events: false,
    },
    ProbeSpec {
        name: "tcp_recv",
        hook: Hook::Function {
            tracepoint: "sock:sock_recv_length",
            program: Program::TcpRecvLength,
            needs: SOCK_LENGTH,
            function: "tcp_recvmsg",
            fexit: Program::TcpRecvmsgFexit,
            kprobe: Program::TcpRecvmsgKprobe,
            kretprobe: Program::TcpRecvmsgKretprobe,
        },
        produces_events: false,
    },
    tp(
        Program::TcpRetransmit,
        "tcp:tcp_retransmit_skb",
        false,
        &[need!("skaddr" => retransmit_skaddr)],
    ),
    tp(
        Program::TcpState,
        "sock:inet_sock_set_state",
        true,
        &[
            need!("skaddr" => sock_skaddr),
            need!("oldstate" => sock_oldstate),
            need!("newstate" => sock_newstate),
            need!("sport" => sock_sport),
            need!("dport" => sock_dport),
            need!("family" => sock_family),
            need!("protocol" => sock_protocol),
            need!("saddr" => sock_saddr),
            need!("daddr" => sock_daddr),
            need!("saddr_v6" => sock_saddr_v6),
            need!("daddr_v6" => sock_daddr_v6),
        ],
    ),
    tp(
        Program::Ext4DaWriteEnd,
        "ext4:ext4_da_write_end",
        true,
        EXT4_WRITE_END,
    ),
    tp(
        Program::Ext4WriteEnd,
        "ext4:ext4_write_end",
        true,
        EXT4_WRITE_END,
    ),
    tp(
        Program::Ext4JournalledWriteEnd,
        "ext4:ext4_journalled_write_end",
        true,
        EXT4_WRITE_END,
    ),
    tp(
        Program::BlockRqIssue,
        "block:block_rq_issue",
        false,
        &[
            need!("dev" => block_dev),
            need!("sector" => block_sector),
            need!("bytes" => block_bytes),
            need!("rwbs" => block_rwbs, prefix),
        ],
    ),
    tp(
        Program::BlockRqComplete,
        "block:block_rq_complete",
        true,
        &[need!("dev" => block_dev), need!("sector" => block_sector)],
    ),
];

/// Probe and family names, for config validation (`probes.disabled` takes either).
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = PROBES.iter().map(|p| p.name).collect();
    names.extend(Family::ALL.iter().map(|f| f.name()));
    names
}

/// The probe whose name or family name is `name`.
pub fn matches(spec: &ProbeSpec, name: &str) -> bool {
    spec.name == name || spec.family().name() == name
}
