//! Golden byte vectors: the contract in docs/wire-format.md, byte for byte. If one of these
//! fails, the wire format changed: bump SCHEMA_VERSION and update the document, or undo it.

use edge_wire::*;

fn task() -> Task {
    Task {
        pid: 4243,
        tgid: 4242,
        comm: bounded("nginx"),
    }
}

pub fn samples() -> Vec<(&'static str, Message)> {
    vec![
        (
            "online",
            Message::Online(Birth {
                device: bounded("pi5-0042"),
                boot_id: bounded("b1"),
                session: 1,
                run_id: 0x0123_4567_89ab_cdef,
                unix_ms: 1_764_000_000_000,
                agent_version: bounded("0.1.0"),
                schema_version: 2,
                kernel_release: bounded("6.12.0-rpi-2712"),
                arch: bounded("aarch64"),
                page_size: 16384,
                kernel_btf: false,
                ring_buffers: vec![
                    RingBufferInfo {
                        name: bounded("WATCH_EVENTS"),
                        requested: 4096,
                        chosen: 16384,
                        transport: RingTransport::RingBuf,
                    },
                    RingBufferInfo {
                        name: bounded("PROC_EVENTS"),
                        requested: 262_144,
                        chosen: 262_144,
                        transport: RingTransport::Perf {
                            pages_per_cpu: 16,
                            cpus: 4,
                        },
                    },
                ],
                probes: vec![
                    ProbeInfo {
                        name: bounded("exec"),
                        tracepoint: bounded("sched:sched_process_exec"),
                        state: ProbeState::Attached,
                        method: AttachMethod::Tracepoint,
                    },
                    ProbeInfo {
                        name: bounded("bind_exit"),
                        tracepoint: bounded("syscalls:sys_exit_bind"),
                        state: ProbeState::Skipped {
                            reason: bounded("not found"),
                        },
                        method: AttachMethod::Tracepoint,
                    },
                    ProbeInfo {
                        name: bounded("tcp_send"),
                        tracepoint: bounded("tcp_sendmsg"),
                        state: ProbeState::Attached,
                        method: AttachMethod::Kprobe,
                    },
                ],
                queue: QueueInfo {
                    ram_bytes: 262_144,
                    spool_bytes: 0,
                },
            }),
        ),
        (
            "offline",
            Message::Offline(Death {
                device: bounded("pi5-0042"),
                boot_id: bounded("b1"),
                session: 1,
                cause: DeathCause::Shutdown,
            }),
        ),
        (
            "events",
            Message::Events(EventBatch {
                device: bounded("pi5-0042"),
                boot_id: bounded("b1"),
                run_id: 0x0123_4567_89ab_cdef,
                seq: 7,
                unix_ms: 1_764_000_000_200,
                mono_ns: 5_000_000_000,
                drops: vec![DropCount {
                    source: bounded("ring:exec"),
                    count: 3,
                }],
                events: vec![
                    Event::Bind(Bind {
                        age_us: 150,
                        task: task(),
                        fd: 6,
                        ret: 0,
                        addr: SockAddr::V4 {
                            ip: [0, 0, 0, 0],
                            port: 8080,
                        },
                    }),
                    Event::Exec(Exec {
                        age_us: 90,
                        task: task(),
                        ppid: 1,
                        filename: bounded("/usr/sbin/nginx"),
                        truncated: false,
                    }),
                    Event::Exit(Exit {
                        age_us: 10,
                        task: task(),
                        ppid: 1,
                        how: ExitHow::Signal(11),
                    }),
                ],
            }),
        ),
        (
            "signals",
            Message::Events(EventBatch {
                device: bounded("pi5-0042"),
                boot_id: bounded("b1"),
                run_id: 0x0123_4567_89ab_cdef,
                seq: 8,
                unix_ms: 1_764_000_010_000,
                mono_ns: 15_000_000_000,
                drops: vec![],
                events: vec![
                    Event::OomKill(OomKill {
                        age_us: 20,
                        task: Task {
                            pid: 4300,
                            tgid: 4300,
                            comm: bounded("python3"),
                        },
                        killed_by: None,
                        memory: Some(OomMemory {
                            total_vm_kib: 43292,
                            anon_rss_kib: 32512,
                            file_rss_kib: 6596,
                            shmem_rss_kib: 0,
                            pgtables_kib: 128,
                            uid: 1000,
                            oom_score_adj: 0,
                        }),
                        cgroup: Some(bounded("/system.slice/app.service")),
                    }),
                    Event::Tcp(TcpSummary {
                        age_us: 5,
                        interval_ms: 10_000,
                        flows: vec![TcpFlow {
                            task: task(),
                            direction: Direction::Inbound,
                            peer: IpAddr::V4([192, 168, 1, 20]),
                            port: 8080,
                            counts: TcpCounts {
                                opened: 2,
                                closed: 1,
                                failed: 0,
                                bytes_sent: 150_000,
                                bytes_received: 900,
                                retransmits: 1,
                                closed_ms_total: 40,
                                closed_ms_max: 40,
                            },
                        }],
                        rest: Some(TcpRest {
                            flows: 3,
                            counts: TcpCounts {
                                opened: 3,
                                bytes_sent: 100,
                                ..Default::default()
                            },
                        }),
                    }),
                    Event::Storage(StorageSummary {
                        age_us: 5,
                        interval_ms: 10_000,
                        writers: vec![Writer {
                            task: task(),
                            device: bounded("mmcblk0p2"),
                            bytes: 1_048_576,
                        }],
                        rest_writers: 0,
                        rest_bytes: 0,
                        disks: vec![DiskIo {
                            disk: bounded("mmcblk0"),
                            reads: 0,
                            read_bytes: 0,
                            writes: 9,
                            write_bytes: 1_069_056,
                            others: 1,
                            latency: Log2Hist {
                                first: 9,
                                counts: vec![2, 0, 7, 1],
                            },
                        }],
                    }),
                ],
            }),
        ),
        (
            "metrics",
            Message::Metrics(Metrics {
                device: bounded("pi5-0042"),
                boot_id: bounded("b1"),
                unix_ms: 1_764_000_010_000,
                uptime_s: 3600,
                cpu_percent: 1.5,
                mem_total_kib: 8_000_000,
                mem_used_kib: 400_000,
                load: [0.25, 0.5, 1.0],
                temperatures: vec![Temperature {
                    label: bounded("cpu_thermal"),
                    celsius: 48.5,
                }],
                agent: AgentStats {
                    rss_kib: 6000,
                    events: 100,
                    batches: 8,
                    drops: vec![
                        DropCount {
                            source: bounded("ring:exec"),
                            count: 3,
                        },
                        DropCount {
                            source: bounded("queue"),
                            count: 12,
                        },
                    ],
                    queued: 2,
                    queued_bytes: 300,
                    spooled_bytes: 0,
                    spool_written_bytes: 0,
                    spool_appends: 0,
                    metrics_dropped: 1,
                    probe_errors: vec![ProbeErrors {
                        program: bounded("exec"),
                        helper: 1,
                        map_full: 0,
                        ring_full: 3,
                    }],
                },
                board: BoardHealth {
                    temperatures: vec![ZoneTemp {
                        zone: bounded("cpu-thermal"),
                        millicelsius: 85_250,
                    }],
                    cpu_freqs: vec![CpuFreq {
                        policy: 0,
                        cur_khz: 1_500_000,
                        max_khz: Some(2_400_000),
                    }],
                    throttled: Some(Throttled::from_raw(0x5_0005)),
                    under_voltage_alarm: Some(true),
                    fans: vec![Fan {
                        name: bounded("pwmfan"),
                        rpm: Some(4_975),
                        pwm: Some(250),
                        state: Some(4),
                        max_state: Some(4),
                    }],
                },
                top_cpu: vec![ProcUse {
                    pid: 4242,
                    comm: bounded("nginx"),
                    cpu_permille: 975,
                    rss_kib: 20_480,
                }],
                top_mem: vec![ProcUse {
                    pid: 880,
                    comm: bounded("postgres"),
                    cpu_permille: 12,
                    rss_kib: 262_144,
                }],
            }),
        ),
    ]
}

