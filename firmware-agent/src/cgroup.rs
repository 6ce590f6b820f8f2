//! Finding a process's memory cgroup without BTF: `/proc/<pid>/cgroup` while the process is
//! there (cgroup v1 `memory` hierarchy, or the v2 path when the memory controller is on v2),
//! else the path of a cgroup v2 id (what `bpf_get_current_cgroup_id` returns) on systems whose
//! memory controller is on v2.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Directories visited at most when looking a cgroup id up.
const MAX_WALK: usize = 20_000;

/// The memory cgroup of `pid`, from its `/proc/<pid>/cgroup`, if it is still running: an exited
/// task (a zombie) shows the root cgroup there, which would be wrong.
pub fn memcg_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let state = status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))?
        .trim();
    if state.starts_with('Z') || state.starts_with('X') {
        return None;
    }
    memcg_in(&text, memory_on_v2())
}

/// The memory cgroup in a `/proc/<pid>/cgroup` text: the v1 line naming `memory`, or the v2
/// line (`0::`) when the memory controller is on v2.
pub fn memcg_in(text: &str, memory_on_v2: bool) -> Option<String> {
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.split(',').any(|c| c == "memory") {
            return Some(path.to_owned());
        }
        if id == "0" && controllers.is_empty() {
            v2 = Some(path.to_owned());
        }
    }
    v2.filter(|_| memory_on_v2)
}

/// Where cgroup v2 is mounted, from /proc/self/mountinfo.
fn v2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next() == Some("cgroup2"))
            .then(|| pre.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// Whether the memory controller is enabled on the cgroup v2 hierarchy.
pub fn memory_on_v2() -> bool {
    v2_mount()
        .and_then(|m| std::fs::read_to_string(m.join("cgroup.controllers")).ok())
        .is_some_and(|c| c.split_whitespace().any(|w| w == "memory"))
}

/// The path (relative to the v2 mount, from `/`) of the cgroup v2 whose id (kernfs inode) is
/// `id`, when the memory controller is on v2.
pub fn memcg_by_v2_id(id: u64) -> Option<String> {
    if id == 0 || !memory_on_v2() {
        return None;
    }
    let root = v2_mount()?;
    find_inode(&root, id).map(|p| {
        let rel = p.strip_prefix(&root).unwrap_or(Path::new(""));
        format!("/{}", rel.display())
    })
}

fn find_inode(root: &Path, ino: u64) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == ino) {
            return Some(dir);
        }
        seen += 1;
        if seen > MAX_WALK {
            return None;
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            stack.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    None
}

/// The thread group of thread `pid`, from /proc.
pub fn proc_tgid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcg_from_v1_and_v2_lines() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/abc/oom\n0::/\n";
        assert_eq!(memcg_in(v1, false).as_deref(), Some("/process_api/abc/oom"));
        let v2 = "0::/system.slice/app.service\n";
        assert_eq!(
            memcg_in(v2, true).as_deref(),
            Some("/system.slice/app.service")
        );
        assert_eq!(
            memcg_in(v2, false),
            None,
            "v2 path is no memcg without memory on v2"
        );
        assert_eq!(memcg_in("garbage", true), None);
    }
}
