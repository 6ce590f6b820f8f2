//! Board health from sysfs, every path under `metrics.sysfs_root` (default `/sys`) so tests can
//! point it at a recorded tree: thermal zone temperatures, cpufreq per policy, the Raspberry Pi
//! firmware's throttling word (`get_throttled`), the `rpi_volt` hwmon's under-voltage alarm, and
//! fans (a hwmon `fan1_input`/`pwm1`, a fan cooling device's state).
//!
//! Sensors are found once at start-up (one log line says which); each sample then reads only
//! those files, into one reused buffer. A sensor the board lacks is left out, never faked; a
//! file that cannot be read or parsed at sample time is left out of that sample and logged once
//! at debug. Where the values come from and what they mean: `tests/fixtures/README.md`.

pub mod parse;
#[cfg(test)]
mod tests;

use std::{
    fs::File,
    io::Read as _,
    path::{Path, PathBuf},
};

use edge_wire::{BoardHealth, CpuFreq, Fan, Name, Throttled, ZoneTemp, bounded};

/// Caps, so a strange machine cannot make a sample large.
const MAX_ZONES: usize = 16;
const MAX_POLICIES: usize = 16;
const MAX_FANS: usize = 4;

/// Why one attribute gave no value.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds {text:?}, not {expected}")]
    Malformed {
        path: PathBuf,
        text: String,
        expected: &'static str,
    },
}

