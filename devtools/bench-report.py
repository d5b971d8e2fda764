#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the RESULT/MEM lines of devtools/guest/bench.sh into BENCHMARKS.md: medians per
target and row, ratios tcmu_rs/C and tcmu_rs/rd_mcp, QD1 latency, memory."""
import math, os, platform, random, re, statistics, subprocess, sys
from collections import defaultdict

log, out = sys.argv[1], sys.argv[2]
# (target, store, row) -> [(iops, p50, cpu_us_per_io, rep, busy0, busy1, ctxt/io, ipi0/io, ipi1/io)]
res = defaultdict(list)
mem, counters, rows, head = [], [], [], ""
failed = []
for line in open(log, errors="replace"):
    line = line.strip()
    if line.startswith("BENCH runtime"):
        head = line
    if line.startswith("fio failed") or (line.startswith("RESULT ") and " error=" in line):
        failed.append(line)
    m = re.match(r"RESULT (.*)", line)
    if m:
        kv = dict(x.split("=", 1) for x in m.group(1).split() if "=" in x)
        key = (kv["target"], kv["store"], kv["row"])
        res[key].append((float(kv["iops"]), float(kv["p50_us"]), float(kv.get("cpu_us_io", 0)),
                         kv["rep"], float(kv.get("busy_cpu0", 0)), float(kv.get("busy_cpu1", 0)),
                         float(kv.get("ctxt_io", -1)), float(kv.get("ipi0_io", -1)),
                         float(kv.get("ipi1_io", -1))))
        if kv["row"] not in rows:
            rows.append(kv["row"])
    if line.startswith("MEM "):
        mem.append(line[4:])
    if line.startswith("cmds_submitted"):
        counters.append(line)

# A run that failed would silently leave its row's medians to the other passes: no report.
if failed:
    sys.exit("bench-report: %d failed runs, no report:\n  " % len(failed) + "\n  ".join(failed))
if not res:
    sys.exit("bench-report: no RESULT line in " + log)
accel = re.search(r"\baccel=(\w+)", head)
accel = accel.group(1) if accel else "unknown"

def med(t, store, row, i=0):
    v = [x[i] for x in res.get((t, store, row), []) if x[0] > 0]
    return statistics.median(v) if v else 0.0

def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "n/a"

def paired_all(t, u, store, row):
    """The per-pass IOPS ratios t/u (the two runs of a pass are back to back), in pass order."""
    a = {x[3]: x[0] for x in res.get((t, store, row), []) if x[0] > 0}
    b = {x[3]: x[0] for x in res.get((u, store, row), []) if x[0] > 0}
    return [a[k] / b[k] for k in a if k in b]

def paired(t, u, store, row):
    """Median over the passes of the IOPS ratio t/u of one pass."""
    v = paired_all(t, u, store, row)
    return statistics.median(v) if v else 0.0

def spread(v):
    return f"{min(v):.2f}-{max(v):.2f}" if v else "n/a"

def fmt(r):
    return f"{r:.2f}" if r else "n/a"

cpu = "?"
try:
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
except OSError:
    pass
try:
    commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
except OSError:
    commit = "?"

L = []
L.append("# Benchmarks: tcmu_rs against target_core_user and rd_mcp\n")
L.append("Produced by `make bench` (devtools/bench.sh, devtools/guest/bench.sh, "
         "devtools/bench-report.py); rerun it to reproduce.\n")
L.append("## Method\n")
if accel == "kvm":
    L.append(f"- Machine: {os.cpu_count()} host CPUs ({cpu}); guest QEMU with **KVM**, "
             "`-cpu host -smp 2`.")
else:
    L.append(f"- Machine: {os.cpu_count()} host CPUs ({cpu}); guest QEMU **{accel.upper()}** "
             "(no KVM), `-cpu max -smp 2`: absolute numbers mean little, compare ratios.")
L.append(f"- Kernel: Debian linux-source-6.12 built by this repository (small config), commit {commit}.")
if "interleave=row" in head:
    L.append(f"- Run: `{head}`. One boot; in each pass, row by row, the three targets run "
             "back to back, each on a fresh device, the order alternating (rs c rd, rd c rs, "
             "...). IOPS, latency and CPU cells are **medians** over the passes; rs/c and rs/rd "
             "are the medians of the per-pass ratios (the two runs of a ratio are seconds apart, "
             "so the host's slow spells mostly cancel).")
else:
    L.append(f"- Run: `{head}`. One boot; targets take turns: passes alternate the order "
             "(rs c rd, rd c rs, ...); each cell is the **median** over the passes.")
L.append("- rs = tcmu_rs, c = target_core_user, both with our handler `tcmu-rs-handler` "
         "(null backstore: reads return zeros, writes are dropped) and `max_data_area_mb=32`; "
         "rd = LIO's in-kernel `rd_mcp` ramdisk (no userspace, the limit).")
L.append("- fio through a tcm_loop LUN: libaio, direct, 1 s ramp, time based, 64 MiB region, "
         "scheduler none; IOPS of the job group, p50 total latency (submission to completion); "
         "CPU µs/IO: busy time of all guest CPUs (kernel, handler, fio) per I/O, the cost of "
         "the path, steadier than IOPS under TCG.")
L.append("- Placement: with `pinned=fio:0,handler:1` in the run line, fio runs on CPU 0 and the "
         "handler on CPU 1 for every target (BENCH_PIN=0 lets the scheduler choose: under TCG "
         "that alone changes a run's IOPS several fold).\n")
L.append("## Null backstore (medians)\n")
L.append("| row | rs IOPS | c IOPS | rd IOPS | rs/c | rs/c per pass | rs/rd | p50 µs rs | p50 µs c | CPU µs/IO rs | CPU µs/IO c |")
L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    a, b, c = med("rs", "null", r), med("c", "null", r), med("rd", "null", r)
    L.append(f"| {r} | {a:.0f} | {b:.0f} | {c:.0f} | {fmt(paired('rs', 'c', 'null', r))} | "
             f"{spread(paired_all('rs', 'c', 'null', r))} | "
             f"{fmt(paired('rs', 'rd', 'null', r))} | "
             f"{med('rs', 'null', r, 1):.0f} | {med('c', 'null', r, 1):.0f} | "
             f"{med('rs', 'null', r, 2):.0f} | {med('c', 'null', r, 2):.0f} |")
rc = {r: paired("rs", "c", "null", r) for r in rows}
qd1 = [r for r in rows if "-qd1-" in r]
p50ok = [r for r in qd1 if 0 < med("rs", "null", r, 1) <= med("c", "null", r, 1)]
L.append(f"\nAgainst the goals: rs/c >= 1.0 on {sum(1 for r in rows if rc[r] >= 1.0)} of "
         f"{len(rows)} rows" + (f"; randread-4k-qd32-j1 rs/c {fmt(rc['randread-4k-qd32-j1'])} "
         "(goal >= 1.15)" if "randread-4k-qd32-j1" in rc else "") +
         f"; QD1 p50 rs <= c on {len(p50ok)} of {len(qd1)} QD1 rows.")
below = [r for r in rows if 0 < rc[r] < 1.0]
if below:
    within = [r for r in below if max(paired_all("rs", "c", "null", r), default=0) >= 1.0]
    L.append(f"Rows below 1.0: " + ", ".join(f"{r} {rc[r]:.3f}" for r in below) + ". "
             f"Of these {len(below)}, {len(within)} had at least one pass at or "
             "above 1.0 (the per-pass range straddles parity: not told apart from C by this "
             "run); " + (", ".join(sorted(set(below) - set(within))) or "none") +
             " stayed below 1.0 in every pass.")
# All rows at once: the geometric mean of the per-pass rs/c ratios, with a 95 % bootstrap
# interval (passes resampled within each row; fixed seed, so the report is reproducible).
def gmean(v):
    return math.exp(sum(math.log(x) for x in v) / len(v)) if v else 0.0

per_row = {r: paired_all("rs", "c", "null", r) for r in rows}
groups = [("all rows", rows), ("4 KiB rows", [r for r in rows if "-4k-" in r]),
          ("large-transfer rows", [r for r in rows if "-4k-" not in r])]
rng = random.Random(1)
cis = []
for label, rs_ in groups:
    pools = [per_row[r] for r in rs_ if per_row[r]]
    if not pools:
        continue
    point = gmean([x for p_ in pools for x in p_])
    boot = sorted(gmean([x for p_ in pools for x in (rng.choice(p_) for _ in p_)])
                  for _ in range(2000))
    cis.append(f"{label} {point:.3f} [{boot[50]:.3f}, {boot[1949]:.3f}]")
if cis:
    L.append("Geometric mean of the per-pass rs/c ratios, with a 95 % bootstrap interval over the "
             "passes: " + "; ".join(cis) + ". An interval that contains 1.0 means this run does "
             "not tell the modules apart.")
if any(x[4] or x[5] for v in res.values() for x in v):
    L.append("\nWhere the time goes: % busy of CPU 0 (fio, submission and completion work) and "
             "CPU 1 (the handler, and the reaping it triggers), medians:\n")
    L.append("| row | rs cpu0 | rs cpu1 | c cpu0 | c cpu1 | rd cpu0 | rd cpu1 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        L.append(f"| {r} | " + " | ".join(f"{med(t, 'null', r, i):.0f}" for t in ("rs", "c", "rd")
                                           for i in (4, 5)) + " |")
if any(x[6] >= 0 for v in res.values() for x in v):
    L.append("\nScheduling events per I/O, medians: context switches (all CPUs) and "
             "inter-processor interrupts (function call + reschedule) received by CPU 0 and CPU 1. "
             "A userspace round trip costs the wake-up of the handler and of the completion work "
             "on the submitting CPU; rd_mcp completes in the submitting CPU's kworker:\n")
    L.append("| row | rs ctxt | c ctxt | rd ctxt | rs ipi0 | c ipi0 | rd ipi0 | rs ipi1 | c ipi1 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        L.append(f"| {r} | " + " | ".join(f"{med(t, 'null', r, i):.2f}" for i, t in
                                           ((6, "rs"), (6, "c"), (6, "rd"), (7, "rs"), (7, "c"),
                                            (7, "rd"), (8, "rs"), (8, "c"))) + " |")
L.append("\nPer-pass values (IOPS), to judge the noise:\n")
L.append("| row | rs | c | rd |")
L.append("|---|---|---|---|")
for r in rows:
    cells = [", ".join(f"{x[0]:.0f}" for x in res.get((t, "null", r), [])) for t in ("rs", "c", "rd")]
    L.append(f"| {r} | " + " | ".join(cells) + " |")
if any(k[1] == "ram" for k in res):
    L.append("\n## Ram backstore (one pass)\n")
    L.append("| row | rs IOPS | c IOPS | rs/c | p50 µs rs | p50 µs c |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        a, b = med("rs", "ram", r), med("c", "ram", r)
        L.append(f"| {r} | {a:.0f} | {b:.0f} | {fmt(paired('rs', 'c', 'ram', r))} | {med('rs', 'ram', r, 1):.0f} | "
                 f"{med('c', 'ram', r, 1):.0f} |")
L.append("\n## Memory (tcmu_rs data area pages, 4 KiB each; peak sampled every 0.5 s while fio "
         "ran; idle: after the pass's last row)\n")
for m in mem:
    L.append(f"- {m}")
L.append("\nThe C module has no page counter; its data area is allocated the same way "
         "(blocks on demand, kept until reclaimed).\n")
if counters:
    L.append("Counters of the tcmu_rs passes (attrib/stats): handler wake-ups against commands "
             "show the batching of notifications (plugging); data_in_deferred counts the Data-In "
             "copies moved off the handler's CPU (Documentation/target/tcmu-rs.rst).\n")
    for c in counters:
        L.append(f"- `{c}`")
# Sections written by hand (experiments, analyses: their heading says "not produced by
# `make bench`") survive a new run: they are carried over from the file being replaced.
kept = []
try:
    keep = False
    for l in open(out, errors="replace").read().splitlines():
        if l.startswith("## "):
            keep = "not produced by `make bench`" in l
        if keep:
            kept.append(l)
except OSError:
    pass
if kept:
    L.append("")
    L.extend(kept)
open(out, "w").write("\n".join(L) + "\n")
top = next(i for i, l in enumerate(L) if l.startswith("| row"))
print("\n".join(L[top:top + len(rows) + 2]))
