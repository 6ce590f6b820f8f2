//! What a metrics sample says about the board and its busiest processes: board health read
//! from sysfs (temperatures, CPU frequency, the Raspberry Pi firmware's throttling word, the
//! under-voltage alarm, fans) and the top processes by CPU and by memory. A sensor the board
//! does not have is absent (an empty list or `None`), never a made-up value.

use alloc::vec::Vec;

use crate::{Comm, Name};

/// Board health at sample time.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BoardHealth {
    /// Thermal zones (`class/thermal/thermal_zone*`), e.g. `cpu-thermal` on a Raspberry Pi.
    pub temperatures: Vec<ZoneTemp>,
    /// cpufreq policies (`devices/system/cpu/cpufreq/policy*`); a Pi 5 has one for all cores.
    pub cpu_freqs: Vec<CpuFreq>,
    /// The Raspberry Pi firmware's `get_throttled` word, where the kernel exposes it.
    pub throttled: Option<Throttled>,
    /// The `rpi_volt` hwmon's `in0_lcrit_alarm`: under-voltage seen by the kernel's last
    /// poll of the firmware (every 2 s).
    pub under_voltage_alarm: Option<bool>,
    /// Fans: a hwmon with `fan*_input` (speed) and/or a fan cooling device (state).
    pub fans: Vec<Fan>,
}

/// One thermal zone's temperature.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneTemp {
    /// The zone's `type` (e.g. `cpu-thermal`).
    pub zone: Name,
    /// As the kernel reports it: thousandths of a degree Celsius.
    pub millicelsius: i32,
}

/// One cpufreq policy (a group of cores sharing a clock).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuFreq {
    /// N of `policyN` (its first CPU).
    pub policy: u16,
    /// `scaling_cur_freq`, kHz.
    pub cur_khz: u32,
    /// `cpuinfo_max_freq`, kHz, where present.
    pub max_khz: Option<u32>,
}

/// The firmware's throttling word: the raw value and its decoded halves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Throttled {
    /// As read (bits this decoder does not know are kept here).
    pub raw: u32,
    /// Bits 0-3: what is happening now.
    pub now: ThrottleFlags,
    /// Bits 16-19: what has happened since boot (sticky; see docs/wire-format.md).
    pub since_boot: ThrottleFlags,
}

impl Throttled {
    /// Decodes a `get_throttled` word.
    pub fn from_raw(raw: u32) -> Self {
        Self {
            raw,
            now: ThrottleFlags::from_bits(raw),
            since_boot: ThrottleFlags::from_bits(raw >> 16),
        }
    }
}

/// One half of the throttling word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThrottleFlags {
    /// Bit 0 (16): the supply voltage is (was) too low.
    pub under_voltage: bool,
    /// Bit 1 (17): the ARM frequency is (was) capped.
    pub freq_capped: bool,
    /// Bit 2 (18): the board is (was) throttled.
    pub throttled: bool,
    /// Bit 3 (19): the soft temperature limit is (was) active.
    pub soft_temp_limit: bool,
}

impl ThrottleFlags {
    /// The four flags from the low 4 bits of `bits`.
    pub fn from_bits(bits: u32) -> Self {
        Self {
            under_voltage: bits & 1 != 0,
            freq_capped: bits & 2 != 0,
            throttled: bits & 4 != 0,
            soft_temp_limit: bits & 8 != 0,
        }
    }

    pub fn any(&self) -> bool {
        self.under_voltage || self.freq_capped || self.throttled || self.soft_temp_limit
    }
}

/// A fan, as far as the kernel shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fan {
    /// The hwmon chip name (`pwmfan` on a Pi 5) or the cooling device type.
    pub name: Name,
    /// `fan1_input`, revolutions per minute.
    pub rpm: Option<u32>,
    /// `pwm1`, duty cycle 0-255.
    pub pwm: Option<u8>,
    /// The cooling device's `cur_state` and `max_state` (0 = off).
    pub state: Option<u32>,
    pub max_state: Option<u32>,
}

/// One process in a top-N list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcUse {
    pub pid: u32,
    /// The kernel's `comm` (at most 15 bytes; not escaped: readers escape what they print).
    pub comm: Comm,
    /// CPU time used over the interval, in thousandths of one CPU (1000 = one full core).
    pub cpu_permille: u32,
    /// Resident set size at sample time.
    pub rss_kib: u64,
}