const GOLDEN: &[(&str, &str)] = &[
    (
        "online",
        "0200087069352d3030343202623101ef9bafcdf8acd1910180d0dfb4ab3305302e312e30020f362e31322e302d7270692d32373132076161726368363480800100020c57415443485f4556454e54538020808001000b50524f435f4556454e54538080108080100110040304657865631873636865643a73636865645f70726f636573735f6578656300000962696e645f657869741673797363616c6c733a7379735f657869745f62696e6402096e6f7420666f756e6400087463705f73656e640b7463705f73656e646d7367000280801000",
    ),
    ("offline", "0201087069352d303034320262310101"),
    (
        "events",
        "0202087069352d30303432026231ef9bafcdf8acd1910107c8d1dfb4ab3380e497d012010972696e673a65786563030300960193219221056e67696e780c000000000000903f015a93219221056e67696e78010f2f7573722f7362696e2f6e67696e7800020a93219221056e67696e7801010b",
    ),
    (
        "signals",
        "0202087069352d30303432026231ef9bafcdf8acd1910108909ee0b4ab3380acc7f03700030314cc21cc2107707974686f6e3300019cd20280fe01c433008001e8070001192f73797374656d2e736c6963652f6170702e736572766963650405904e0193219221056e67696e780100c0a80114903f020100f093098407012828010303000064000000000505904e0193219221056e67696e78096d6d63626c6b307032808040000001076d6d63626c6b3000000980a04101090402000701",
    ),
    (
        "metrics",
        "0203087069352d30303432026231909ee0b4ab33901c0000c03f80a4e80380b5180000803e0000003f0000803f010b6370755f746865726d616c00004242f02e6408020972696e673a65786563030571756575650c02ac0200000001010465786563010003010b6370752d746865726d616c84b40a0100e0c65b0180be92010185801401000100010001000101010670776d66616e01ef2601fa01040104019221056e67696e78cf0780a00101f00608706f7374677265730c808010",
    ),
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn every_message_matches_its_golden_bytes_both_ways() {
    let mut changed = String::new();
    for (name, msg) in samples() {
        let bytes = encode(&msg).expect("encode");
        let want = GOLDEN.iter().find(|(n, _)| *n == name).map(|(_, h)| *h);
        if Some(hex(&bytes).as_str()) != want {
            changed.push_str(&format!("    (\"{name}\", \"{}\"),\n", hex(&bytes)));
        }
        let decoded = decode(&bytes).expect("decode");
        assert_eq!(decoded, msg, "{name}: round trip");
        assert!(
            matches!(
                decode(&bytes[..bytes.len() - 1]),
                Err(DecodeError::Malformed { .. })
            ),
            "{name}: truncated must fail"
        );
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(
            decode(&extra),
            Err(DecodeError::TrailingBytes { extra: 1 }),
            "{name}"
        );
    }
    assert!(changed.is_empty(), "encoding changed; now:\n{changed}");
}

#[test]
fn version_prefix_is_checked_first() {
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        decode(&[1, 0]),
        Err(DecodeError::UnknownVersion { found: 1 })
    );
    assert_eq!(
        decode(&[3, 0]),
        Err(DecodeError::UnknownVersion { found: 3 })
    );
    assert_eq!(
        decode(&[0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::BadVersion)
    );
}

#[test]
fn the_document_shows_these_vectors_and_this_version() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/wire-format.md"
    ))
    .expect("docs/wire-format.md");
    assert!(
        doc.starts_with(&format!("# Wire format (schema version {SCHEMA_VERSION})")),
        "the title names another version"
    );
    for (name, hex) in GOLDEN {
        let line = format!("(\"{name}\", \"{hex}\")");
        assert!(doc.contains(&line), "docs/wire-format.md lacks {line}");
    }
}

