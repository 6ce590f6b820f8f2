//! Whether a config file that holds `mqtt.password` is private enough to trust.
//!
//! On a filesystem with Unix permissions the file must be readable by its owner only (0600 or
//! 0400): anything else is refused, naming the file and its mode. A FAT or exFAT filesystem
//! (the SD card's boot partition, where the per-card file lives) has no modes of its own:
//! every file shows the mount's `fmask`, and no chmod can change it. Refusing there would make
//! the documented per-card credentials unusable, so the agent accepts the file and says, once,
//! how to make it private (mount the partition with `fmask=0077`).

use std::path::Path;

use super::ConfigError;

/// statfs `f_type` of FAT (vfat, msdos) and exFAT.
const MSDOS_SUPER_MAGIC: i64 = 0x4d44;
const EXFAT_SUPER_MAGIC: i64 = 0x2011_bab0;

/// What to do with a password file of `mode` on a filesystem with or without Unix modes.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Private,
    /// Readable by others, and a chmod could fix it: refuse.
    Refuse,
    /// Readable by others because of the FAT mount's options: accept, warn.
    WarnMountOptions,
}

pub fn verdict(mode: u32, fat: bool) -> Verdict {
    match (mode & 0o077 != 0, fat) {
        (false, _) => Verdict::Private,
        (true, false) => Verdict::Refuse,
        (true, true) => Verdict::WarnMountOptions,
    }
}

/// Checks a config file that holds a password.
pub fn check(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt as _;
    let read_err = |source| ConfigError::Read {
        path: path.into(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_err)?
        .permissions()
        .mode()
        & 0o7777;
    match verdict(mode, on_fat(path).map_err(read_err)?) {
        Verdict::Private => Ok(()),
        Verdict::Refuse => Err(ConfigError::InsecurePassword {
            path: path.into(),
            mode,
        }),
        Verdict::WarnMountOptions => {
            log::warn!(
                "config: {} holds mqtt.password on a FAT filesystem, where every file has the mount's mode ({mode:04o}: readable by other local users); mount it with fmask=0077 to keep it private",
                path.display()
            );
            Ok(())
        }
    }
}

fn on_fat(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a NUL-terminated path and a zeroed statfs the kernel fills.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    let magic = st.f_type as i64;
    Ok(magic == MSDOS_SUPER_MAGIC || magic == EXFAT_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fat_mount_excuses_a_readable_password_file() {
        assert_eq!(verdict(0o600, false), Verdict::Private);
        assert_eq!(verdict(0o400, true), Verdict::Private);
        assert_eq!(verdict(0o644, false), Verdict::Refuse);
        assert_eq!(verdict(0o640, false), Verdict::Refuse);
        assert_eq!(verdict(0o755, true), Verdict::WarnMountOptions);
    }

    #[test]
    fn a_tmp_file_is_not_on_fat() {
        let f = tempfile::NamedTempFile::new().expect("tempfile");
        assert!(!on_fat(f.path()).expect("statfs"));
    }
}
