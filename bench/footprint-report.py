#!/usr/bin/env python3
"""Turns the raw figures of scripts/bench-footprint.sh (one `TAG WHO KEY VALUE...` per line)
into the one Markdown table it prints: each figure for the C libbpf consumer, the agent (and
`base`, an older agent binary, and `cb`, the C consumer with batched wake-ups, when measured),
their ratios, and the goal from issue 10.
With several rounds each figure is the median over rounds. Figures only; nothing is asserted.
"""

import argparse
import statistics
import sys
import time
from collections import defaultdict



def rate_label(rate):
    r = int(rate)
    if r == 0:
        return "flat out"
    return f"{r // 1000}k/s" if r % 1000 == 0 else f"{r}/s"


def load(path):
    vals = defaultdict(list)  # (phase, who, key) -> [value per round]
    bpf = defaultdict(lambda: [0, 0, 0, 0])  # (who, kind) -> run_ns, runs, jited, xlated
    for line in open(path, encoding="utf-8"):
        f = line.split()
        if len(f) < 4:
            continue
        tag, who, key = f[0], f[1], f[2]
        phase = tag.split("-", 1)[1] if tag.startswith("r") else tag
        if key.startswith("bpf_"):
            if tag == "idle":
                continue
            acc = bpf[(who, key[4:])]
            acc[0] += int(f[3])
            acc[1] += int(f[4])
            acc[2], acc[3] = int(f[5]), int(f[6])
            continue
        try:
            vals[(phase, who, key)].append(float(f[3]))
        except ValueError:
            pass
    return vals, bpf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--machine", default="")
    ap.add_argument("--ring", default="")
    ap.add_argument("--gen", default="")
    ap.add_argument("--rates", default="10000,100000,0",
                    help="the load phases' rates, binds/s (0: flat out)")
    ap.add_argument("--goal-rate", default="100000",
                    help="the rate the syscalls-per-event goal is set at")
    a = ap.parse_args()
    rates = [(r, rate_label(r)) for r in a.rates.split(",")]
    vals, bpf = load(a.results)

    def get(phase, who, key):
        v = vals.get((phase, who, key))
        return statistics.median(v) if v else None

    seen = {w for (_, w, _) in vals}
    whos = ["c", "agent"] + [w for w in ("base", "cb") if w in seen]
    names = {"c": "C libbpf", "agent": "agent", "base": "agent (base)",
             "cb": "C, batched wake-ups"}
    ratios = ([("agent", "c")] + ([("base", "c"), ("agent", "base")] if "base" in whos else [])
              + ([("cb", "c")] if "cb" in whos else []))
    rows = []

    def fmt(v, unit="", digits=0):
        if v is None:
            return "-"
        return f"{v:,.{digits}f}{unit}"

    def ratio(x, y):
        return f"{x / y:.2f}x" if x is not None and y else "-"

    def row(label, per_who, goal="", unit="", digits=0):
        cells = [fmt(per_who.get(w), unit, digits) for w in whos]
        rs = [ratio(per_who.get(x), per_who.get(y)) for x, y in ratios]
        rows.append([label] + cells + rs + [goal])

    def per_event(phase, who, key):
        n, d = get(phase, who, key), get(phase, who, "delivered")
        return n / d if n is not None and d else None

    # Memory and idle.
    idle = {w: get("idle", w, "rss_kb")
            for w in ("agent", "c", "collectd", "node_exporter", "base")}
    thr = {w: get("idle", w, "threads") for w in idle}
    row("idle VmRSS, kB (default config, every probe)", idle)
    anon = {w: get("idle", w, "anon_kb") for w in idle}
    row("idle RssAnon (private), kB", anon)
    rows.append(
        [f"idle RssAnon, kB: collectd + mqtt {fmt(anon['collectd'])}, node_exporter "
         f"{fmt(anon['node_exporter'])}"]
        + [""] * len(whos)
        + [f"agent / collectd {ratio(anon['agent'], anon['collectd'])}"]
        + [""] * (len(ratios) - 1) + [""])
    cd_ok = get("idle", "collectd", "published")
    cd_state = ("published to the broker" if cd_ok else "PUBLISHED NOTHING"
                ) if "collectd" in seen else "not run here"
    rows.append(
        [f"idle VmRSS, kB: collectd + mqtt {fmt(idle['collectd'])} "
         f"({cd_state}), node_exporter "
         f"{fmt(idle['node_exporter'])}; threads C {fmt(thr['c'])}, agent {fmt(thr['agent'])}, "
         f"collectd {fmt(thr['collectd'])}, node_exporter {fmt(thr['node_exporter'])}"]
        + [""] * len(whos)
        + [f"agent / collectd {ratio(idle['agent'], idle['collectd'])}, "
           f"/ node_exporter {ratio(idle['agent'], idle['node_exporter'])}"]
        + [""] * (len(ratios) - 1)
        + ["<= 0.75x collectd"]
    )
    hz, idle_s = get("idle", "all", "hz") or 100, get("idle", "all", "idle_s") or 1
    row(f"idle CPU, % of a core over {idle_s:.0f} s",
        {w: (get("idle", w, "idle_ticks") or 0) / hz / idle_s * 100 for w in whos
         if w != "cb"},
        "~0", "", 2)
    load_rss = {w: get("10000", w, "rss_kb") for w in whos}
    row("VmRSS after the 10k/s phase, kB", load_rss)
    rows.append(["  agent: after 10k/s / idle"] + [""] * len(whos)
                + [ratio(load_rss.get("agent"), idle["agent"])] + [""] * (len(ratios) - 1)
                + ["<= 1.10x"])

    # Per event, per rate.
    for phase, label in rates:
        row(f"CPU per delivered event, ns @ {label}",
            {w: (lambda t, d: t * 1e6 / d if t is not None and d else None)(
                get(phase, w, "perf:task-clock"), get(phase, w, "delivered")) for w in whos},
            "<= 1.5x C")
    for phase, label in rates:
        row(f"syscalls per event @ {label}",
            {w: per_event(phase, w, "perf:raw_syscalls:sys_enter") for w in whos},
            f"<= 0.3 @ {label}" if phase == a.goal_rate else "", "", 3)
    for phase, label in rates:
        row(f"context switches per event @ {label}",
            {w: per_event(phase, w, "perf:context-switches") for w in whos}, "", "", 3)
    for phase, label in rates:
        row(f"delivered / dropped @ {label} (rate reached)",
            {w: get(phase, w, "delivered") for w in whos})
        rows[-1][1:1 + len(whos)] = [
            f"{fmt(get(phase, w, 'delivered'))} / {fmt(get(phase, w, 'drops'))} "
            f"({fmt(get(phase, w, 'gen_rate'))}/s)" for w in whos]
    # Which syscalls, for the agent at the goal's rate.
    for w in [x for x in whos if x not in ("c", "cb")]:
        parts = []
        for key in sorted(k for (p, ww, k) in vals if p == a.goal_rate and ww == w
                          and k.startswith("perf:syscalls:sys_enter_")):
            v = per_event(a.goal_rate, w, key)
            if v and v >= 0.005:
                parts.append(f"{key.rsplit('_enter_', 1)[1]} {v:.3f}")
        rows.append([f"{names[w]} syscalls per event @ {rate_label(a.goal_rate)}: "
                     + (", ".join(parts) or "-")]
                    + [""] * (len(whos) + len(ratios) + 1))

    # Cost in the traced process.
    for kind in ("enter", "exit"):
        row(f"BPF run time per bind {kind}, ns (bpf_stats, all load phases)",
            {w: (lambda a: a[0] / a[1] if a[1] else None)(bpf[(w, kind)]) for w in whos},
            "sum <= 1.05x C" if kind == "exit" else "")
    row("BPF run time per bind() call, enter + exit, ns",
        {w: (lambda e, x: e[0] / e[1] + x[0] / x[1] if e[1] and x[1] else None)(
            bpf[(w, "enter")], bpf[(w, "exit")]) for w in whos}, "<= 1.05x C")
    for kind in ("enter", "exit"):
        row(f"JIT size of bind {kind}, bytes (xlated)",
            {w: bpf[(w, kind)][2] or None for w in whos})
        rows[-1][1:1 + len(whos)] = [f"{bpf[(w, kind)][2]} ({bpf[(w, kind)][3]})"
                                     if bpf[(w, kind)][2] else "-" for w in whos]
    for phase, label in rates:
        base = get(phase, "none", "gen_cpu_ns")
        row(f"traced bind(): generator CPU per call, ns @ {label} (none: {fmt(base)})",
            {w: get(phase, w, "gen_cpu_ns") for w in whos})
    for w in [x for x in whos if x not in ("c", "cb")]:
        lat = [f"{label} max {fmt(get(p, w, 'lat_max_ms'), ' ms', 1)} mean "
               f"{fmt(get(p, w, 'lat_mean_ms'), ' ms', 1)}" for p, label in rates]
        rows.append([f"{names[w]} bind -> subscriber latency: " + "; ".join(lat)]
                    + [""] * (len(whos) + len(ratios) + 1))

    head = (["figure"] + [names[w] for w in whos]
            + [f"{names[x]} / {names[y]}" for x, y in ratios] + ["goal"])
    print(f"Footprint bench, {time.strftime('%Y-%m-%d')}: {a.machine}; ring {a.ring} B for both "
          f"consumers; generator: {a.gen} bind() on CPU 1, consumers on CPU 0")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