/// Reads `path` into `buf` (cleared first) and parses it.
pub fn read_attr<T>(
    path: &Path,
    buf: &mut String,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T, SysfsError> {
    buf.clear();
    File::open(path)
        .and_then(|mut f| f.read_to_string(buf))
        .map_err(|source| SysfsError::Read {
            path: path.into(),
            source,
        })?;
    parse(buf).ok_or_else(|| SysfsError::Malformed {
        path: path.into(),
        text: buf.chars().take(40).collect(),
        expected,
    })
}

/// One attribute read at every sample; its first failure is logged (debug), later ones not.
#[derive(Debug)]
struct Attr {
    path: PathBuf,
    logged: bool,
}

impl Attr {
    /// The attribute, if the file exists.
    fn at(path: PathBuf) -> Option<Self> {
        path.is_file().then_some(Self {
            path,
            logged: false,
        })
    }

    fn read<T>(
        &mut self,
        buf: &mut String,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        match read_attr(&self.path, buf, expected, parse) {
            Ok(v) => Some(v),
            Err(e) => {
                if !self.logged {
                    self.logged = true;
                    log::debug!("board health: {e}; left out of samples while it fails");
                }
                None
            }
        }
    }
}

#[derive(Debug)]
struct Zone {
    name: Name,
    temp: Attr,
}

#[derive(Debug)]
struct Policy {
    index: u16,
    cur: Attr,
    max: Option<Attr>,
}

#[derive(Debug)]
struct FanSource {
    name: Name,
    rpm: Option<Attr>,
    pwm: Option<Attr>,
    state: Option<Attr>,
    max_state: Option<Attr>,
}

/// The sensors found at start-up, read at every sample.
#[derive(Debug)]
pub struct BoardReader {
    root: PathBuf,
    zones: Vec<Zone>,
    policies: Vec<Policy>,
    throttled: Option<Attr>,
    alarm: Option<Attr>,
    fans: Vec<FanSource>,
    buf: String,
}

impl BoardReader {
    /// Looks for every sensor under `sysfs` once. `proc` is read for `kernel.panic_on_warn`:
    /// newer Raspberry Pi kernels WARN (once) when `get_throttled` is read, which would panic
    /// a kernel with that set, so then the word is not read.
    pub fn discover(sysfs: &Path, proc: &Path) -> Self {
        let mut buf = String::new();
        let mut label = |path: PathBuf| {
            read_attr(&path, &mut buf, "a name", |t| parse::label(t).map(bounded)).ok()
        };
        let thermal = sysfs.join("class/thermal");
        let zones = numbered_dirs(&thermal, "thermal_zone")
            .into_iter()
            .filter_map(|(n, dir)| {
                let temp = Attr::at(dir.join("temp"))?;
                let name =
                    label(dir.join("type")).unwrap_or_else(|| bounded(&format!("thermal_zone{n}")));
                Some(Zone { name, temp })
            })
            .take(MAX_ZONES)
            .collect();
        let policies = numbered_dirs(&sysfs.join("devices/system/cpu/cpufreq"), "policy")
            .into_iter()
            .filter_map(|(n, dir)| {
                Some(Policy {
                    index: u16::try_from(n).ok()?,
                    cur: Attr::at(dir.join("scaling_cur_freq"))?,
                    max: Attr::at(dir.join("cpuinfo_max_freq")),
                })
            })
            .take(MAX_POLICIES)
            .collect();
        let mut alarm = None;
        let mut firmware_dir = None;
        let mut fans = Vec::new();
        for (_, dir) in numbered_dirs(&sysfs.join("class/hwmon"), "hwmon") {
            let Some(name) = label(dir.join("name")) else {
                continue;
            };
            if name == "rpi_volt" && alarm.is_none() {
                alarm = Attr::at(dir.join("in0_lcrit_alarm"));
                // raspberrypi-hwmon is a child of the firmware device, which has get_throttled.
                firmware_dir = std::fs::canonicalize(dir.join("device/..")).ok();
            }
            let rpm = Attr::at(dir.join("fan1_input"));
            if rpm.is_some() || name == "pwmfan" {
                fans.push(FanSource {
                    name,
                    rpm,
                    pwm: Attr::at(dir.join("pwm1")),
                    state: None,
                    max_state: None,
                });
            }
        }
        for (_, dir) in numbered_dirs(&thermal, "cooling_device") {
            let Some(kind) = label(dir.join("type")) else {
                continue;
            };
            if !kind.to_ascii_lowercase().contains("fan") {
                continue;
            }
            let (state, max_state) = (
                Attr::at(dir.join("cur_state")),
                Attr::at(dir.join("max_state")),
            );
            // The pwm-fan driver registers both a hwmon `pwmfan` and a cooling device `pwm-fan`
            // for one fan; a cooling device has no parent link, so they pair by driver.
            match fans
                .iter_mut()
                .find(|f| kind == "pwm-fan" && f.name == "pwmfan" && f.state.is_none())
            {
                Some(f) => (f.state, f.max_state) = (state, max_state),
                None => fans.push(FanSource {
                    name: kind,
                    rpm: None,
                    pwm: None,
                    state,
                    max_state,
                }),
            }
        }
        fans.truncate(MAX_FANS);
        let throttled = find_get_throttled(sysfs, firmware_dir).filter(|a| {
            let panics = read_attr(&proc.join("sys/kernel/panic_on_warn"), &mut buf, "0 or 1", parse::alarm)
                .unwrap_or(false);
            if panics {
                log::warn!(
                    "board health: not reading {}: kernel.panic_on_warn is 1 and newer Raspberry Pi kernels WARN once when it is read",
                    a.path.display()
                );
            }
            !panics
        });
        Self {
            root: sysfs.into(),
            zones,
            policies,
            throttled,
            alarm,
            fans,
            buf,
        }
    }

    /// One line for the start-up log: what was found, and what was not.
    pub fn summary(&self) -> String {
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(" ")
            }
        };
        let fans = self.fans.iter().map(|f| {
            let parts: Vec<&str> = [
                f.rpm.as_ref().map(|_| "rpm"),
                f.pwm.as_ref().map(|_| "pwm"),
                f.state.as_ref().map(|_| "state"),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!("{}({})", f.name, parts.join(","))
        });
        format!(
            "board health under {}: temperatures {}; cpufreq {}; throttling {}; under-voltage alarm {}; fans {}",
            self.root.display(),
            list(self.zones.iter().map(|z| z.name.to_string()).collect()),
            list(
                self.policies
                    .iter()
                    .map(|p| format!("policy{}", p.index))
                    .collect()
            ),
            self.throttled
                .as_ref()
                .map_or("none (no get_throttled)".into(), |a| a
                    .path
                    .display()
                    .to_string()),
            self.alarm
                .as_ref()
                .map_or("none (no rpi_volt hwmon)", |_| "rpi_volt in0_lcrit_alarm"),
            list(fans.collect()),
        )
    }

    /// Reads every sensor found at start-up.
    pub fn sample(&mut self) -> BoardHealth {
        let buf = &mut self.buf;
        let temperatures = self
            .zones
            .iter_mut()
            .filter_map(|z| {
                let t = z
                    .temp
                    .read(buf, "millidegrees Celsius", parse::millicelsius)?;
                Some(ZoneTemp {
                    zone: z.name.clone(),
                    millicelsius: t,
                })
            })
            .collect();
        let cpu_freqs = self
            .policies
            .iter_mut()
            .filter_map(|p| {
                Some(CpuFreq {
                    policy: p.index,
                    cur_khz: p.cur.read(buf, "kHz", parse::unsigned)?,
                    max_khz: p
                        .max
                        .as_mut()
                        .and_then(|m| m.read(buf, "kHz", parse::unsigned)),
                })
            })
            .collect();
        let throttled = self
            .throttled
            .as_mut()
            .and_then(|a| a.read(buf, "a hex word", parse::throttled))
            .map(Throttled::from_raw);
        let under_voltage_alarm = self
            .alarm
            .as_mut()
            .and_then(|a| a.read(buf, "0 or 1", parse::alarm));
        let fans = self
            .fans
            .iter_mut()
            .filter_map(|f| {
                let pwm = f
                    .pwm
                    .as_mut()
                    .and_then(|a| a.read(buf, "0-255", parse::pwm));
                let mut read = |a: &mut Option<Attr>| {
                    a.as_mut()
                        .and_then(|a| a.read(buf, "a number", parse::unsigned))
                };
                let fan = Fan {
                    name: f.name.clone(),
                    rpm: read(&mut f.rpm),
                    pwm,
                    state: read(&mut f.state),
                    max_state: read(&mut f.max_state),
                };
                (fan.rpm.is_some() || fan.pwm.is_some() || fan.state.is_some()).then_some(fan)
            })
            .collect();
        BoardHealth {
            temperatures,
            cpu_freqs,
            throttled,
            under_voltage_alarm,
            fans,
        }
    }
}

