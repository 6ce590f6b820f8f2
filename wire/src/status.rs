//! Status (birth and death) and metrics messages.

use alloc::vec::Vec;

use crate::{BoardHealth, DropCount, Name, ProcUse, Reason};

/// Published retained on `status` at every (re)connect: everything an operator needs to know
/// about how the agent started on this board.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Birth {
    pub device: Name,
    /// /proc/sys/kernel/random/boot_id: tells reboots apart.
    pub boot_id: Name,
    /// Increments at every connect of this agent process (Sparkplug's bdSeq idea); the will
    /// registered with that connection carries the same number.
    pub session: u32,
    /// This agent process's run id (see `EventBatch::run_id`).
    pub run_id: u64,
    pub unix_ms: u64,
    pub agent_version: Name,
    pub schema_version: u16,
    pub kernel_release: Name,
    pub arch: Name,
    pub page_size: u32,
    /// Whether the kernel exposes BTF (/sys/kernel/btf/vmlinux). The probes never need it.
    pub kernel_btf: bool,
    pub ring_buffers: Vec<RingBufferInfo>,
    pub probes: Vec<ProbeInfo>,
    /// Where undelivered batches wait.
    pub queue: QueueInfo,
}

/// The outbox's caps, as configured.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueInfo {
    /// Bytes of encoded batches held in RAM.
    pub ram_bytes: u64,
    /// Bytes the disk spool may hold; 0 when there is no spool.
    pub spool_bytes: u64,
}

/// A ring (the probes' output of one record stream) as configured and as created.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RingBufferInfo {
    pub name: Name,
    /// Bytes asked for in the config.
    pub requested: u64,
    /// Bytes created: the smallest power of two >= max(requested, page size); with the perf
    /// transport, per CPU.
    pub chosen: u64,
    /// How its records reach the agent.
    pub transport: RingTransport,
}

/// The kernel object behind a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RingTransport {
    /// One BPF ring buffer (kernel 5.8+) of `chosen` bytes shared by all CPUs.
    RingBuf,
    /// A perf event array: one buffer per CPU of `pages_per_cpu` pages (`chosen` bytes), on
    /// `cpus` CPUs (kernels without ring buffers, or forced by config).
    Perf { pages_per_cpu: u32, cpus: u32 },
}

/// One probe and what became of it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeInfo {
    pub name: Name,
    /// Where it attaches: `category:name` of a tracepoint, or a kernel function's name.
    pub tracepoint: Name,
    pub state: ProbeState,
    /// How it attaches (or would have, when disabled or skipped).
    pub method: AttachMethod,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttachMethod {
    /// A tracepoint, its fields at offsets read from tracefs (no BTF needed).
    Tracepoint,
    /// fentry/fexit on a kernel function (needs BTF).
    Fentry,
    /// kprobe/kretprobe on a kernel function (needs kprobes, not BTF).
    Kprobe,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ProbeState {
    Attached,
    /// Disabled in the config.
    Disabled,
    /// Could not be loaded or attached.
    Skipped {
        reason: Reason,
    },
}

/// Published on `status` as the MQTT will (connection lost) or by a clean shutdown.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Death {
    pub device: Name,
    pub boot_id: Name,
    pub session: u32,
    pub cause: DeathCause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeathCause {
    /// The broker published the will: the agent vanished without saying goodbye.
    ConnectionLost,
    /// The agent was asked to stop (SIGINT/SIGTERM) and did.
    Shutdown,
}

/// A periodic system sample.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub device: Name,
    pub boot_id: Name,
    pub unix_ms: u64,
    pub uptime_s: u64,
    /// Whole-system CPU use since the previous sample, percent of all cores.
    pub cpu_percent: f32,
    pub mem_total_kib: u64,
    pub mem_used_kib: u64,
    /// 1, 5 and 15 minute load averages.
    pub load: [f32; 3],
    pub temperatures: Vec<Temperature>,
    pub agent: AgentStats,
    /// Temperatures, CPU frequency, throttling, under-voltage and fans, from sysfs.
    pub board: BoardHealth,
    /// The processes that used the most CPU over the interval, busiest first (`metrics.top_n`).
    pub top_cpu: Vec<ProcUse>,
    /// The processes with the largest resident set, largest first (`metrics.top_n`).
    pub top_mem: Vec<ProcUse>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Temperature {
    pub label: Name,
    pub celsius: f32,
}

/// The agent's own counters, totals since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentStats {
    pub rss_kib: u64,
    /// Kernel records decoded.
    pub events: u64,
    /// Event batches made.
    pub batches: u64,
    /// Events lost since start, by source (the same sources as `EventBatch::drops`), non-zero only.
    pub drops: Vec<DropCount>,
    /// Messages waiting for the broker's acknowledgement, and their bytes (RAM and spool).
    pub queued: u64,
    pub queued_bytes: u64,
    /// Bytes of those on disk in the spool.
    pub spooled_bytes: u64,
    /// Bytes written to the spool since start, and in how many appends (writes).
    pub spool_written_bytes: u64,
    pub spool_appends: u64,
    /// Metrics samples dropped because the queue was full.
    pub metrics_dropped: u64,
    /// Probe programs that failed at least once since start, with the count by reason.
    pub probe_errors: Vec<ProbeErrors>,
}

/// One probe program's failures since the agent started (a failed hit loses what the probe
/// would have recorded; ring-full failures are also counted as `ring:<kind>` drops).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeErrors {
    /// The BPF program's name (e.g. `exec`, `tcp_sendmsg_fexit`).
    pub program: Name,
    /// A helper failed: unreadable field or memory, a map update refused.
    pub helper: u64,
    /// A hash map had no room for a new entry.
    pub map_full: u64,
    /// The ring buffer had no room for the record.
    pub ring_full: u64,
}
