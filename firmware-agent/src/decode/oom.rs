//! OOM-kill records -> wire events: who the victim is (thread, process, comm), who ran the
//! kill, the memory figures when the kernel reports them, and the memory cgroup if it can be
//! found (see `crate::cgroup`).

use edge_wire::{OomKill, OomMemory, Task};
use firmware_agent_common::{EventHeader, FLAG_OOM_COMM, FLAG_OOM_DETAILS, OomKillEvent};

use super::comm;
use crate::cgroup;

/// Where the decoder looks things up the record does not carry (the real system, or a test's).
pub trait OomLookup {
    fn tgid(&self, pid: u32) -> Option<u32>;
    fn memcg(&self, pid: u32) -> Option<String>;
    fn memcg_by_v2_id(&self, id: u64) -> Option<String>;
}

/// The running system: /proc and the cgroup hierarchies.
pub struct System;

impl OomLookup for System {
    fn tgid(&self, pid: u32) -> Option<u32> {
        cgroup::proc_tgid(pid)
    }
    fn memcg(&self, pid: u32) -> Option<String> {
        cgroup::memcg_of(pid)
    }
    fn memcg_by_v2_id(&self, id: u64) -> Option<String> {
        cgroup::memcg_by_v2_id(id)
    }
}

pub fn oom_kill(h: &EventHeader, r: &OomKillEvent, lookup: &impl OomLookup) -> OomKill {
    let killer = Task {
        pid: h.pid,
        tgid: h.tgid,
        comm: comm(&h.comm),
    };
    let by_itself = h.pid == r.victim_pid;
    let tgid = if by_itself {
        h.tgid
    } else {
        lookup.tgid(r.victim_pid).unwrap_or(r.victim_pid)
    };
    let victim = Task {
        pid: r.victim_pid,
        tgid,
        comm: if r.header.flags & FLAG_OOM_COMM != 0 {
            comm(&r.victim_comm)
        } else if by_itself {
            killer.comm.clone()
        } else {
            Default::default()
        },
    };
    let memory = (r.header.flags & FLAG_OOM_DETAILS != 0).then_some(OomMemory {
        total_vm_kib: r.total_vm_kib,
        anon_rss_kib: r.anon_rss_kib,
        file_rss_kib: r.file_rss_kib,
        shmem_rss_kib: r.shmem_rss_kib,
        pgtables_kib: r.pgtables_kib,
        uid: r.uid,
        oom_score_adj: r.oom_score_adj,
    });
    // The victim's own cgroup while it is still there; else, if it ran its own kill, the
    // cgroup the kernel saw it in (v2 only).
    let cgroup = lookup
        .memcg(r.victim_pid)
        .or_else(|| {
            (killer.tgid == tgid)
                .then(|| lookup.memcg_by_v2_id(r.cgroup_id))
                .flatten()
        })
        .map(|p| edge_wire::bounded(&p));
    OomKill {
        age_us: 0,
        killed_by: (killer.tgid != tgid).then_some(killer),
        task: victim,
        memory,
        cgroup,
    }
}
