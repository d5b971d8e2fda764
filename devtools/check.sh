#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make check`: every test layer, timed, summed into one "N passed, N failed" line.
#   check.sh all     host tests, kernel build, guest tests
#   check.sh host    host cargo tests only
#   check.sh guest   guest tests only (kernel must be built)
. "$(dirname "$0")/lib.sh"

RES=$(mktemp -d)
trap 'rm -rf "$RES"' EXIT
declare -a STAGES=()
stage_time() { STAGES+=("$1: $2 s"); }

host_tests() {
	local t0=$SECONDS out=$RES/cargo.log
	log "host: cargo test (tools/tcmu)"
	if (cd "$TOP/tools/tcmu" && cargo test --workspace --no-fail-fast 2>&1) | tee "$out"; then :; fi
	# Sum "test result: ok. N passed; M failed" over all test binaries.
	local p f i
	p=$(awk '/^test result:/ { s += $4 } END { print s + 0 }' "$out")
	f=$(awk '/^test result:/ { s += $6 } END { print s + 0 }' "$out")
	i=$(awk '/^test result:/ { s += $8 } END { print s + 0 }' "$out")
	if ! grep -q '^test result:' "$out"; then f=$((f + 1)); log "host: cargo test did not run"; fi
	if grep -q '^error' "$out"; then f=$((f + 1)); log "host: cargo reported an error"; fi
	echo "host $p $f $i" >>"$RES/results"
	stage_time "host tests" $((SECONDS - t0))
}

build_tools() {
	log "tools: cargo build --release (tcmu-rs-handler, tcmu-rs-fuzzer)"
	(cd "$TOP/tools/tcmu" && cargo build --release -q -p tcmu-handler -p tcmu-fuzzer)
}

# Mutations of the hostile-handler layer (fuzz-handler.sh): LONG=1 (make check LONG=1) for a
# long run; FUZZ_MUTATIONS overrides both.
# The long mode also shortens the fuzzer's tick (FUZZ_TICK ms between rounds of ring-level
# mutations; 5 by default) to 1 ms, so a million mutations take about an hour, not four.
# DIFF_SEEDS: the seeds of the differential scenarios (devtools/guest/diff.sh), "A-B".
if [ "${QUICK:-0}" = 1 ]; then
	FUZZ_MUTATIONS=${FUZZ_MUTATIONS:-2000}
	CYCLES=${CYCLES:-3}
elif [ "${LONG:-0}" = 1 ]; then
	FUZZ_MUTATIONS=${FUZZ_MUTATIONS:-1000000}
	FUZZ_TICK=${FUZZ_TICK:-1}
	CYCLES=${CYCLES:-1000}
	DIFF_SEEDS=${DIFF_SEEDS:-1-1000}
else
	FUZZ_MUTATIONS=${FUZZ_MUTATIONS:-20000}
	CYCLES=${CYCLES:-20}
