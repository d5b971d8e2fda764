#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The no-panic gate of `make check`: no path of ours reaches a Rust panic.

    no-panic.py CORE_O KERNEL_O MODULE_O... [--ours PATH...]

A panic is found by what it is, not by its name: a *panic entry point* is a function of
CORE_O (the kernel's libcore) that never returns (no `ret`, no return thunk, and every
tail jump goes to another function that never returns) and reaches the panic handler
(`rust_begin_unwind`, or `core::panicking::panic_fmt`, by calls and jumps). That covers
`core::panicking::*`, `core::option::unwrap_failed`, `core::result::unwrap_failed`,
`core::slice::index::*_fail`, `len_mismatch_fail`, `core::str::slice_error_fail`,
`core::cell::panic_already_borrowed` and whatever a newer rustc adds.

*Ours*: every function of the MODULE_O files, and the functions of KERNEL_O whose symbol
names one of the --ours paths (our `rust/kernel` abstractions, e.g. `kernel::uio`). A
function may panic when it calls or jumps to a panic entry point, or to a function of
KERNEL_O or MODULE_O that may panic. Every one of ours that may panic is printed with the
call chain to the entry point; the exit status is 1 if there is one, 2 on bad input (a
gate that found nothing to check fails, too).
"""
import re
import subprocess
import sys

FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
INSN = re.compile(r"^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$")
RELOC = re.compile(r"^\s+[0-9a-f]+: R_X86_64_(?:PLT32|PC32)\s+(\S+?)(?:[-+]0x[0-9a-f]+)?$")
DIRECT = re.compile(r"^[0-9a-f]+ <([^+>]+)>$")
RETURN_THUNK = "__x86_return_thunk"
HANDLERS = ("rust_begin_unwind", "4core9panicking9panic_fmt")


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True,
                             text=True, check=True).stdout.splitlines()
        if len(out) == len(names):
            return dict(zip(names, out))
    except (OSError, subprocess.CalledProcessError):
        pass
    return {n: n for n in names}


class Func:
    __slots__ = ("name", "obj", "calls", "tails", "returns")

    def __init__(self, name, obj):
        self.name, self.obj = name, obj
        self.calls, self.tails, self.returns = set(), set(), False


def parse(obj):
    """Functions of one object: their callees, tail-jump targets and whether they return."""
    text = subprocess.run(["objdump", "-dr", "--no-show-raw-insn", obj], capture_output=True,
                          text=True, check=True).stdout
    funcs, cur, pending = {}, None, None
    for line in text.splitlines():
        m = FUNC.match(line)
        if m:
            cur = funcs.setdefault(m.group(1), Func(m.group(1), obj))
            pending = None
            continue
        if cur is None:
            continue
        m = RELOC.match(line)
        if m and pending:
            target = m.group(1)
            if pending == "jmp" and target == RETURN_THUNK:
                cur.returns = True
            elif target != RETURN_THUNK:
                (cur.calls if pending == "call" else cur.tails).add(target)
            pending = None
            continue
        m = INSN.match(line)
        if not m:
            continue
        op, args = m.group(1), m.group(2)
        pending = None
        if op.startswith("ret"):
            cur.returns = True
        elif op.startswith("call") or op.startswith("j"):
            # call, jmp, and conditional jumps (a `jne` to another function is a tail call).
            kind = "call" if op.startswith("call") else "jmp"
            if args.startswith("*"):
                # Indirect: the target is unknown; a jump may return through it.
                cur.returns |= kind == "jmp"
                continue
            d = DIRECT.match(args)
            if d and d.group(1) != cur.name:
                # A direct call or jump to a local function (no relocation).
                (cur.calls if kind == "call" else cur.tails).add(d.group(1))
            else:
                pending = kind  # a relocation on the next line names the target
    # rustc splits cold parts into NAME.cold (or similar) local symbols: fold them in.
    for name in list(funcs):
        base = name.split(".cold")[0]
        if base != name and base in funcs:
            f, b = funcs.pop(name), funcs[base]
            b.calls |= f.calls
            b.tails |= f.tails
            b.returns |= f.returns
    # Symbols at the address of a function that objdump printed under another name (merged
    # functions): callers may name either.
    for name, alias in aliases(obj, funcs).items():
        funcs.setdefault(name, alias)
    return funcs


def aliases(obj, funcs):
    """Maps every function symbol of OBJ that objdump did not label to the Func at its address."""
    out = subprocess.run(["nm", "--defined-only", obj], capture_output=True, text=True,
                         check=True).stdout
    by_addr, names = {}, []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[1] not in "TtWw":
            continue
        addr, _, name = parts
        names.append((addr, name))
        if name in funcs:
            by_addr.setdefault(addr, funcs[name])
    return {name: by_addr[addr] for addr, name in names if name not in funcs and addr in by_addr}


def main(argv):
    ours_paths = []
    if "--ours" in argv:
        i = argv.index("--ours")
        argv, ours_paths = argv[:i], argv[i + 1:]
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    core_o, kernel_o, modules = argv[1], argv[2], argv[3:]
    core = parse(core_o)
    kernel = parse(kernel_o)
    mods = {}
    for m in modules:
        mods.update(parse(m))
    if not core or not kernel or not mods:
        print("no-panic: nothing to check (empty object?)", file=sys.stderr)
        return 2

    # Functions of core that never return: the greatest set where no member returns and
    # every tail jump stays in the set (a jump outside core counts as returning).
    diverging = {n for n, f in core.items() if not f.returns}
    changed = True
    while changed:
        changed = False
        for n in list(diverging):
            if any(t not in diverging for t in core[n].tails):
                diverging.discard(n)
                changed = True
    # ... and reach the panic handler.
    handler = {n for n in core if any(h in n for h in HANDLERS)}
    handler |= {n for f in core.values() for n in f.calls | f.tails if any(h in n for h in HANDLERS)}
    reaches = set(handler)
    changed = True
    while changed:
        changed = False
        for n, f in core.items():
            if n not in reaches and (f.calls | f.tails) & reaches:
                reaches.add(n)
                changed = True
    entries = diverging & reaches
    if not entries:
        print("no-panic: found no panic entry point in %s: the gate would test nothing" % core_o,
              file=sys.stderr)
        return 2

    # Which functions of the kernel crate and the module may panic, and through what.
    graph = dict(kernel)
    graph.update(mods)
    via = {}
    for n, f in graph.items():
        hit = sorted((f.calls | f.tails) & entries)
        if hit:
            via[n] = hit[0]
    changed = True
    while changed:
        changed = False
        for n, f in graph.items():
            if n in via:
                continue
            for t in sorted(f.calls | f.tails):
                if t in via and t in graph:
                    via[n] = t
                    changed = True
                    break

    ours = set(mods)
    names = demangle(sorted(set(graph) | entries))
    # kernel::uio is "6kernel3uio" in a v0-mangled symbol (each identifier length-prefixed).
    frags = ["".join("%d%s" % (len(p), p) for p in path.split("::")) for path in ours_paths]
    for path, frag in zip(ours_paths, frags):
        mine = {n for n in kernel if frag in n}
        if not mine:
            print("no-panic: no function of %s in %s" % (path, kernel_o), file=sys.stderr)
            return 2
        ours |= mine
    bad = sorted(n for n in ours if n in via)
    for n in bad:
        chain, seen = [names[n]], {n}
        t = via[n]
        while t in via and t not in seen:
            seen.add(t)
            chain.append(names.get(t, t))
            t = via[t]
        chain.append(names.get(t, t))
        print("  " + "\n    -> ".join(chain))
    print("no-panic: %d panic entry points in core, %d functions of ours checked (%d in the "
          "kernel crate), %d may panic" % (len(entries), len(ours), len(ours) - len(mods),
                                           len(bad)), file=sys.stderr)

    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
