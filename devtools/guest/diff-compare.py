#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Compares the transcripts of tcmu_diff on the two modules, seed by seed.

Usage: diff-compare.py ALLOW RS_DIR C_DIR SEED...

Two transcripts must have the same lines. A pair of lines that differ is allowed only if
one entry of ALLOW (a regular expression per line; '#' starts a comment, the reason) matches
both. Prints a line per seed, the differences that are not allowed, and a summary; exits 1
if there is any.
"""
import re
import sys


def load_allow(path):
    pats = []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pat, _, reason = line.partition("\t#")
        pats.append((re.compile(pat.strip()), reason.strip()))
    return pats


def compare(rs, c, allow, used):
    bad = []
    if len(rs) != len(c):
        bad.append(f"  {len(rs)} lines on tcmu_rs, {len(c)} on target_core_user")
    for i, (a, b) in enumerate(zip(rs, c)):
        if a == b:
            continue
        hit = [p for p, _ in allow if p.search(a) and p.search(b)]
        if hit:
            used.add(hit[0].pattern)
            continue
        bad.append(f"  line {i + 1}:\n    tcmu_rs:          {a}\n    target_core_user: {b}")
        if len(bad) > 5:
            break
    return bad


def main():
    allow = load_allow(sys.argv[1])
    rs_dir, c_dir, seeds = sys.argv[2], sys.argv[3], sys.argv[4:]
    used, failed, lines = set(), 0, 0
    for s in seeds:
        try:
            rs = open(f"{rs_dir}/{s}.txt", encoding="utf-8", errors="replace").read().splitlines()
            c = open(f"{c_dir}/{s}.txt", encoding="utf-8", errors="replace").read().splitlines()
        except OSError as e:
            print(f"seed {s}: no transcript ({e})")
            failed += 1
            continue
        lines += len(c)
        bad = compare(rs, c, allow, used)
        for name, t in (("tcmu_rs", rs), ("target_core_user", c)):
            if "end" not in t:
                bad.append(f"  the {name} transcript does not reach the end")
        if bad:
            failed += 1
            print(f"seed {s}: DIFFERENT")
            print("\n".join(bad))
        else:
            print(f"seed {s}: same ({len(c)} lines)")
    print(f"diff: {len(seeds)} seeds, {lines} transcript lines, {failed} different, "
          f"{len(used)} allowed differences used")
    for p in sorted(used):
        print(f"  allowed: {p}")
    return 1 if failed else 0


sys.exit(main())
