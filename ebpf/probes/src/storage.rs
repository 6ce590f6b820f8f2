//! Storage: page-cache bytes written per process, and block I/O latency per disk.
//!
//! Writes are attributed at the moment a process copies them into the page cache, in its own
//! context: ext4's write_end tracepoints (delayed allocation, plain and journalled data modes)
//! carry `copied`, the bytes that write() put in the page cache. Writeback runs later in kernel
//! workers, so block-layer events cannot name the writer. See README "Storage" for the
//! trade-offs. Block latency pairs block_rq_issue with block_rq_complete by (device, sector).

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_comm, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use firmware_agent_common::{
    BlockKey, BlockOp, BlockStart, DiskStats, Program, WriteKey, WriteStat, latency_bucket,
};

use crate::{
    ProbeError, ProbeResult, finish,
    maps::{BLOCK_STARTS, DISKS, WRITES, atomic_add, current_tgid, offsets, read},
};

#[tracepoint]
pub fn ext4_da_write_end(ctx: TracePointContext) -> u32 {
    finish(Program::Ext4DaWriteEnd, try_write_end(&ctx))
}

#[tracepoint]
pub fn ext4_write_end(ctx: TracePointContext) -> u32 {
    finish(Program::Ext4WriteEnd, try_write_end(&ctx))
}

#[tracepoint]
pub fn ext4_journalled_write_end(ctx: TracePointContext) -> u32 {
    finish(Program::Ext4JournalledWriteEnd, try_write_end(&ctx))
}

#[inline(always)]
fn try_write_end(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    let copied = read(ctx, off.ext4_copied)?;
    if copied == 0 {
        return Err(ProbeError::Ignored);
    }
    let key = WriteKey {
        tgid: current_tgid(),
        dev: read(ctx, off.ext4_dev)?,
    };
    if WRITES.get_ptr_mut(&key).is_none() {
        let fresh = WriteStat {
            bytes: 0,
            chunks: 0,
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
        };
        // Another CPU may have created it meanwhile (-EEXIST): then add to theirs.
        if let Err(e) = WRITES.insert(&key, &fresh, u64::from(BPF_NOEXIST))
            && e != -17
        {
            return Err(e.into());
        }
    }
    let p = WRITES.get_ptr_mut(&key).ok_or(ProbeError::Helper)?;
    // SAFETY: map value pointer valid during this program run.
    unsafe {
        atomic_add(&raw mut (*p).bytes, u64::from(copied));
        atomic_add(&raw mut (*p).chunks, 1);
    }
    Ok(())
}

#[tracepoint]
pub fn block_rq_issue(ctx: TracePointContext) -> u32 {
    finish(Program::BlockRqIssue, try_block_rq_issue(&ctx))
}

fn try_block_rq_issue(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    let key = BlockKey {
        dev: read(ctx, off.block_dev)?,
        _pad: 0,
        sector: read(ctx, off.block_sector)?,
    };
    // rwbs: an optional 'F' (preflush), then the operation: R(ead), W(rite), D(iscard),
    // F(lush), N(one).
    let rwbs = read(ctx, off.block_rwbs)?;
    let opc = if rwbs[0] == b'F' && rwbs[1] != b'F' {
        rwbs[1]
    } else {
        rwbs[0]
    };
    let op = match opc {
        b'R' => BlockOp::Read,
        b'W' => BlockOp::Write,
        _ => BlockOp::Other,
    };
    let start = BlockStart {
        // SAFETY: helper without preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        bytes: read(ctx, off.block_bytes)?,
        op: op as u32,
    };
    BLOCK_STARTS.insert(&key, &start, 0)?;
    Ok(())
}

#[tracepoint]
pub fn block_rq_complete(ctx: TracePointContext) -> u32 {
    finish(Program::BlockRqComplete, try_block_rq_complete(&ctx))
}

fn try_block_rq_complete(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    let dev = read(ctx, off.block_dev)?;
    let key = BlockKey {
        dev,
        _pad: 0,
        sector: read(ctx, off.block_sector)?,
    };
    let start = match BLOCK_STARTS.get_ptr(&key) {
        // SAFETY: map value pointer valid during this program run.
        Some(p) => unsafe { *p },
        None => return Err(ProbeError::Ignored),
    };
    let _ = BLOCK_STARTS.remove(&key);
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let bucket = latency_bucket(now.saturating_sub(start.ts_ns) / 1000);
    if DISKS.get_ptr_mut(&dev).is_none() {
        // -EEXIST: another CPU created it meanwhile.
        if let Err(e) = DISKS.insert(&dev, &DiskStats::default(), u64::from(BPF_NOEXIST))
            && e != -17
        {
            return Err(e.into());
        }
    }
    let p = DISKS.get_ptr_mut(&dev).ok_or(ProbeError::Helper)?;
    let op = if start.op > 2 { 2 } else { start.op as usize };
    // SAFETY: map value pointer valid during this program run; indexes are bounded above.
    unsafe {
        if let Some(c) = (*p).requests.get_mut(op) {
            atomic_add(c, 1);
        }
        if let Some(c) = (*p).bytes.get_mut(op) {
            atomic_add(c, u64::from(start.bytes));
        }
        if let Some(c) = (*p).latency.get_mut(bucket) {
            atomic_add(c, 1);
        }
    }
    Ok(())
}