#[test]
fn a_schema_1_payload_is_refused_by_version() {
    // The schema 1 `offline` vector: the same message, whose layout did not change, is still
    // refused, because the version comes first.
    let v1 = [
        0x01, 0x01, 0x08, b'p', b'i', b'5', b'-', b'0', b'0', b'4', b'2', 0x02, b'b', b'1', 0x01,
        0x01,
    ];
    assert_eq!(decode(&v1), Err(DecodeError::UnknownVersion { found: 1 }));
}

#[test]
fn postcard_is_smaller_than_json_for_a_batch() {
    let (_, batch) = samples()
        .into_iter()
        .find(|(n, _)| *n == "events")
        .expect("events");
    let pc = encode(&batch).expect("encode").len();
    let js = serde_json::to_vec(&batch).expect("json").len();
    assert!(pc * 2 < js, "postcard {pc} B vs JSON {js} B");
}

/// The agent writes batches event by event (`BatchWriter`): the same golden bytes must come out.
#[test]
fn batches_written_event_by_event_are_the_golden_bytes() {
    for (name, msg) in samples() {
        let Message::Events(batch) = msg else {
            continue;
        };
        let mut writer = BatchWriter::new();
        let mut heap = Vec::new();
        for (i, mut ev) in batch.events.clone().into_iter().enumerate() {
            // The age the golden batch shows, as a timestamp before its clock; the value the
            // event carries is the writer's to replace.
            let ts_ns = batch.mono_ns - ev.age_us() * 1000;
            ev.set_age_us(999_999);
            if i % 2 == 0 {
                // Encoded ahead, as the agent's readers do.
                let encoded = EncodedEvent::new(&mut ev).expect("encode");
                heap.push(encoded.is_heap());
                writer.push_encoded(ts_ns, &encoded);
            } else {
                writer.push(ts_ns, &mut ev).expect("push");
            }
        }
        assert_eq!(writer.len(), batch.events.len());
        // The bind and the exit fit inline; the OOM kill and the storage summary do not.
        let want_heap: &[bool] = if name == "events" {
            &[false, false]
        } else {
            &[true, true]
        };
        assert_eq!(heap, want_heap, "{name}");
        let mut out = vec![0xee; 3];
        writer
            .finish(
                BatchHead {
                    device: batch.device.clone(),
                    boot_id: batch.boot_id.clone(),
                    run_id: batch.run_id,
                    seq: batch.seq,
                    unix_ms: batch.unix_ms,
                    mono_ns: batch.mono_ns,
                    drops: batch.drops.clone(),
                },
                &mut out,
            )
            .expect("finish");
        let want = GOLDEN.iter().find(|(n, _)| *n == name).map(|(_, h)| *h);
        assert_eq!(Some(hex(&out).as_str()), want, "{name}");
        assert!(writer.is_empty(), "{name}: emptied for the next batch");
    }
}

