# SPDX-License-Identifier: GPL-2.0
# TCMU in Rust: the project's driver (not the kernel's Makefile).
#
#   make run      build everything, boot the guest, load our module, create a `user` device
#   make check    all tests: host cargo tests, KUnit and kselftests in the guest; ends with
#                 "N passed, N failed"
#
# Variables: FLAVOUR=base|debug (debug = KASAN, lockdep, kmemleak), ACCEL=tcg|kvm|auto,
# TCMU_CACHE=dir (default ~/.cache/tcmu-rs), JOBS=n, LONG=1 (long fuzzing run),
# FUZZ_MUTATIONS=n (mutations of the hostile-handler test), FUZZ_TICK=ms (its pace),
# QUICK=1 (short developer run), LAYERS='pattern ...' (only these guest layers).

SHELL := /bin/bash
export FLAVOUR ?= base
export ACCEL ?= tcg
# LONG=1: long runs of the randomized tests (1000000 fuzzer mutations instead of 20000, 1000
# create/destroy cycles per module instead of 20; the fuzzer's tick 1 ms instead of 5).
export LONG ?= 0
# QUICK=1: our module only, without the long layers (the developer loop; `make check` without
# it is the contract).
export QUICK ?= 0

.PHONY: all run check bench patches deps kernel modules host-test vm-check vm clean-cache

all: run

deps:
	@bash devtools/deps.sh

kernel: deps
	@bash devtools/kernel.sh build

modules: deps
	@bash devtools/kernel.sh modules

host-test: deps
	@bash devtools/check.sh host

vm-check: kernel
	@bash devtools/check.sh guest

# Run a command in the guest: make vm CMD='lsmod'
vm: kernel
	@bash devtools/vm.sh -- "$(CMD)"

run: kernel
	@cd tools/tcmu && cargo build --release -q -p tcmu-handler
	@bash devtools/vm.sh --file tools/tcmu/target/release/tcmu-rs-handler:/tcmu/tcmu-rs-handler \
		-- 'bash /tcmu/run.sh'

check: deps
	@bash devtools/check.sh all

# The benchmark: fio through tcm_loop on tcmu_rs, target_core_user and rd_mcp in one boot;
# writes BENCHMARKS.md. BENCH_RUNTIME=s BENCH_REPS=n BENCH_ROWS='row ...' BENCH_PIN=0|1
# BENCH_PROFILE=row (a perf profile of one row on both modules instead of the matrix).
bench: deps
	@bash devtools/bench.sh

# The overlay as a git format-patch series against the pristine Debian 6.12 tree, in
# out/patches (PATCHES_OUT=dir), checked to apply with git am and to give the tested tree.
patches: deps
	@bash devtools/patches.sh

clean-cache:
	rm -rf "$${TCMU_CACHE:-$$HOME/.cache/tcmu-rs}/build"
