#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Writes the overlay as a git format-patch series against the pristine Debian 6.12 tree.

Usage: patches.py REPO SRC TOP OUT

REPO  a git repository whose branch 'pristine' holds the unpacked linux-source-6.12 tree
SRC   the tested tree (the pristine tree with the overlay and devtools/patches applied)
TOP   the project (overlay files, devtools/patches/0002-*.patch)
OUT   where the series goes (emptied first)

Each commit of SERIES takes its files from SRC: new files whole; files the devtools patches
edit line by line, so that an abstraction's commit adds only its own lines (for instance its
`pub mod` in rust/kernel/lib.rs) and every prefix of the series is a consistent tree. The end
state is checked to be SRC's files exactly. Exits non-zero on any mismatch.
"""
import difflib
import os
import re
import subprocess
import sys

AUTHOR = "TCMU in Rust developers <tcmu-rs@example.invalid>"
SOB = "Signed-off-by: " + AUTHOR

# (subject, body, files and directories). Order is the review order: the SCSI fix, the
# bindings, the abstractions one by one, then the driver, its documentation, its selftests
# and the host tools.
SERIES = [
    ("rust: bindings and C helpers for the target core, UIO and generic netlink",
     "Adds the C headers of the LIO target core, UIO, configfs, generic netlink,\n"
     "timers, scatterlists and the TCMU UAPI to the bindings, the helpers for\n"
     "their inline functions, and GFP_NOIO for allocations in the I/O path.",
     ["rust/bindings/bindings_helper.h", "rust/helpers/helpers.c", "rust/helpers/genetlink.c",
      "rust/helpers/mm.c", "rust/helpers/target.c", "rust/helpers/timer.c",
      "rust/kernel/alloc.rs"]),
    ("rust: kunit: add #[kunit_tests] suites",
     "Declares a KUnit suite from a module of #[test] functions, with mainline's\n"
     "attribute name and test syntax; built only with CONFIG_KUNIT.",
     ["rust/macros/kunit.rs", "rust/macros/lib.rs", "rust/kernel/prelude.rs",
      "rust/kernel/kunit_suite.rs", "lib.rs:kunit_suite"]),
    ("rust: add module parameters with their own parsing",
     "module_param_cb!() and ParamOps: a parameter type parses and formats its\n"
     "value itself, as C's module_param_cb().",
     ["rust/kernel/module_param.rs", "lib.rs:module_param"]),
    ("rust: add rate limiting", "pr_*_ratelimited!() and a ratelimit state.",
     ["rust/kernel/ratelimit.rs", "lib.rs:ratelimit"]),
    ("rust: add a timer and cancellable work owned by an Arc",
     "A timer and a work item that hold a reference to their Arc owner while\n"
     "pending, with cancellation that waits for a running callback.",
     ["rust/kernel/timer.rs", "lib.rs:timer"]),
    ("rust: add generic netlink families",
     "Registration of a generic netlink family with operations, multicast groups\n"
     "and attribute parsing.",
     ["rust/kernel/genetlink.rs", "lib.rs:genetlink"]),
    ("rust: page: add PageRef; add scatterlist copies",
     "A counted page reference, and the borrowed view of a scatter-gather list\n"
     "someone else built, with copies to and from pages.",
     ["rust/kernel/page.rs", "rust/kernel/scatterlist.rs", "lib.rs:scatterlist"]),
    ("rust: add UIO devices",
     "UIO device registration with shared vmalloc memory, mmap with a fault\n"
     "handler and the open mapping of the device.",
     ["rust/kernel/uio.rs", "lib.rs:uio"]),
    ("rust: add LIO target pass-through backends",
     "Backend registration, HBAs, devices, commands and their completion, device\n"
     "attributes and actions, task management.",
     ["rust/kernel/target.rs", "lib.rs:target"]),
    ("target: add tcmu_rs, the TCMU user backstore in Rust",
     "A Rust implementation of target_core_user with the same ABI. It builds as\n"
     "tcmu_rs beside the C module, or with CONFIG_TCM_USER_RS_DROP_IN as\n"
     "target_core_user in its place.",
     ["drivers/target/tcmu_rs", "drivers/target/Kconfig", "drivers/target/Makefile",
      "drivers/target/target_core_transport.c", "MAINTAINERS"]),
    ("Documentation: target: describe tcmu_rs", "Its design, differences from the C module and tests.",
     ["Documentation/target/tcmu-rs.rst"]),
    ("selftests: add TCMU tests", "kselftests run against either TCMU module.",
     ["tools/testing/selftests/tcmu"]),
    ("tools: add the TCMU host tools",
     "A handler, a hostile-handler fuzzer and the host tests of the driver's pure\n"
     "files.",
     ["tools/tcmu"]),
]


# Kernel files that devtools/patches/0001 edits (each in one commit; lib.rs line by line).
EDITED = {"rust/bindings/bindings_helper.h", "rust/helpers/helpers.c", "rust/kernel/alloc.rs",
          "rust/kernel/prelude.rs", "rust/macros/lib.rs", "rust/kernel/page.rs",
          "drivers/target/Kconfig", "drivers/target/Makefile",
          "drivers/target/target_core_transport.c", "MAINTAINERS"}


def git(repo, *args, inp=None):
    return subprocess.run(["git", "-C", repo, *args], input=inp, check=True,
                          capture_output=True, text=True).stdout


def tracked(top, path):
    """The project's tracked files under PATH (a file or a directory)."""
    return subprocess.run(["git", "-C", top, "ls-files", "--", path], check=True,
                          capture_output=True, text=True).stdout.split()