/// Ages of one and several bytes, a timestamp after the clock (age 0) and a count past 127.
#[test]
fn a_written_batch_decodes_with_every_age_and_count() {
    let mut writer = BatchWriter::new();
    let mono_ns = 400_000_000_000;
    let mut want = Vec::new();
    for i in 0..300u64 {
        let age_us = [0, 1, 127, 128, 16_383, 16_384, 300_000_000][i as usize % 7];
        let mut ev = Event::Exit(Exit {
            age_us: 0,
            task: task(),
            ppid: i as u32,
            how: ExitHow::Code(i as i32),
        });
        let ts_ns = if i == 5 {
            mono_ns + 7_000
        } else {
            mono_ns - age_us * 1000
        };
        writer.push(ts_ns, &mut ev).expect("push");
        ev.set_age_us(if i == 5 { 0 } else { age_us });
        want.push(ev);
    }
    for round in 0..2u32 {
        let mut out = Vec::new();
        let mut w = std::mem::take(&mut writer);
        if round == 1 {
            // The same writer again after a finish: nothing of the first batch is left.
            for ev in &want {
                let mut ev = ev.clone();
                let age = ev.age_us();
                w.push(mono_ns - age * 1000, &mut ev).expect("push");
            }
        }
        w.finish(
            BatchHead {
                device: bounded("d"),
                boot_id: bounded("b"),
                run_id: 1,
                seq: round,
                unix_ms: 2,
                mono_ns,
                drops: vec![],
            },
            &mut out,
        )
        .expect("finish");
        let Message::Events(got) = decode(&out).expect("decode") else {
            panic!("not a batch");
        };
        assert_eq!(got.seq, round);
        assert_eq!(got.events.len(), 300);
        assert_eq!(got.events, want, "round {round}");
        writer = w;
    }
}
