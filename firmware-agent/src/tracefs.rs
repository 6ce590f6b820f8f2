//! tracefs: find (or mount) it, and read tracepoint `format` files to learn field offsets at
//! start-up, so the probes need no BTF.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({source}); mount it with `mount -t tracefs tracefs /sys/kernel/tracing`"
    )]
    NotMounted { source: std::io::Error },
    #[error("tracepoint {category}:{name} not found (no {path})")]
    NoTracepoint {
        category: String,
        name: String,
        path: PathBuf,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unparsable format line {line:?}")]
    BadFormat { path: PathBuf, line: String },
}

/// One field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub offset: u32,
    pub size: u32,
}

#[derive(Clone, Debug)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    /// Uses a mounted tracefs, or mounts one at /sys/kernel/tracing (we run as root).
    pub fn open_or_mount() -> Result<Self, TracefsError> {
        for root in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
            if Path::new(root).join("events").is_dir() {
                return Ok(Self { root: root.into() });
            }
        }
        mount_tracefs("/sys/kernel/tracing")
            .map_err(|source| TracefsError::NotMounted { source })?;
        log::info!("tracefs was not mounted: mounted it at /sys/kernel/tracing");
        Ok(Self {
            root: "/sys/kernel/tracing".into(),
        })
    }

    /// A tracefs rooted somewhere else (tests).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The fields of `category:name`.
    pub fn fields(&self, category: &str, name: &str) -> Result<Vec<Field>, TracefsError> {
        let path = self
            .root
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TracefsError::NoTracepoint {
                    category: category.into(),
                    name: name.into(),
                    path,
                });
            }
            Err(source) => return Err(TracefsError::Read { path, source }),
        };
        parse_format(&text).map_err(|line| TracefsError::BadFormat { path, line })
    }
}

fn mount_tracefs(target: &str) -> std::io::Result<()> {
    let c = |s: &str| std::ffi::CString::new(s).map_err(std::io::Error::other);
    let (src, tgt, fs) = (c("tracefs")?, c(target)?, c("tracefs")?);
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Parses a tracefs `format` file into its fields. Returns the offending line on error.
pub fn parse_format(text: &str) -> Result<Vec<Field>, String> {
    let mut fields = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut decl = None;
        let (mut offset, mut size) = (None, None);
        for part in rest.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            } else if part.starts_with("signed:") {
            } else if decl.is_none() {
                decl = Some(part);
            }
        }
        // The name is the declaration's last word, without any array suffix.
        let name = decl
            .and_then(|d| d.split_whitespace().last())
            .map(|w| w.split('[').next().unwrap_or(w).trim_start_matches('*'));
        match (name, offset, size) {
            (Some(n), Some(offset), Some(size)) if !n.is_empty() => {
                fields.push(Field {
                    name: n.to_owned(),
                    offset,
                    size,
                });
            }
            _ => return Err(line.to_owned()),
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND: &str = "name: sys_enter_bind\nID: 1234\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;\n\
\tfield:struct sockaddr * umyaddr;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:int addrlen;\toffset:32;\tsize:8;\tsigned:0;\n\n\
print fmt: \"fd: 0x%08lx\", ((unsigned long)(REC->fd))\n";

    #[test]
    fn parses_syscall_format() {
        let f = parse_format(BIND).expect("parse");
        let get = |n: &str| f.iter().find(|x| x.name == n).cloned().expect(n);
        assert_eq!(
            get("umyaddr"),
            Field {
                name: "umyaddr".into(),
                offset: 24,
                size: 8
            }
        );
        assert_eq!(get("addrlen").offset, 32);
        assert_eq!(get("__syscall_nr").size, 4);
    }

    #[test]
    fn parses_data_loc_and_arrays() {
        let text = "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n";
        let f = parse_format(text).expect("parse");
        assert_eq!(f[0].name, "filename");
        assert_eq!(f[1].name, "comm");
    }

    #[test]
    fn rejects_garbage_lines() {
        assert!(parse_format("\tfield:int x;\toffset:zz;\tsize:4;\n").is_err());
    }

    #[test]
    fn missing_tracepoint_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Tracefs::at(dir.path())
            .fields("sched", "nope")
            .expect_err("missing");
        assert!(err.to_string().contains("sched:nope"), "{err}");
    }
}