def lib_owner(line, nxt):
    """The lib.rs:NAME item an added line of rust/kernel/lib.rs belongs to."""
    m = re.match(r"pub mod (\w+);", (nxt if line.startswith("#[cfg") else line).strip())
    return "lib.rs:" + m.group(1) if m else None


def compose(pristine, final, upto):
    """PRISTINE with the added lines of FINAL whose owner is in UPTO (rust/kernel/lib.rs)."""
    out = []
    sm = difflib.SequenceMatcher(a=pristine, b=final, autojunk=False)
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op == "equal":
            out += pristine[a0:a1]
        elif op == "insert":
            for i in range(b0, b1):
                nxt = final[i + 1] if i + 1 < len(final) else ""
                if lib_owner(final[i], nxt) in upto:
                    out.append(final[i])
        else:
            raise SystemExit(f"lib.rs: only added lines are supported ({op})")
    return out


def main():
    repo, src, top, out = sys.argv[1:5]
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    git(repo, "checkout", "-q", "-f", "-B", "series", "pristine")
    git(repo, "clean", "-q", "-fdx")
    lib = "rust/kernel/lib.rs"
    lib_pristine = git(repo, "show", f"pristine:{lib}").splitlines(keepends=True)
    lib_final = open(os.path.join(src, lib), encoding="utf-8").read().splitlines(keepends=True)
    done_lib = set()
    env = dict(os.environ, GIT_AUTHOR_NAME="TCMU in Rust developers",
               GIT_AUTHOR_EMAIL="tcmu-rs@example.invalid", GIT_COMMITTER_NAME="TCMU in Rust developers",
               GIT_COMMITTER_EMAIL="tcmu-rs@example.invalid",
               GIT_AUTHOR_DATE="2026-12-07T00:00:00Z", GIT_COMMITTER_DATE="2026-12-07T00:00:00Z")
    # The SCSI fix first, as it was written (a git format-patch of its own).
    scsi = sorted(p for p in os.listdir(os.path.join(top, "devtools/patches")) if p.startswith("0002"))
    for p in scsi:
        subprocess.run(["git", "-C", repo, "am", "-q", os.path.join(top, "devtools/patches", p)],
                       check=True, env=env)
    touched = set()
    for subject, body, items in SERIES:
        for item in items:
            if item.startswith("lib.rs:"):
                done_lib.add(item)
                text = "".join(compose(lib_pristine, lib_final, done_lib))
                open(os.path.join(repo, lib), "w", encoding="utf-8").write(text)
                touched.add(lib)
                continue
            # Files of the kernel that devtools/patches edit are taken whole from the
            # tested tree; our own files are those the project tracks.
            paths = [item] if item in EDITED else tracked(top, item)
            if not paths:
                raise SystemExit(f"{item}: no such file in the project or the tested tree")
            for f in paths:
                dst = os.path.join(repo, f)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                with open(os.path.join(src, f), "rb") as s, open(dst, "wb") as d:
                    d.write(s.read())
                touched.add(f)
        git(repo, "add", "-A", "-f")
        msg = f"{subject}\n\n{body}\n\n{SOB}\n"
        subprocess.run(["git", "-C", repo, "commit", "-q", "-F", "-"], input=msg, text=True,
                       check=True, env=env)
    # The end state is the tested tree.
    bad = 0
    for f in sorted(touched):
        a = open(os.path.join(repo, f), "rb").read()
        b = open(os.path.join(src, f), "rb").read()
        if a != b:
            print(f"patches: {f} differs from the tested tree")
            bad = 1
    diff = git(repo, "diff", "--stat", "pristine", "series")
    subprocess.run(["git", "-C", repo, "format-patch", "-q", "-o", os.path.abspath(out),
                    "pristine..series"], check=True)
    n = len(os.listdir(out))
    print(f"patches: {n} patches in {out} ({diff.strip().splitlines()[-1].strip()})")
    return bad


sys.exit(main())
