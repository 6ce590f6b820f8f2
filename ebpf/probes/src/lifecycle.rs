//! Process lifecycle: exec (sched:sched_process_exec), exit (sched:sched_process_exit) and the
//! hooks that tell how an exit happened without BTF: exit_group()'s code
//! (syscalls:sys_enter_exit_group), the fatal signal (signal:signal_deliver, with the signal as
//! sent from signal:signal_generate when the kernel delivers it as SIGKILL), and the parent
//! recorded when a process (not a thread) is created (task:task_newtask, which carries the
//! clone flags).

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel_str_bytes},
    macros::tracepoint,
    programs::TracePointContext,
};
use firmware_agent_common::{
    ExecEvent, ExitEvent, ExitInfo, FILENAME_LEN, FLAG_EXIT_CODE, FLAG_EXIT_SIGNAL,
    FLAG_PPID_KNOWN, FLAG_TRUNCATED, Program,
};

use crate::{
    ProbeError, ProbeResult, finish,
    maps::{
        EXITING, PARENTS, SENT_SIGNALS, current_tgid, fill_header, offsets, read, reserve, submit,
    },
};

/// Bit `sig - 1` for signal `sig` (1..=64), so all 64 signals fit in a `u64`.
const fn sig_bit(sig: u32) -> u64 {
    1 << (sig - 1)
}

/// Signals whose default action does not end the process: CHLD, CONT, STOP, TSTP, TTIN, TTOU,
/// URG, WINCH. Every other signal delivered with the default handler is fatal, real-time
/// signals 32..=64 included.
const NON_FATAL_DEFAULT: u64 = sig_bit(17)
    | sig_bit(18)
    | sig_bit(19)
    | sig_bit(20)
    | sig_bit(21)
    | sig_bit(22)
    | sig_bit(23)
    | sig_bit(28);
/// The highest signal number (`_NSIG`).
const MAX_SIGNAL: i32 = 64;
const SIG_DFL: u64 = 0;
const SIGKILL: i32 = 9;
/// signal_generate `result`: the signal was queued.
const TRACE_SIGNAL_DELIVERED: i32 = 0;
/// clone(2) flags that matter to the parent map.
const CLONE_THREAD: u64 = 0x0001_0000;
const CLONE_PARENT: u64 = 0x0000_8000;

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
    finish(Program::Fork, try_fork(&ctx))
}

fn try_fork(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    let flags = read(ctx, off.fork_clone_flags)?;
    // A new thread is not a new process: its id would never be removed at exit (only thread
    // group leaders are), and would evict real parents from the LRU map.
    if flags & CLONE_THREAD != 0 {
        return Err(ProbeError::Ignored);
    }
    let child = read(ctx, off.fork_pid)?;
    // The tracepoint fires in the creating task. With CLONE_PARENT the child's parent is the
    // creator's parent, if we know it; else user space looks it up in /proc.
    let parent = if flags & CLONE_PARENT != 0 {
        match PARENTS.get_ptr(&current_tgid()) {
            // SAFETY: map value pointer valid during this program run.
            Some(p) => unsafe { *p },
            None => return Err(ProbeError::Ignored),
        }
    } else {
        current_tgid()
    };
    PARENTS.insert(&(child as u32), &parent, 0)?;
    Ok(())
}

#[tracepoint]
pub fn exec(ctx: TracePointContext) -> u32 {
    finish(Program::Exec, try_exec(&ctx))
}

fn try_exec(ctx: &TracePointContext) -> ProbeResult {
    let loc = read(ctx, offsets().exec_filename)?;
    let (ppid, flags) = parent_of(current_tgid());
    let mut entry = reserve::<ExecEvent>()?;
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
        fill_header(ev, flags | truncated);
        (*ev).ppid = ppid;
        let buf = &mut (*ev).filename;
        (*ev).filename_len = match bpf_probe_read_kernel_str_bytes(src, buf) {
            Ok(s) => s.len() as u32,
            Err(_) => 0,
        };
    }
    submit(ctx, entry)
}

#[tracepoint]
pub fn exit_group(ctx: TracePointContext) -> u32 {
    finish(Program::ExitGroup, try_exit_group(&ctx))
}

fn try_exit_group(ctx: &TracePointContext) -> ProbeResult {
    let code = read(ctx, offsets().exit_group_code)?;
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
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    finish(Program::SignalGenerate, try_signal_generate(&ctx))
}

fn try_signal_generate(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    if read(ctx, off.generate_result)? != TRACE_SIGNAL_DELIVERED {
        return Err(ProbeError::Ignored);
    }
    let sig = read(ctx, off.generate_sig)?;
    let pid = read(ctx, off.generate_pid)?;
    SENT_SIGNALS.insert(&(pid as u32), &(sig as u32), 0)?;
    Ok(())
}

/// The signal to report for a delivery of `sig` to the current task. A signal that is fatal
/// by default, sent to a process, is turned into SIGKILL for the whole group when it is queued
/// (unless it dumps core): the delivery then says SIGKILL, and the signal as sent is the truth.
#[inline(always)]
fn as_sent(sig: i32) -> i32 {
    if sig != SIGKILL {
        return sig;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let (pid, tgid) = (pid_tgid as u32, (pid_tgid >> 32) as u32);
    let sent = SENT_SIGNALS
        .get_ptr(&pid)
        .or_else(|| SENT_SIGNALS.get_ptr(&tgid));
    match sent {
        // SAFETY: map value pointer valid during this program run.
        Some(p) => {
            let s = unsafe { *p } as i32;
            if (1..=MAX_SIGNAL).contains(&s) && NON_FATAL_DEFAULT & sig_bit(s as u32) == 0 {
                s
            } else {
                sig
            }
        }
        None => sig,
    }
}

#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> u32 {
    finish(Program::SignalDeliver, try_signal_deliver(&ctx))
}

fn try_signal_deliver(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    let sig = read(ctx, off.signal_sig)?;
    let handler = read(ctx, off.signal_handler)?;
    if handler != SIG_DFL
        || !(1..=MAX_SIGNAL).contains(&sig)
        || NON_FATAL_DEFAULT & sig_bit(sig as u32) != 0
    {
        return Err(ProbeError::Ignored);
    }
    let info = ExitInfo {
        flags: FLAG_EXIT_SIGNAL,
        exit_code: 0,
        signal: as_sent(sig) as u32,
        _pad: 0,
    };
    EXITING.insert(&current_tgid(), &info, 0)?;
    Ok(())
}

#[tracepoint]
pub fn exit(ctx: TracePointContext) -> u32 {
    finish(Program::Exit, try_exit(&ctx))
}

fn try_exit(ctx: &TracePointContext) -> ProbeResult {
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
    let _ = SENT_SIGNALS.remove(&tgid);
    let mut entry = reserve::<ExitEvent>()?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size.
    unsafe {
        fill_header(ev, info.flags | ppid_flag);
        (*ev).ppid = ppid;
        (*ev).exit_code = info.exit_code;
        (*ev).signal = info.signal;
        (*ev)._pad = 0;
    }
    submit(ctx, entry)
}
