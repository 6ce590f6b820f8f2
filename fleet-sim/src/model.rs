//! What a simulated Raspberry Pi does, as the agent would report it: its services (with their
//! listening ports), short-lived commands (exec, then exit: mostly code 0, some failures, rare
//! crashes by signal), client sockets on ephemeral ports, occasional new listening ports, and a
//! drifting system sample (CPU, memory, load, temperatures, board health with the firmware's
//! throttling word: a few boards have a weak power supply and are under-volted now and then, a
//! hot board hits its soft temperature limit; the busiest processes). Everything is drawn from
//! the device's own [`Rng`], so a seed replays the same fleet.

use edge_wire::{
    Bind, BoardHealth, CpuFreq, Event, Exec, Exit, ExitHow, Fan, ProcUse, SockAddr, Task,
    Temperature, Throttled, ZoneTemp, bounded,
};

use crate::rng::Rng;

/// A service a board may run: comm, executable, listening port.
const SERVICES: &[(&str, &str, u16)] = &[
    ("sshd", "/usr/sbin/sshd", 22),
    ("nginx", "/usr/sbin/nginx", 80),
    ("nginx", "/usr/sbin/nginx", 443),
    ("mosquitto", "/usr/sbin/mosquitto", 1883),
    ("node-red", "/usr/bin/node", 1880),
    ("grafana", "/usr/sbin/grafana", 3000),
    ("python3", "/usr/bin/python3", 8123),
    ("dnsmasq", "/usr/sbin/dnsmasq", 53),
    ("avahi-daemon", "/usr/sbin/avahi-daemon", 5353),
    ("prometheus-nod", "/usr/bin/prometheus-node-exporter", 9100),
];

/// Short-lived commands: comm, executable.
const COMMANDS: &[(&str, &str)] = &[
    ("sh", "/bin/sh"),
    ("bash", "/bin/bash"),
    ("cron", "/usr/sbin/cron"),
    ("python3", "/usr/bin/python3"),
    ("curl", "/usr/bin/curl"),
    ("systemctl", "/usr/bin/systemctl"),
    ("vcgencmd", "/usr/bin/vcgencmd"),
    ("apt-get", "/usr/bin/apt-get"),
    ("journalctl", "/usr/bin/journalctl"),
    ("ip", "/usr/sbin/ip"),
    ("sed", "/usr/bin/sed"),
    ("logrotate", "/usr/sbin/logrotate"),
];

/// Fatal signals of a crash: SIGSEGV, SIGABRT, SIGBUS, SIGKILL (the OOM killer).
const CRASH_SIGNALS: &[u32] = &[11, 6, 7, 9];

/// How often things go wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    /// Share of exits that are crashes (killed by a fatal signal).
    pub crash_chance: f64,
    /// Share of batches that report ring-buffer drops.
    pub drop_chance: f64,
}

/// A process the device started and that has not exited yet.
#[derive(Clone, Debug)]
struct Running {
    pid: u32,
    comm: &'static str,
}

/// The board's processes and resources.
#[derive(Clone, Debug)]
pub struct Board {
    /// The services this board runs (indexes into `SERVICES`).
    services: Vec<usize>,
    next_pid: u32,
    running: Vec<Running>,
    pub mem_total_kib: u64,
    mem_used_kib: u64,
    cpu: f32,
    /// True for a Pi 5 (it has the RP1 ADC temperature too).
    pi5: bool,
    /// A weak power supply: under-voltage now and then.
    weak_psu: bool,
    /// The throttling word's flags seen since boot.
    sticky: u32,
}

/// One metrics sample of the board.
pub struct Sample {
    pub cpu: f32,
    pub mem_used_kib: u64,
    pub load: [f32; 3],
    pub temperatures: Vec<Temperature>,
    pub health: BoardHealth,
    pub top_cpu: Vec<ProcUse>,
    pub top_mem: Vec<ProcUse>,
}

