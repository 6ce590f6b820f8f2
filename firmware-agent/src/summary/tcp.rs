//! TCP flows per interval. The kernel tracks every socket seen opening in `SOCKS` (owner,
//! addresses, running byte and retransmit totals) and writes a record when one closes. Each
//! interval the agent reads the live sockets, adds the closes that arrived, and turns the
//! growth of each socket's totals into counts per (process, peer, port, direction). A closed
//! socket stays in the kernel's map marked closed (reads of data queued before the close still
//! count): its close is counted once (record or scan), and the caller removes it from the map
//! at the first scan `LINGER_NS` after the close; its totals are remembered a few scans more,
//! so a close record read late adds nothing twice. At most `max_flows` flows are published,
//! the busiest by bytes; the rest are summed.

use std::collections::{HashMap, HashSet};

use edge_wire::{Comm, Direction, IpAddr, Task, TcpCounts, TcpFlow, TcpRest, TcpSummary};
use firmware_agent_common::{
    SOCK_CLOSED, SOCK_ESTABLISHED, SOCK_OUTBOUND, SockInfo, TcpCloseEvent,
};

use crate::decode::comm_of;

const AF_INET6: u16 = 10;
/// Scans a socket may be missing from the map before it is forgotten here.
const FORGET_AFTER_MISSES: u8 = 3;
/// How long a closed socket stays in the kernel's map for the reads that follow its close.
pub const LINGER_NS: u64 = 1_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FlowKey {
    tgid: u32,
    comm: Comm,
    direction: Direction,
    peer: IpAddr,
    port: u16,
}

