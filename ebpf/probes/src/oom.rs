//! OOM kills: oom:mark_victim, which fires when the OOM killer has chosen and signalled its
//! victim. Its `pid` is in every kernel; comm, memory figures, uid and oom_score_adj only in
//! newer ones (optional offsets: zero when the format lacks them). The cgroup v2 id of the task
//! running the kill (for a memory-cgroup OOM, a task of that cgroup) comes with it.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_cgroup_id, bpf_probe_read_kernel_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};
use firmware_agent_common::{FLAG_OOM_COMM, FLAG_OOM_DETAILS, OomKillEvent, Program};

use crate::{
    ProbeResult, finish,
    maps::{fill_header, offsets, read, reserve, submit},
};

#[tracepoint]
pub fn oom_mark_victim(ctx: TracePointContext) -> u32 {
    finish(Program::OomMarkVictim, try_oom_mark_victim(&ctx))
}

fn try_oom_mark_victim(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    let pid = read(ctx, off.oom_pid)?;
    // Optional fields: read before reserving (a reserved record must be submitted).
    let details = off.oom_total_vm.known()
        && off.oom_anon_rss.known()
        && off.oom_file_rss.known()
        && off.oom_shmem_rss.known()
        && off.oom_pgtables.known()
        && off.oom_uid.known()
        && off.oom_score_adj.known();
    let mut rec = OomKillEvent {
        victim_pid: pid as u32,
        ..Default::default()
    };
    if details {
        rec.total_vm_kib = read(ctx, off.oom_total_vm)?;
        rec.anon_rss_kib = read(ctx, off.oom_anon_rss)?;
        rec.file_rss_kib = read(ctx, off.oom_file_rss)?;
        rec.shmem_rss_kib = read(ctx, off.oom_shmem_rss)?;
        rec.pgtables_kib = read(ctx, off.oom_pgtables)?;
        rec.uid = read(ctx, off.oom_uid)?;
        rec.oom_score_adj = i32::from(read(ctx, off.oom_score_adj)?);
    }
    let loc = if off.oom_comm.known() {
        read(ctx, off.oom_comm)?
    } else {
        0
    };
    // SAFETY: helper without preconditions.
    rec.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    let mut entry = reserve::<OomKillEvent>()?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size; the comm
    // source is inside the tracepoint record and read through the checked helper.
    unsafe {
        ev.write(rec);
        let mut flags = if details { FLAG_OOM_DETAILS } else { 0 };
        if loc != 0 {
            let src = (ctx.as_ptr() as usize + (loc & 0xffff) as usize) as *const u8;
            if bpf_probe_read_kernel_str_bytes(src, &mut (*ev).victim_comm).is_ok() {
                flags |= FLAG_OOM_COMM;
            }
        }
        fill_header(ev, flags);
    }
    submit(ctx, entry)
}
