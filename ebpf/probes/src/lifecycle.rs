//! Process lifecycle: exec (sched:sched_process_exec), exit (sched:sched_process_exit) and the
//! hooks that tell how an exit happened without BTF: exit_group()'s code
//! (syscalls:sys_enter_exit_group), the fatal signal (signal:signal_deliver), and the parent
//! recorded at fork (sched:sched_process_fork).

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};
use firmware_agent_common::{
    DROP_EXEC, DROP_EXIT, ExecEvent, ExitEvent, ExitInfo, FILENAME_LEN, FLAG_EXIT_CODE,
    FLAG_EXIT_SIGNAL, FLAG_PPID_KNOWN, FLAG_TRUNCATED, KIND_EXEC, KIND_EXIT,
};

use crate::{
    ProbeError, ProbeResult,
    maps::{EXITING, PARENTS, PROC_EVENTS, count_drop, fill_header, offsets},
};

/// Signals whose default action does not end the process: CHLD, CONT, STOP, TSTP, TTIN, TTOU,
/// URG, WINCH. Every other signal delivered with the default handler is fatal.
const NON_FATAL_DEFAULT: u64 =
    (1 << 17) | (1 << 18) | (1 << 19) | (1 << 20) | (1 << 21) | (1 << 22) | (1 << 23) | (1 << 28);
const SIG_DFL: u64 = 0;

fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

fn is_leader() -> bool {
    let pid_tgid = bpf_get_current_pid_tgid();
    pid_tgid as u32 == (pid_tgid >> 32) as u32
}

fn parent_of(tgid: u32) -> (u32, u32) {
    match PARENTS.get_ptr(&tgid) {
        // SAFETY: map value pointer valid during this program run.
        Some(p) => (unsafe { *p }, FLAG_PPID_KNOWN),
        None => (0, 0),
    }
}

#[tracepoint]
pub fn fork(ctx: TracePointContext) -> u32 {
    let _ = try_fork(&ctx);
    0
}

fn try_fork(ctx: &TracePointContext) -> ProbeResult {
    // SAFETY: offset from this tracepoint's format file.
    let child: i32 = unsafe { ctx.read_at(offsets().fork_child_pid as usize)? };
    // The tracepoint fires in the parent: its tgid is the child's parent process.
    PARENTS.insert(&(child as u32), &current_tgid(), 0)?;
    Ok(())
}

#[tracepoint]
pub fn exec(ctx: TracePointContext) -> u32 {
    let _ = try_exec(&ctx);
    0
}

fn try_exec(ctx: &TracePointContext) -> ProbeResult {
    // SAFETY: offset from this tracepoint's format file.
    let loc: u32 = unsafe { ctx.read_at(offsets().exec_filename as usize)? };
    let (ppid, flags) = parent_of(current_tgid());
    let Some(mut entry) = PROC_EVENTS.reserve::<ExecEvent>(0) else {
        count_drop(DROP_EXEC);
        return Err(ProbeError::Full);
    };
    let ev = entry.as_mut_ptr();
    // `__data_loc`: low 16 bits are the offset of the string in the record, high 16 its length.
    let src = (ctx.as_ptr() as usize + (loc & 0xffff) as usize) as *const u8;
    let full_len = (loc >> 16) as usize;
    // SAFETY: `ev` points at a reserved, exclusively owned record; `src` is inside the
    // tracepoint record and read through the checked helper.
    unsafe {
        let truncated = if full_len > FILENAME_LEN {
            FLAG_TRUNCATED
        } else {
            0
        };
        fill_header(&mut (*ev).header, KIND_EXEC, flags | truncated);
        (*ev).ppid = ppid;
        let buf = &mut (*ev).filename;
        (*ev).filename_len = match bpf_probe_read_kernel_str_bytes(src, buf) {
            Ok(s) => s.len() as u32,
            Err(_) => 0,
        };
    }
    entry.submit(0);
    Ok(())
}

#[tracepoint]
pub fn exit_group(ctx: TracePointContext) -> u32 {
    let _ = try_exit_group(&ctx);
    0
}

fn try_exit_group(ctx: &TracePointContext) -> ProbeResult {
    // SAFETY: offset from this tracepoint's format file (a 64-bit syscall argument word).
    let code: u64 = unsafe { ctx.read_at(offsets().exit_group_code as usize)? };
    let info = ExitInfo {
        flags: FLAG_EXIT_CODE,
        exit_code: (code & 0xff) as i32,
        signal: 0,
        _pad: 0,
    };
    EXITING.insert(&current_tgid(), &info, 0)?;
    Ok(())
}

#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    let _ = try_signal_deliver(&ctx);
    0
}

fn try_signal_deliver(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    // SAFETY: offsets from this tracepoint's format file.
    let sig: i32 = unsafe { ctx.read_at(off.signal_sig as usize)? };
    let handler: u64 = unsafe { ctx.read_at(off.signal_handler as usize)? };
    if handler != SIG_DFL || sig <= 0 || sig >= 64 || NON_FATAL_DEFAULT & (1u64 << sig) != 0 {
        return Err(ProbeError::Ignored);
    }
    let info = ExitInfo {
        flags: FLAG_EXIT_SIGNAL,
        exit_code: 0,
        signal: sig as u32,
        _pad: 0,
    };
    EXITING.insert(&current_tgid(), &info, 0)?;
    Ok(())
}

#[tracepoint]
pub fn exit(ctx: TracePointContext) -> u32 {
    let _ = try_exit(&ctx);
    0
}

fn try_exit(_ctx: &TracePointContext) -> ProbeResult {
    // Fires for every thread; a process ends when its leader does.
    if !is_leader() {
        return Err(ProbeError::Ignored);
    }
    let tgid = current_tgid();
    let info = match EXITING.get_ptr(&tgid) {
        // SAFETY: map value pointer valid during this program run.
        Some(p) => unsafe { *p },
        None => ExitInfo::default(),
    };
    let (ppid, ppid_flag) = parent_of(tgid);
    let _ = EXITING.remove(&tgid);
    let _ = PARENTS.remove(&tgid);
    let Some(mut entry) = PROC_EVENTS.reserve::<ExitEvent>(0) else {
        count_drop(DROP_EXIT);
        return Err(ProbeError::Full);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size.
    unsafe {
        fill_header(&mut (*ev).header, KIND_EXIT, info.flags | ppid_flag);
        (*ev).ppid = ppid;
        (*ev).exit_code = info.exit_code;
        (*ev).signal = info.signal;
        (*ev)._pad = 0;
    }
    entry.submit(0);
    Ok(())
}