/// `get_throttled`: beside the `rpi_volt` hwmon's parent if there is one, else in a
/// `<soc>/<soc>:firmware` platform device (`soc/soc:firmware` up to the Pi 4,
/// `soc@107c000000/soc@107c000000:firmware` on a Pi 5).
fn find_get_throttled(sysfs: &Path, firmware_dir: Option<PathBuf>) -> Option<Attr> {
    if let Some(a) = firmware_dir.and_then(|d| Attr::at(d.join("get_throttled"))) {
        return Some(a);
    }
    let platform = sysfs.join("devices/platform");
    let socs = std::fs::read_dir(&platform).ok()?;
    for soc in socs.flatten() {
        if !soc.file_name().to_string_lossy().starts_with("soc") {
            continue;
        }
        let Ok(children) = std::fs::read_dir(soc.path()) else {
            continue;
        };
        for child in children.flatten() {
            if child.file_name().to_string_lossy().ends_with(":firmware")
                && let Some(a) = Attr::at(child.path().join("get_throttled"))
            {
                return Some(a);
            }
        }
    }
    None
}

/// `dir`'s entries named `<prefix><number>`, by number.
fn numbered_dirs(dir: &Path, prefix: &str) -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        log::debug!("board health: no {} ({prefix}*)", dir.display());
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| Some((parse::numbered(e.file_name().to_str()?, prefix)?, e.path())))
        .collect();
    found.sort();
    found
}