fi
DIFF_SEEDS=${DIFF_SEEDS:-1-12}
[[ $DIFF_SEEDS =~ ^[0-9]+-[0-9]+$ ]] || die "DIFF_SEEDS must be A-B"
# About 35 s a seed on base (both modules: device setup, LUN RESETs, timeouts).
diff_secs() { local a=${DIFF_SEEDS%-*} b=${DIFF_SEEDS#*-}; echo $(((b - a + 1) * 35)); }
FUZZ_TICK=${FUZZ_TICK:-5}
[[ $FUZZ_MUTATIONS =~ ^[0-9]+$ ]] || die "FUZZ_MUTATIONS must be a number"
[[ $FUZZ_TICK =~ ^[0-9]+$ ]] || die "FUZZ_TICK must be a number"
[[ $CYCLES =~ ^[0-9]+$ ]] || die "CYCLES must be a number"
# LAYERS="PATTERN ...": only the guest layers matching these shell patterns (e.g. LAYERS='cycles-*
# fuzz-*' for a dedicated long run); the host layers always run. Empty: everything.
LAYERS=${LAYERS:-}
[[ $LAYERS =~ ^[A-Za-z0-9_*?\ -]*$ ]] || die "LAYERS: names and patterns (letters, digits, _ - * ?)"
# Each pattern must select a layer of devtools/guest/layers (in this QUICK mode): a typo
# would run nothing and pass.
# runnable_layers: "NAME SELECTOR" for every layer of devtools/guest/layers that this QUICK
# mode runs (SELECTOR: the LAYERS name that selects it).
runnable_layers() {
	local name scope by
	while read -r name scope by; do
		case $name in '' | '#'*) continue ;; esac
		[ "$scope" = all ] || [ "${QUICK:-0}" != 1 ] || continue
		echo "$name ${by:-$name}"
	done <"$TOP/devtools/guest/layers"
}
check_layer_patterns() {
	local pat name by hit
	set -f
	for pat in $LAYERS; do
		hit=0
		while read -r name by; do
			# shellcheck disable=SC2053 # a pattern
			[[ $by == $pat ]] && { hit=1; break; }
		done < <(runnable_layers)
		[ $hit = 1 ] || die "LAYERS: '$pat' selects no layer of devtools/guest/layers"
	done
	set +f
}
check_layer_patterns
# The guest run's time limit grows with the fuzzing time (fuzz-handler.sh fuzzes for at most
# max(90, FUZZ_MUTATIONS / 200) seconds).
fuzz_secs() { local t=$((FUZZ_MUTATIONS / 200)); echo $((t > 90 ? t : 90)); }
# On the debug flavour the fuzzer gets `slowdown` times as long. Measured with a 1 ms tick:
# ~630 mutations a second there (10^6 in 27 min, 1000 cycles in 4 min) since most data-page
# touches run in CLONE_VM children (66-84 a second when every touch forked; 446 on base then).
# The guest's time limit: ~15 min of layers, the fuzzing time, and two create/destroy cycle
# runs of CYCLES (0.16 s a cycle on base, 0.73 s on debug; 5 s allowed).
# KASAN and lockdep under TCG make the guest several times slower.
slowdown=1
[ "$FLAVOUR" = base ] || slowdown=4

# The kselftests, built and installed the kernel way (their Makefile, lib.mk): the guest runs
# them with run_kselftest.sh from the install directory.
build_selftests() {
	local out=$BUILD/kselftest/tcmu t
	rm -rf "$BUILD/kselftest"
	bash "$TOP/devtools/kernel.sh" make headers >/dev/null 2>&1 || die "make headers failed"
	bash "$TOP/devtools/kernel.sh" make TARGETS=tcmu kselftest-install >"$BUILD/kselftest.log" 2>&1 ||
		{ tail -20 "$BUILD/kselftest.log"; die "kselftest build failed (see $BUILD/kselftest.log)"; }
	for t in tcmu_basic tcmu_ring tcmu_fail tcmu_netlink tcmu_diff; do
		[ -x "$out/$t" ] || die "the kselftest build made no $t"
	done
	[ -x "$BUILD/kselftest/kselftest_install/run_kselftest.sh" ] || die "no kselftest install"
}

# The module has no path to a Rust panic (bounds, division, split, unwrap, overflow): each
# would be a BUG on a value a handler controls or a broken invariant. Checked on the objects
# (devtools/no-panic.py): no function of the module, and none of our rust/kernel
# abstractions, calls a libcore function that diverges into the panic handler, directly or
# through the kernel crate.
OUR_ABSTRACTIONS="kernel::uio kernel::target kernel::scatterlist kernel::genetlink kernel::timer kernel::module_param kernel::ratelimit kernel::kunit_suite"
no_panic_paths() {
	local rc=0
	# shellcheck disable=SC2086 # a list of paths
	python3 "$TOP/devtools/no-panic.py" "$BUILD/rust/core.o" "$BUILD/rust/kernel.o" \
		"$BUILD/drivers/target/tcmu_rs/tcmu_rs.o" --ours $OUR_ABSTRACTIONS >&2 || rc=$?
	if [ $rc = 0 ]; then
		log "no-panic: no panic path in tcmu_rs.o and our rust/kernel abstractions"
		echo "no-panic 1 0" >>"$RES/results"
	else
		log "no-panic: panic paths above (or the gate could not check: status $rc)"
		echo "no-panic 0 1" >>"$RES/results"
	fi
}

# The kernel's Rust style (`make rustfmtcheck`: rustfmt with the tree's .rustfmt.toml, edition
# 2021, Unix newlines) on the module and our rust/kernel files.
rustfmt_gate() {
	local out=$RES/rustfmt.log
	if ! command -v rustfmt >/dev/null; then
		log "rustfmt: not installed"
		echo "rustfmt 0 1" >>"$RES/results"
		return
	fi
	# rustfmt follows the module's `mod` items into their files.
	if rustfmt --edition 2021 --config newline_style=Unix --check \
		"$TOP/drivers/target/tcmu_rs/tcmu_rs.rs" "$TOP"/rust/kernel/*.rs "$TOP"/rust/macros/*.rs >"$out" 2>&1; then
		log "rustfmt: the module and our rust/kernel files are formatted"
		echo "rustfmt 1 0" >>"$RES/results"
	else
		grep -E '^Diff in|^error' "$out" | sed "s|$TOP/||" | sort -u >&2
		log "rustfmt: not in the kernel's style (rustfmt --edition 2021 on the files above)"
		echo "rustfmt 0 1" >>"$RES/results"
	fi
}

# The kernel's C style: checkpatch --strict on our C (selftests, rust helpers). Userspace
# selftests cannot use the kernel's u8..u64, so PREFER_KERNEL_TYPES is not checked there.
checkpatch_gate() {
	local f out bad=0
	for f in "$TOP"/tools/testing/selftests/tcmu/*.[ch] "$TOP"/rust/helpers/*.c; do
		out=$(perl "$SRC/scripts/checkpatch.pl" --strict --no-tree --quiet --ignore PREFER_KERNEL_TYPES \
			-f "$f" 2>&1) || { echo "$out" | grep -E '^(ERROR|WARNING|CHECK|#)' >&2; bad=1; }
	done
	if [ $bad = 0 ]; then
		log "checkpatch: --strict clean on the selftests and rust helpers"
		echo "checkpatch 1 0" >>"$RES/results"
	else
		log "checkpatch: findings above"
		echo "checkpatch 0 1" >>"$RES/results"
	fi
}

# `make rustdoc`: the crates' documentation builds without a warning and has a page for each
# of our abstractions and for #[kunit_tests].
rustdoc_gate() {
	local out=$RES/rustdoc.log doc=$BUILD/Documentation/output/rust/rustdoc m bad=0
	if ! bash "$TOP/devtools/kernel.sh" make rustdoc >"$out" 2>&1; then
		tail -20 "$out" >&2
		bad=1
	fi
	if grep -E '^(warning|error)' "$out" >&2; then bad=1; fi
	for m in ${OUR_ABSTRACTIONS//kernel::/}; do
		[ -f "$doc/kernel/$m/index.html" ] || { log "rustdoc: no page for kernel::$m"; bad=1; }
	done
	[ -f "$doc/macros/attr.kunit_tests.html" ] || { log "rustdoc: no page for #[kunit_tests]"; bad=1; }
	if [ $bad = 0 ]; then
		log "rustdoc: make rustdoc clean, our abstractions documented"
		echo "rustdoc 1 0" >>"$RES/results"
	else
		echo "rustdoc 0 1" >>"$RES/results"
	fi
}

# The dropin flavour (devtools/config/dropin.config), compile-only (the Rust crates and the
# module's objects): the configuration a user replacing the C module builds (CONFIG_TCM_USER_RS_DROP_IN, no TCM_USER2, no KUnit), built
# with CLIPPY=1 (the tree's .clippy.toml: msrv 1.78). Our objects are rebuilt every time so
# that their clippy warnings are seen; any warning in our Rust fails, as does a build error.
CLIPPY_OURS='drivers/target/tcmu_rs/|rust/kernel/(uio|target|scatterlist|genetlink|timer|module_param|ratelimit|kunit_suite)\.rs|rust/macros/kunit\.rs'
dropin_gate() {
	local dbuild out t0=$SECONDS
	dbuild=$(FLAVOUR=dropin bash "$TOP/devtools/kernel.sh" path)
	out=$dbuild/build.log
	rm -f "$dbuild/drivers/target/tcmu_rs/"*.o "$dbuild/rust/kernel.o" "$dbuild/rust/macros.o" \
		"$dbuild"/rust/libmacros.so
	if ! FLAVOUR=dropin bash "$TOP/devtools/kernel.sh" build >/dev/null 2>&1; then
		grep -E '^error' -A6 "$out" | head -30 >&2
		log "dropin: the drop-in / KUNIT=n / clippy build failed (see $out)"
		echo "dropin-build 0 1" >>"$RES/results"
		return
	fi
	[ -f "$dbuild/drivers/target/tcmu_rs/target_core_user.o" ] ||
		{ log "dropin: no target_core_user.o"; echo "dropin-build 0 1" >>"$RES/results"; return; }
	echo "dropin-build 1 0" >>"$RES/results"
	# A warning's location follows it: "  --> path:line:col".
	if grep -E '^ *--> ' "$out" | grep -E "$CLIPPY_OURS" >&2; then
		grep -E '^(warning|error)' "$out" | sort | uniq -c >&2
		log "clippy: warnings in our Rust (see $out)"
		echo "clippy 0 1" >>"$RES/results"
	elif ! grep -q 'CLIPPY .*drivers/target/tcmu_rs/tcmu_rs.o' "$out"; then
		log "clippy: the module was not checked"
		echo "clippy 0 1" >>"$RES/results"
	else
		log "clippy: no warning in our Rust (dropin build, $((SECONDS - t0)) s)"
		echo "clippy 1 0" >>"$RES/results"
	fi
}

# `make patches` (devtools/patches.sh): the series applies with git am to the pristine tree
# and gives the tested tree; checkpatch --strict is clean on its kernel patches (all but the
# host tools' patch; FILE_PATH_CHANGES: MAINTAINERS comes with the driver's patch).
patches_gate() {
	local out=$RES/patches log=$RES/patches.log p bad=0
	if ! PATCHES_OUT=$out bash "$TOP/devtools/patches.sh" >"$log" 2>&1; then
		tail -5 "$log" >&2
		log "patches: make patches failed (see $log)"
		echo "patches 0 1" >>"$RES/results"
		return
	fi
	for p in "$out"/*.patch; do
		case $p in *-tools-add-the-TCMU-host-tools.patch) continue ;; esac
		perl "$SRC/scripts/checkpatch.pl" --strict --no-tree --quiet \
			--ignore PREFER_KERNEL_TYPES,FILE_PATH_CHANGES,MISSING_FIXES_TAG "$p" >>"$log" 2>&1 ||
			{ log "checkpatch: findings in $(basename "$p")"; bad=1; }
	done
	if [ $bad = 0 ]; then
		log "patches: $(ls "$out" | wc -l) patches apply to the pristine tree, checkpatch clean"
		echo "patches 1 0" >>"$RES/results"
	else
		grep -E '^(ERROR|WARNING|CHECK)' -A3 "$log" | head -30 >&2
		echo "patches 0 1" >>"$RES/results"
	fi
}

# The msrv flavour, compile-only: the test kernel's Rust built with rustc 1.78, the oldest
# Linux 6.12 supports (the Debian rustc-web is 1.96: newer syntax such as &raw, or newer
# library calls, would pass there and break the kernels users build).
msrv_gate() {
	local dbuild
	dbuild=$(FLAVOUR=msrv bash "$TOP/devtools/kernel.sh" path)
	if FLAVOUR=msrv bash "$TOP/devtools/kernel.sh" build >/dev/null 2>&1 &&
		[ -f "$dbuild/drivers/target/tcmu_rs/tcmu_rs.o" ]; then
		log "msrv: the kernel crate and the module build with rustc $MSRV_TOOLCHAIN"
		echo "msrv 1 0" >>"$RES/results"
	else
		grep -E '^error' -A6 "$dbuild/build.log" | head -30 >&2
		log "msrv: the build with rustc $MSRV_TOOLCHAIN failed (see $dbuild/build.log)"
		echo "msrv 0 1" >>"$RES/results"
	fi
}

guest_tests() {
	local t0=$SECONDS
	log "kernel: build ($FLAVOUR)"
	bash "$TOP/devtools/kernel.sh" build
	bash "$TOP/devtools/kernel.sh" dropin
	stage_time "kernel build" $((SECONDS - t0))
	no_panic_paths
	checkpatch_gate
	rustdoc_gate
	dropin_gate
	msrv_gate
	patches_gate
	t0=$SECONDS
	build_selftests
	build_tools
	log "guest: booting for KUnit, module, kselftests and handler tests"
	mkdir -p "$RES/out"
	local rc=0
	bash "$TOP/devtools/vm.sh" --out "$RES/out" \
		--file "$BUILD/kselftest/tcmu/tcmu_diff:/tcmu/selftests/tcmu_diff" \
		--file "$BUILD/kselftest/kselftest_install:/tcmu/kselftest" \
		--file "$BUILD/dropin/target_core_user.ko:/tcmu/dropin/target_core_user.ko" \
		--file "$TOP/tools/tcmu/target/release/tcmu-rs-handler:/tcmu/tcmu-rs-handler" \
		--file "$TOP/tools/tcmu/target/release/tcmu-rs-fuzzer:/tcmu/tcmu-rs-fuzzer" \
		--file "$TOP/tools/tcmu/guest/handler-smoke.sh:/tcmu/handler-smoke.sh" \
		--timeout $(((1500 + $(fuzz_secs) + $(diff_secs) + CYCLES * 2 * 5) * slowdown)) \
		-- "DIFF_SEEDS=$DIFF_SEEDS FUZZ_MUTATIONS=$FUZZ_MUTATIONS FUZZ_TIME=$(($(fuzz_secs) * slowdown)) FUZZ_TICK=$FUZZ_TICK CYCLES=$CYCLES QUICK=${QUICK:-0} LAYERS='$LAYERS' sh /tcmu/check.sh" || rc=$?
	if [ -s "$RES/out/results" ]; then cat "$RES/out/results" >>"$RES/results"; fi
	account_layers
	# A guest that crashed, hung or logged a kernel warning fails the run.
	[ $rc = 0 ] || echo "guest-vm 0 1" >>"$RES/results"
	stage_time "guest tests" $((SECONDS - t0))
}

# expected_layers: the guest layers this run asks for (devtools/guest/layers, filtered by
# QUICK and LAYERS as the guest filters them).
expected_layers() {
	local name by pat
	while read -r name by; do
		if [ -z "$LAYERS" ]; then echo "$name"; continue; fi
		set -f
		for pat in $LAYERS; do
			# shellcheck disable=SC2053 # a pattern, as in the guest's want()
			if [[ $by == $pat ]]; then echo "$name"; break; fi
		done
		set +f
	done < <(runnable_layers)
}

# account_layers: a layer that was asked for and reported nothing failed (the guest crashed
# before it, /out was not shared, a script stopped early); a result from a layer that is not
# in devtools/guest/layers fails too, so that a new layer cannot be left out of the list.
account_layers() {
	local name expected
	expected=$(expected_layers)
	[ -n "$expected" ] || { echo "guest-layers 0 1" >>"$RES/results"; log "guest: no layer selected"; }
	for name in $expected; do
		grep -q "^$name " "$RES/results" && continue
		log "guest: layer $name reported nothing"
		echo "$name 0 1" >>"$RES/results"
	done
	[ -s "$RES/out/results" ] || return 0
	while read -r name _; do
		case $name in kmemleak-* | *-rmmod) continue ;; esac
		grep -qx "$name" <<<"$expected" && continue
		log "guest: layer $name is not in devtools/guest/layers (or was not asked for)"
		echo "unlisted-$name 0 1" >>"$RES/results"
	done <"$RES/out/results"
}

summary() {
	echo
	echo "== stage times =="
	printf '  %s\n' "${STAGES[@]}"
	echo "== results by layer =="
	awk '{ printf "  %-22s %4d passed, %d failed%s\n", $1, $2, $3, ($4 > 0 ? ", " $4 " skipped" : "") }' "$RES/results"
	local p f s
	p=$(awk '{ s += $2 } END { print s + 0 }' "$RES/results")
	f=$(awk '{ s += $3 } END { print s + 0 }' "$RES/results")
	s=$(awk '{ s += $4 } END { print s + 0 }' "$RES/results")
	echo "$p passed, $f failed"
	# Skips are not passes: each one is listed in devtools/guest/skips.allow (or its layer failed).
	echo "$s skipped"
	[ "$f" = 0 ]
}

: >"$RES/results"
case "${1:-all}" in
host) host_tests; rustfmt_gate ;;
guest) guest_tests ;;
all) host_tests; rustfmt_gate; guest_tests ;;
*) die "usage: check.sh all|host|guest" ;;
esac
summary
