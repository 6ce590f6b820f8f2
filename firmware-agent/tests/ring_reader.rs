//! The ring-buffer reader on the real kernel: records the probes write are read whole, in
//! order, also those that wrap around the ring's end (copied out), and the data pages are
//! mapped once (half the resident pages of a reader that maps them twice). Run as root.

mod common;

use std::os::fd::AsRawFd as _;

use common::{require_root, smaps_kib};
use edge_wire::{Event, SockAddr};
use firmware_agent::{kernel::page_size, ringbuf::MappedRing};

/// Calls bind() on `fd` (already bound: EINVAL) with 127.0.0.1:`port`; the probes record
/// every bind, failed or not, with the address asked for.
fn bind_attempt(fd: i32, port: u16) {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a valid sockaddr_in and its length; the result is not needed.
    unsafe {
        libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
}

/// Sum of the Size of this process's mappings of BPF maps, kB.
fn bpf_map_mappings_kib() -> u64 {
    smaps_kib("self", "Size:", |l| l.ends_with("anon_inode:bpf-map"))
}

#[test]
fn records_that_wrap_around_the_ring_end_are_read_whole_and_in_order() {
    require_root();
    let mut cfg = firmware_agent::config::Config::default();
    cfg.ring_buffers.watch_events = 4096;
    let mut loaded = firmware_agent::agent::load(&cfg).expect("load probes");
    let Some(aya::maps::Map::RingBuf(data)) = loaded.ebpf.take_map("WATCH_EVENTS") else {
        panic!("WATCH_EVENTS is not a ring buffer");
    };
    let page = page_size() as usize;
    let size = page.max(4096);
    let before = bpf_map_mappings_kib();
    let mut ring = MappedRing::new(data, size, page).expect("map the ring");
    assert_eq!(
        bpf_map_mappings_kib() - before,
        (2 * page + size) as u64 / 1024,
        "a consumer page, a producer page and the data pages once"
    );

    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    let me = std::process::id();
    // Its own bind (port 0) and anything else before the rounds.
    while ring.read_next(|_| ()).is_some() {}
    // A bind record is 168 bytes, 176 with the ring's header: 4096 is no multiple of that, so
    // over 5 rounds of 20 records the ring's end falls inside records several times.
    let mut port = 40_000u16;
    for round in 0..5 {
        let sent: Vec<u16> = (0..20).map(|i| port + i).collect();
        port += 20;
        for &p in &sent {
            bind_attempt(sock.as_raw_fd(), p);
        }
        let mut got = Vec::new();
        while let Some(decoded) =
            ring.read_next(|rec| firmware_agent::decode::decode(rec, |_| None))
        {
            let (_, ev) = decoded.expect("every record decodes");
            if let Event::Bind(b) = ev
                && b.task.tgid == me
                && let SockAddr::V4 { ip, port } = b.addr
            {
                assert_eq!(ip, [127, 0, 0, 1]);
                got.push(port);
            }
        }
        assert_eq!(got, sent, "round {round}: every bind, whole and in order");
    }
    // 100 or more records of 176 bytes pass the end of a 4096-byte ring at least 4 times,
    // each time inside a record's data (records start 8-aligned, 4096 - 8 is no multiple of
    // 176's steps from 0).
    assert!(
        ring.wrapped_records() >= 4,
        "records copied out across the end: {}",
        ring.wrapped_records()
    );
    assert!(ring.read_next(|_| ()).is_none(), "nothing left");
}