impl Board {
    pub fn new(rng: &mut Rng) -> Self {
        let n = rng.range(2, 4) as usize;
        let mut services = Vec::new();
        while services.len() < n {
            let s = rng.below(SERVICES.len() as u64) as usize;
            if !services.contains(&s) {
                services.push(s);
            }
        }
        let mem_total_kib = *rng.pick(&[2_000_000, 4_000_000, 8_000_000]);
        Self {
            services,
            next_pid: rng.range(900, 2000) as u32,
            running: Vec::new(),
            mem_total_kib,
            mem_used_kib: mem_total_kib / 4,
            cpu: 5.0,
            pi5: rng.chance(0.7),
            weak_psu: rng.chance(0.05),
            sticky: 0,
        }
    }

    pub fn arch(&self) -> &'static str {
        "aarch64"
    }

    pub fn kernel(&self) -> &'static str {
        if self.pi5 {
            "6.12.25+rpt-rpi-2712"
        } else {
            "6.12.25+rpt-rpi-v8"
        }
    }

    pub fn page_size(&self) -> u32 {
        if self.pi5 { 16384 } else { 4096 }
    }

    fn task(pid: u32, comm: &str) -> Task {
        Task {
            pid,
            tgid: pid,
            comm: bounded(comm),
        }
    }

    fn spawn(&mut self, comm: &'static str) -> u32 {
        let pid = self.next_pid;
        self.next_pid = if self.next_pid >= 4_000_000 {
            300
        } else {
            self.next_pid + 1
        };
        self.running.push(Running { pid, comm });
        pid
    }

    /// One kernel event, `age_us` before the batch closes.
    pub fn event(&mut self, rng: &mut Rng, mix: &Mix, age_us: u64) -> Event {
        let roll = rng.unit();
        if roll < 0.45 || (roll < 0.9 && self.running.is_empty()) {
            let &(comm, exe) = rng.pick(COMMANDS);
            let pid = self.spawn(comm);
            return Event::Exec(Exec {
                age_us,
                task: Self::task(pid, comm),
                ppid: 1,
                filename: bounded(exe),
                truncated: false,
            });
        }
        if roll < 0.9 {
            let i = rng.below(self.running.len() as u64) as usize;
            let p = self.running.swap_remove(i);
            let how = if rng.chance(mix.crash_chance) {
                ExitHow::Signal(*rng.pick(CRASH_SIGNALS))
            } else if rng.chance(0.08) {
                ExitHow::Code(1)
            } else {
                ExitHow::Code(0)
            };
            return Event::Exit(Exit {
                age_us,
                task: Self::task(p.pid, p.comm),
                ppid: 1,
                how,
            });
        }
        self.bind(rng, age_us)
    }

    fn bind(&mut self, rng: &mut Rng, age_us: u64) -> Event {
        let roll = rng.unit();
        let (comm, port, ret) = if roll < 0.7 {
            // A client socket: the kernel picks the port.
            (*rng.pick(&["curl", "python3", "node", "apt-get"]), 0, 0)
        } else if roll < 0.95 {
            // A service (re)starting on its port; sometimes the port is still taken.
            let &(comm, _, port) = &SERVICES[*rng.pick(&self.services)];
            (comm, port, if rng.chance(0.1) { -98 } else { 0 })
        } else {
            // Someone starts a new listener (python3 -m http.server, a debug port).
            ("python3", rng.range(1024, 65535) as u16, 0)
        };
        let pid = self.next_pid.saturating_sub(1);
        let addr = if rng.chance(0.8) {
            SockAddr::V4 {
                ip: [0, 0, 0, 0],
                port,
            }
        } else {
            SockAddr::V6 {
                ip: [0; 16],
                port,
                scope_id: 0,
            }
        };
        Event::Bind(Bind {
            age_us,
            task: Self::task(pid, comm),
            fd: rng.range(3, 40) as i32,
            ret,
            addr,
        })
    }

    /// A ring-buffer drop report for a batch, sometimes.
    pub fn drops(&self, rng: &mut Rng, mix: &Mix) -> Option<(&'static str, u64)> {
        rng.chance(mix.drop_chance).then(|| {
            (
                *rng.pick(&["ring:exec", "ring:bind", "ring:exit"]),
                rng.range(1, 50),
            )
        })
    }

    /// Moves the system sample on by one metrics interval.
    pub fn sample(&mut self, rng: &mut Rng) -> Sample {
        let step = (rng.unit() as f32 - 0.5) * 10.0;
        self.cpu = (self.cpu + step).clamp(1.0, 95.0);
        let mem_step = (rng.unit() - 0.5) * 0.02 * self.mem_total_kib as f64;
        self.mem_used_kib = (self.mem_used_kib as f64 + mem_step).clamp(
            self.mem_total_kib as f64 * 0.1,
            self.mem_total_kib as f64 * 0.9,
        ) as u64;
        let load1 = self.cpu / 25.0;
        let cpu_temp = 38.0 + self.cpu * 0.45 + rng.unit() as f32;
        let mut temperatures = vec![Temperature {
            label: bounded("cpu_thermal"),
            celsius: (cpu_temp * 10.0).round() / 10.0,
        }];
        if self.pi5 {
            temperatures.push(Temperature {
                label: bounded("rp1_adc"),
                celsius: ((cpu_temp - 6.0) * 10.0).round() / 10.0,
            });
        }
        let health = self.health(rng, cpu_temp);
        let (top_cpu, top_mem) = self.top(rng);
        Sample {
            cpu: self.cpu,
            mem_used_kib: self.mem_used_kib,
            load: [load1, load1 * 0.9, load1 * 0.8],
            temperatures,
            health,
            top_cpu,
            top_mem,
        }
    }

    /// Board health as a Raspberry Pi's sysfs shows it.
    fn health(&mut self, rng: &mut Rng, cpu_temp: f32) -> BoardHealth {
        let under_voltage = self.weak_psu && rng.chance(0.3);
        let hot = cpu_temp >= 80.0;
        let capped = under_voltage || hot;
        // Bits 0-3 of the word: under-voltage, frequency capped, throttled, soft temp limit.
        let now = u32::from(under_voltage)
            | u32::from(capped) << 1
            | u32::from(hot) << 2
            | u32::from(hot) << 3;
        self.sticky |= now;
        let max_khz = if self.pi5 { 2_400_000 } else { 1_800_000 };
        BoardHealth {
            temperatures: vec![ZoneTemp {
                zone: bounded("cpu-thermal"),
                millicelsius: (cpu_temp * 1000.0) as i32,
            }],
            cpu_freqs: vec![CpuFreq {
                policy: 0,
                cur_khz: if capped { max_khz / 2 } else { max_khz },
                max_khz: Some(max_khz),
            }],
            throttled: Some(Throttled::from_raw(now | self.sticky << 16)),
            under_voltage_alarm: self.pi5.then_some(under_voltage),
            fans: if self.pi5 {
                let pwm = ((cpu_temp - 40.0).max(0.0) * 6.0).min(255.0) as u8;
                vec![Fan {
                    name: bounded("pwmfan"),
                    rpm: Some(u32::from(pwm) * 30),
                    pwm: Some(pwm),
                    state: None,
                    max_state: None,
                }]
            } else {
                Vec::new()
            },
        }
    }

    /// The busiest processes: the board's services, by CPU and by memory.
    fn top(&self, rng: &mut Rng) -> (Vec<ProcUse>, Vec<ProcUse>) {
        let procs: Vec<ProcUse> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, &s)| ProcUse {
                pid: 400 + i as u32,
                comm: bounded(SERVICES[s].0),
                cpu_permille: rng.below(300) as u32,
                rss_kib: rng.range(4_000, 120_000),
            })
            .collect();
        let mut by_cpu = procs.clone();
        by_cpu.sort_by_key(|p| std::cmp::Reverse(p.cpu_permille));
        let mut by_mem = procs;
        by_mem.sort_by_key(|p| std::cmp::Reverse(p.rss_kib));
        (by_cpu, by_mem)
    }
}
