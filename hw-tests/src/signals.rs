//! Rules for the signal families in the QEMU cells: which probes a kernel may lack, and the
//! `kprobe-*`/`fentry-*` cells' TCP check (the byte counters forced onto kprobe/kretprobe or
//! fexit, a transfer of known size between the guest's `nc` and a sink on the host, summed over
//! the agent's TCP summaries).

use serde_json::Value;

/// The storage probes: the 64K kernel is built without ext4 and without the block layer, so
/// their tracepoints do not exist there.
const STORAGE_PROBES: [&str; 5] = [
    "ext4_da_write_end",
    "ext4_write_end",
    "ext4_journalled_write_end",
    "block_rq_issue",
    "block_rq_complete",
];

/// Whether a probe may be skipped on the kernel `pages`: only a storage probe on the 64K
/// kernel, and only because its tracepoint is not there.
pub fn may_skip(pages: &str, probe: &Value) -> bool {
    pages == "64k"
        && STORAGE_PROBES.iter().any(|n| probe["name"] == *n)
        && probe["state"]["Skipped"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not found"))
}

/// What the sink on the host saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sink {
    pub port: u16,
    /// Bytes the guest sent (read by the sink), and the sink sent back.
    pub up: u64,
    pub down: u64,
}

/// Bytes, opens and closes of the guest `nc`'s flow to the sink, summed over every summary.
fn nc_flow(records: &[Value], device: &str, port: u16) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for f in records
        .iter()
        .filter(|v| v["type"] == "event" && v["device"] == device)
        .filter_map(|v| v["event"]["Tcp"]["flows"].as_array())
        .flatten()
        .filter(|f| {
            f["task"]["comm"] == "nc"
                && f["direction"] == "Outbound"
                && f["port"] == port
                && f["peer"]["V4"] == serde_json::json!([10, 0, 2, 2])
        })
    {
        let n = |k: &str| f["counts"][k].as_u64().unwrap_or(0);
        t.0 += n("bytes_sent");
        t.1 += n("bytes_received");
        t.2 += n("opened");
        t.3 += n("closed");
    }
    t
}

/// The kprobe/fentry cells: both byte counters attached by `method` (`Kprobe` or `Fentry`) on
/// the functions, and the transfer summarised exactly as the sink counted it.
pub fn check_functions(records: &[Value], device: &str, method: &str, sink: Sink) -> Vec<String> {
    let mut f = Vec::new();
    let birth = records
        .iter()
        .find(|v| v["type"] == "online" && v["device"] == device);
    for (probe, function) in [("tcp_send", "tcp_sendmsg"), ("tcp_recv", "tcp_recvmsg")] {
        let p = birth
            .and_then(|b| b["body"]["probes"].as_array())
            .and_then(|ps| ps.iter().find(|p| p["name"] == probe));
        match p {
            Some(p)
                if p["state"] == "Attached"
                    && p["method"] == method
                    && p["tracepoint"] == function => {}
            other => f.push(format!(
                "probe {probe}: want Attached by {method} on {function}, got {other:?}"
            )),
        }
    }
    if sink.up == 0 || sink.down == 0 {
        f.push(format!("the sink saw no transfer: {sink:?}"));
    }
    let got = nc_flow(records, device, sink.port);
    if got != (sink.up, sink.down, 1, 1) {
        f.push(format!(
            "nc's flow to 10.0.2.2:{}: (sent, received, opened, closed) {got:?}, want ({}, {}, 1, 1)",
            sink.port, sink.up, sink.down
        ));
    }
    f
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn records(method: &str, sent: u64) -> Vec<Value> {
        let probe = |name: &str, function: &str| json!({"name": name, "tracepoint": function, "state": "Attached", "method": method});
        let flow = json!({"task": {"pid": 90, "tgid": 90, "comm": "nc"}, "direction": "Outbound",
            "peer": {"V4": [10, 0, 2, 2]}, "port": 5555,
            "counts": {"bytes_sent": sent, "bytes_received": 300, "opened": 1, "closed": 0}});
        let closed = json!({"task": {"pid": 90, "tgid": 90, "comm": "nc"}, "direction": "Outbound",
            "peer": {"V4": [10, 0, 2, 2]}, "port": 5555,
            "counts": {"bytes_sent": 0, "bytes_received": 0, "opened": 0, "closed": 1}});
        vec![
            json!({"type": "online", "device": "d", "body": {"probes": [
                probe("tcp_send", "tcp_sendmsg"), probe("tcp_recv", "tcp_recvmsg")]}}),
            json!({"type": "event", "device": "d", "event": {"Tcp": {"flows": [flow]}}}),
            json!({"type": "event", "device": "d", "event": {"Tcp": {"flows": [closed]}}}),
        ]
    }

    const SINK: Sink = Sink {
        port: 5555,
        up: 1000,
        down: 300,
    };

    #[test]
    fn the_function_cells_want_their_method_and_the_exact_transfer() {
        assert!(check_functions(&records("Fentry", 1000), "d", "Fentry", SINK).is_empty());
        assert!(check_functions(&records("Kprobe", 1000), "d", "Kprobe", SINK).is_empty());
        assert_eq!(
            check_functions(&records("Tracepoint", 1000), "d", "Kprobe", SINK).len(),
            2
        );
        let short = check_functions(&records("Kprobe", 999), "d", "Kprobe", SINK);
        assert!(short[0].contains("(999, 300, 1, 1)"), "{short:?}");
    }

    #[test]
    fn only_storage_probes_may_be_missing_and_only_on_the_64k_kernel() {
        let skipped = |name: &str| json!({"name": name, "state": {"Skipped": {"reason": "tracepoint block:block_rq_issue not found"}}});
        assert!(may_skip("64k", &skipped("block_rq_issue")));
        assert!(!may_skip("16k", &skipped("block_rq_issue")));
        assert!(!may_skip("64k", &skipped("tcp_state")));
        let failed =
            json!({"name": "ext4_write_end", "state": {"Skipped": {"reason": "load: EINVAL"}}});
        assert!(!may_skip("64k", &failed));
    }
}