fn key(s: &SockInfo) -> FlowKey {
    let outbound = s.flags & SOCK_OUTBOUND != 0;
    FlowKey {
        tgid: s.tgid,
        comm: comm_of(&s.comm),
        direction: if outbound {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        peer: if s.family == AF_INET6 {
            IpAddr::V6(s.remote_addr)
        } else {
            let mut v4 = [0u8; 4];
            v4.copy_from_slice(&s.remote_addr[..4]);
            IpAddr::V4(v4)
        },
        port: if outbound {
            s.remote_port
        } else {
            s.local_port
        },
    }
}

/// A socket's totals when last counted.
#[derive(Clone, Copy, Default)]
struct Seen {
    start_ns: u64,
    sent: u64,
    received: u64,
    retransmits: u32,
    misses: u8,
    /// Its close was counted (from its close record or a scan that saw it marked closed).
    closed: bool,
}

/// Counts one connection's close: a failed connect if it never got established, its lifetime.
fn close_counts(c: &mut TcpCounts, s: &SockInfo) {
    c.closed += 1;
    if s.flags & SOCK_OUTBOUND != 0 && s.flags & SOCK_ESTABLISHED == 0 {
        c.failed += 1;
    }
    let ms = s.end_ns.saturating_sub(s.start_ns) / 1_000_000;
    c.closed_ms_total += ms;
    c.closed_ms_max = c.closed_ms_max.max(ms);
}

/// The per-interval aggregation; fed by map scans and close records, emptied by `flush`.
pub struct TcpFlows {
    max_flows: usize,
    seen: HashMap<u64, Seen>,
    scanned: HashSet<u64>,
    counts: HashMap<FlowKey, TcpCounts>,
}

impl TcpFlows {
    pub fn new(max_flows: usize) -> Self {
        Self {
            max_flows,
            seen: HashMap::new(),
            scanned: HashSet::new(),
            counts: HashMap::new(),
        }
    }

    /// Counts what a socket's totals grew by since last seen; a socket seen for the first time
    /// (or a new socket at a reused address) counts as opened.
    fn count(&mut self, sk: u64, s: &SockInfo) -> (&mut TcpCounts, Seen) {
        let prev = match self.seen.get(&sk) {
            Some(p) if p.start_ns == s.start_ns => Some(*p),
            _ => None,
        };
        let c = self.counts.entry(key(s)).or_default();
        if prev.is_none() {
            c.opened += 1;
        }
        let p = prev.unwrap_or(Seen {
            start_ns: s.start_ns,
            ..Default::default()
        });
        c.bytes_sent += s.bytes_sent.saturating_sub(p.sent);
        c.bytes_received += s.bytes_received.saturating_sub(p.received);
        c.retransmits += s.retransmits.saturating_sub(p.retransmits);
        let now = Seen {
            start_ns: s.start_ns,
            sent: s.bytes_sent.max(p.sent),
            received: s.bytes_received.max(p.received),
            retransmits: s.retransmits.max(p.retransmits),
            misses: 0,
            closed: p.closed,
        };
        (c, now)
    }

    /// A socket from the map scan at `now_ns` (CLOCK_MONOTONIC). Returns true when it is to be
    /// removed from the map: closed at least `LINGER_NS` ago, everything it read counted.
    pub fn live(&mut self, sk: u64, s: &SockInfo, now_ns: u64) -> bool {
        let (c, mut now) = self.count(sk, s);
        let mut remove = false;
        if s.flags & SOCK_CLOSED != 0 {
            if !now.closed {
                close_counts(c, s);
                now.closed = true;
            }
            remove = now_ns.saturating_sub(s.end_ns) >= LINGER_NS;
        }
        self.seen.insert(sk, now);
        // A removed socket is not marked scanned: it ages out of `seen` in a few scans.
        if !remove {
            self.scanned.insert(sk);
        }
        remove
    }

    /// A socket closed (its totals at the close). One the kernel keeps marked closed (late
    /// reads) stays known, so the scans count its growth and the close only once.
    pub fn closed(&mut self, ev: &TcpCloseEvent) {
        let s = &ev.sock;
        // A record read after its socket left the map must not keep it known longer.
        let misses = self
            .seen
            .get(&ev.sk)
            .filter(|p| p.start_ns == s.start_ns)
            .map_or(0, |p| p.misses);
        let (c, mut now) = self.count(ev.sk, s);
        if !now.closed {
            close_counts(c, s);
            now.closed = true;
        }
        now.misses = misses;
        self.seen.insert(ev.sk, now);
    }

    /// After a scan: sockets that left the map without a close record (lost to a full ring)
    /// are forgotten after a few scans.
    pub fn end_scan(&mut self) {
        let scanned = std::mem::take(&mut self.scanned);
        self.seen.retain(|sk, s| {
            if scanned.contains(sk) {
                return true;
            }
            s.misses += 1;
            s.misses < FORGET_AFTER_MISSES
        });
    }

    /// The interval's summary (None if nothing happened), and a fresh interval.
    pub fn flush(&mut self, interval_ms: u32) -> Option<TcpSummary> {
        let mut flows: Vec<(FlowKey, TcpCounts)> = self
            .counts
            .drain()
            .filter(|(_, c)| *c != TcpCounts::default())
            .collect();
        if flows.is_empty() {
            return None;
        }
        flows.sort_by(|(ka, a), (kb, b)| {
            (b.bytes_sent + b.bytes_received, b.opened, b.closed)
                .cmp(&(a.bytes_sent + a.bytes_received, a.opened, a.closed))
                .then_with(|| (ka.tgid, ka.port).cmp(&(kb.tgid, kb.port)))
        });
        let rest: Vec<TcpCounts> = flows
            .split_off(self.max_flows.min(flows.len()))
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        let rest = (!rest.is_empty()).then(|| TcpRest {
            flows: rest.len() as u32,
            counts: rest.iter().fold(TcpCounts::default(), |mut t, c| {
                t.opened += c.opened;
                t.closed += c.closed;
                t.failed += c.failed;
                t.bytes_sent += c.bytes_sent;
                t.bytes_received += c.bytes_received;
                t.retransmits += c.retransmits;
                t.closed_ms_total += c.closed_ms_total;
                t.closed_ms_max = t.closed_ms_max.max(c.closed_ms_max);
                t
            }),
        });
        Some(TcpSummary {
            age_us: 0,
            interval_ms,
            flows: flows
                .into_iter()
                .map(|(k, counts)| TcpFlow {
                    task: Task {
                        pid: k.tgid,
                        tgid: k.tgid,
                        comm: k.comm,
                    },
                    direction: k.direction,
                    peer: k.peer,
                    port: k.port,
                    counts,
                })
                .collect(),
            rest,
        })
    }
}

#[cfg(test)]
mod tests {
    use firmware_agent_common::{EventHeader, SOCK_OWNER_KNOWN};

    use super::*;

    fn sock(port: u16, outbound: bool, sent: u64, received: u64) -> SockInfo {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        let mut remote_addr = [0u8; 16];
        remote_addr[..4].copy_from_slice(&[10, 0, 0, 9]);
        SockInfo {
            start_ns: 1_000_000,
            bytes_sent: sent,
            bytes_received: received,
            tgid: 42,
            flags: SOCK_OWNER_KNOWN | SOCK_ESTABLISHED | if outbound { SOCK_OUTBOUND } else { 0 },
            family: 2,
            local_port: 8080,
            remote_port: port,
            comm,
            remote_addr,
            ..Default::default()
        }
    }

    fn close(sk: u64, mut s: SockInfo, at_ns: u64) -> TcpCloseEvent {
        s.end_ns = at_ns;
        TcpCloseEvent {
            header: EventHeader {
                ts_ns: at_ns,
                ..Default::default()
            },
            sk,
            sock: s,
        }
    }

    #[test]
    fn growth_is_counted_once_across_scans_and_the_close() {
        let mut f = TcpFlows::new(8);
        assert!(!f.live(1, &sock(443, true, 100, 10), 0));
        f.end_scan();
        assert!(!f.live(1, &sock(443, true, 250, 30), 0));
        f.end_scan();
        let s = f.flush(1000).expect("summary");
        assert_eq!(s.flows.len(), 1);
        let c = &s.flows[0].counts;
        assert_eq!((c.opened, c.bytes_sent, c.bytes_received), (1, 250, 30));
        assert_eq!(s.flows[0].port, 443);
        assert_eq!(s.flows[0].peer, IpAddr::V4([10, 0, 0, 9]));
        // Next interval: only the growth, then the close.
        f.closed(&close(1, sock(443, true, 300, 30), 41_000_000));
        let s = f.flush(1000).expect("summary");
        let c = &s.flows[0].counts;
        assert_eq!(
            (c.opened, c.closed, c.bytes_sent, c.bytes_received),
            (0, 1, 50, 0)
        );
        assert_eq!((c.closed_ms_total, c.closed_ms_max), (40, 40));
        assert!(f.flush(1000).is_none(), "nothing more happened");
    }

    #[test]
    fn a_short_connection_seen_only_closing_is_opened_and_closed() {
        let mut f = TcpFlows::new(8);
        let mut refused = sock(9, true, 0, 0);
        refused.flags &= !SOCK_ESTABLISHED;
        f.closed(&close(7, refused, 2_000_000));
        f.closed(&close(8, sock(8080, false, 5, 7), 2_000_000));
        let s = f.flush(1000).expect("summary");
        let out = s
            .flows
            .iter()
            .find(|x| x.direction == Direction::Outbound)
            .expect("outbound");
        assert_eq!(
            (out.counts.opened, out.counts.closed, out.counts.failed),
            (1, 1, 1)
        );
        let inb = s
            .flows
            .iter()
            .find(|x| x.direction == Direction::Inbound)
            .expect("inbound");
        assert_eq!(inb.port, 8080, "inbound flows are keyed by the local port");
        assert_eq!((inb.counts.bytes_sent, inb.counts.bytes_received), (5, 7));
    }

    #[test]
    fn a_socket_left_closed_counts_its_late_reads_then_is_forgotten() {
        let mut f = TcpFlows::new(8);
        let mut s = sock(443, true, 100, 10);
        assert!(!f.live(1, &s, 0));
        s.flags |= SOCK_CLOSED;
        s.end_ns = 21_000_000;
        s.bytes_received = 500;
        f.closed(&TcpCloseEvent {
            sk: 1,
            sock: s,
            ..Default::default()
        });
        assert!(
            !f.live(1, &s, 21_500_000),
            "counted closed once, kept for late reads"
        );
        f.end_scan();
        s.bytes_received = 800;
        assert!(
            f.live(1, &s, 21_000_000 + LINGER_NS),
            "closed long enough: remove it"
        );
        f.end_scan();
        let sum = f.flush(1000).expect("summary");
        let c = &sum.flows[0].counts;
        assert_eq!(
            (c.opened, c.closed, c.bytes_received, c.closed_ms_total),
            (1, 1, 800, 20)
        );
        // A close record read late adds nothing.
        f.closed(&TcpCloseEvent {
            sk: 1,
            sock: s,
            ..Default::default()
        });
        assert!(f.flush(1000).is_none());
        for _ in 1..FORGET_AFTER_MISSES {
            f.end_scan();
        }
        assert!(f.seen.is_empty());
    }

    #[test]
    fn flows_past_the_cap_are_summed_and_counted() {
        let mut f = TcpFlows::new(2);
        for (sk, port, sent) in [(1, 1, 10), (2, 2, 30), (3, 3, 20), (4, 4, 5)] {
            assert!(!f.live(sk, &sock(port, true, sent, 0), 0));
        }
        let s = f.flush(1000).expect("summary");
        let ports: Vec<u16> = s.flows.iter().map(|x| x.port).collect();
        assert_eq!(ports, [2, 3], "the busiest first");
        let rest = s.rest.expect("rest");
        assert_eq!(
            (rest.flows, rest.counts.bytes_sent, rest.counts.opened),
            (2, 15, 2)
        );
    }

    #[test]
    fn a_reused_socket_address_is_a_new_connection_and_lost_closes_are_forgotten() {
        let mut f = TcpFlows::new(8);
        assert!(!f.live(1, &sock(443, true, 100, 0), 0));
        let mut again = sock(443, true, 20, 0);
        again.start_ns = 9_000_000;
        assert!(!f.live(1, &again, 0));
        let s = f.flush(1000).expect("summary");
        assert_eq!(
            (s.flows[0].counts.opened, s.flows[0].counts.bytes_sent),
            (2, 120)
        );
        for _ in 0..=FORGET_AFTER_MISSES {
            f.end_scan();
        }
        assert!(f.seen.is_empty());
    }
}
