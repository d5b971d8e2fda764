#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make check`. Each layer appends "<layer> <passed> <failed>" to $RESULTS.
RESULTS=${RESULTS:-/out/results}
: >"$RESULTS"
KSELFTEST=/tcmu/kselftest	# kselftest-install of tools/testing/selftests/tcmu

say() { echo "[guest] $*"; }
. /tcmu/lib.sh

# unload MODULE LAYER: the kmemleak check (debug flavour) while MODULE is still loaded, if a
# layer left it loaded, then rmmod with tcm_loop.
unload() {
	if [ -e "/sys/module/$1" ] && ! leakcheck "$1"; then
		echo "kmemleak-$2 0 1" >>"$RESULTS"
	fi
	rmmod tcm_loop "$1" 2>/dev/null
}

# QUICK=1: our module only, without the long layers (a developer's loop, not the contract).
QUICK=${QUICK:-0}
MODS="tcmu_rs target_core_user"
[ "$QUICK" = 1 ] && MODS=tcmu_rs
full() { [ "$QUICK" != 1 ]; }

# LAYERS="PATTERN...": only the layers whose names match one of the shell patterns (e.g.
# "cycles-tcmu_rs fuzz-*"); empty: every layer. For dedicated long runs, not the contract.
LAYERS=${LAYERS:-}
want() {
	[ -z "$LAYERS" ] && return 0
	# Split on spaces without expanding the patterns against the working directory
	# ('fuzz-*' matched /tcmu/fuzz-handler.sh there).
	local -
	set -f
	for pat in $LAYERS; do
		# shellcheck disable=SC2254 # the patterns are meant to match
		case "$1" in $pat) return 0 ;; esac
	done
	return 1
}
now() { date +%s; }

# Counts KTAP test-case lines (indented "ok"/"not ok") on stdin: prints "passed failed
# skipped".
ktap_count() {
	awk '/^[ \t]+ok [0-9]+ / { if ($0 ~ /# SKIP/) s++; else p++ }
	     /^[ \t]+not ok [0-9]+ / { f++ }
	     END { print p + 0, f + 0, s + 0 }'
}

# skips_allowed LAYER LOG: every kselftest case that LOG shows as skipped must be listed for
# LAYER in skips.allow (a skip is a test that did not run); prints the skip count, and says
# and returns 1 for any other.
skips_allowed() {
	local n=0 bad=0 name
	for name in $(sed -n 's/^ok [0-9]* \([^ ]*\) # SKIP.*/\1/p' "$2"); do
		n=$((n + 1))
		grep -qx "$1 $name" /tcmu/skips.allow && continue
		say "FAILED: $1: $name skipped (not in skips.allow)" >&2
		bad=1
	done
	echo "$n"
	return $bad
}

# Lines of the kernel log printed after line $1.
dmesg_since() { dmesg | tail -n +"$(($1 + 1))"; }

# Layer 1: KUnit suites built into the kernel (the Rust doctests), run at boot.
if want kunit-builtin; then
	set -- $(dmesg | ktap_count)
	say "kunit (built-in): $1 passed, $2 failed, $3 skipped"
	f=$2
	# The kernel runs its built-in suites at boot (CONFIG_KUNIT_DEFAULT_ENABLED): none means
	# they were not built or not run.
	[ "$1" -gt 0 ] || { say "FAILED: no built-in KUnit case ran"; f=$((f + 1)); }
	echo "kunit-builtin $1 $f $3" >>"$RESULTS"
	[ "$2" = 0 ] || dmesg | grep -E '^[ \t]+not ok|EXPECTATION FAILED|ASSERTION FAILED'
fi

# Layer 2: the module, its KUnit suites (run on load) and clean load/unload.
module_layer() {
p=0 f=0
check() {
	desc=$1; shift
	if "$@"; then p=$((p + 1)); say "ok: $desc"; else f=$((f + 1)); say "FAILED: $desc"; fi
}
mark=$(dmesg | wc -l)
check "modprobe tcmu_rs" modprobe tcmu_rs
set -- $(dmesg_since "$mark" | ktap_count)
say "kunit (tcmu_rs): $1 passed, $2 failed, $3 skipped"
[ "$2" = 0 ] || dmesg_since "$mark" | grep -E '^[ \t]+not ok|EXPECTATION FAILED'
kf=$2
[ "$1" -gt 0 ] || { say "FAILED: no KUnit case ran in tcmu_rs"; kf=$((kf + 1)); }
echo "kunit-module $1 $kf $3" >>"$RESULTS"
check "backend 'user' registered" sh -c 'mkdir /sys/kernel/config/target/core/user_9 && rmdir /sys/kernel/config/target/core/user_9'
# The loser's init fails with EEXIST, which modprobe reports as success ("already
# loaded"): check that the module is absent instead.
check "C module refused while tcmu_rs is loaded" sh -c 'modprobe target_core_user 2>/dev/null; ! test -e /sys/module/target_core_user'
check "rmmod tcmu_rs" rmmod tcmu_rs
check "tcmu_rs gone" sh -c '! test -e /sys/module/tcmu_rs'
check "tcmu_rs reload + unload" sh -c 'modprobe tcmu_rs && rmmod tcmu_rs'
check "modprobe target_core_user" modprobe target_core_user
check "tcmu_rs refused while the C module is loaded" sh -c 'modprobe tcmu_rs 2>/dev/null; ! test -e /sys/module/tcmu_rs'
check "rmmod target_core_user" rmmod target_core_user
echo "module $p $f" >>"$RESULTS"
}
want module && module_layer

# Layer 3: kselftests, once against each module; the binaries' Totals are summed. The debug
# kernel is slow enough that the sd probe pauses for more than the default 300 ms between
# commands: the tests wait for 1 s of quiet there.
QUIET_MS=300
[ -e /sys/kernel/debug/kmemleak ] && QUIET_MS=1000
kselftest() { # module other
	want "kselftest-$1" || return 0
	modprobe "$1" || { echo "kselftest-$1 0 1" >>"$RESULTS"; return; }
	sp=0 sf=0 ss=0
	for t in tcmu_basic tcmu_ring tcmu_fail tcmu_netlink; do
		out=/tmp/kselftest-$1-$t.log
		# The kselftest runner (its timeout from tcmu/settings) prefixes the test's own
		# TAP with "# " and adds an "ok"/"not ok" line for the whole program.
		(cd "$KSELFTEST" && TCMU_MODULE=$1 TCMU_OTHER_MODULE=$2 TCMU_QUIET_MS=$QUIET_MS \
			./run_kselftest.sh -t "tcmu:$t") 2>&1 | sed 's/^# //' | tee "$out"
		grep -q "^ok [0-9]* selftests: tcmu: $t\$" "$out" || {
			say "kselftest runner: tcmu:$t on $1 did not pass"; sf=$((sf + 1)); }
		totals=$(grep '^# Totals:' "$out" | tail -1)
		kp=$(echo "$totals" | sed -n 's/.* pass:\([0-9]*\) .*/\1/p')
		kf=$(echo "$totals" | sed -n 's/.* fail:\([0-9]*\) .*/\1/p')
		ke=$(echo "$totals" | sed -n 's/.* error:\([0-9]*\).*/\1/p')
		[ -n "$kp" ] || { kp=0; kf=1; say "no kselftest totals for $t on $1"; }
		sp=$((sp + kp)) sf=$((sf + ${kf:-0} + ${ke:-0}))
		ks=$(skips_allowed "kselftest-$1" "$out") || sf=$((sf + 1))
		ss=$((ss + ks))
	done
	echo "kselftest-$1 $sp $sf $ss" >>"$RESULTS"
	leakcheck "$1" || echo "kmemleak-kselftest-$1 0 1" >>"$RESULTS"
	rmmod "$1" || echo "kselftest-$1-rmmod 0 1" >>"$RESULTS"
}
kselftest tcmu_rs target_core_user
full && kselftest target_core_user tcmu_rs

# Runs one pass/fail layer: logs to /tmp/NAME.log, shows its tail on failure.
# A layer left out by LAYERS gets an empty log (the greps after it find nothing).
layer() { # name command...
	local name=$1 t; shift
	if ! want "$name"; then
		: >/tmp/$name.log
		return 0
	fi
	t=$(now)
	if "$@" >/tmp/$name.log 2>&1; then
		say "ok: $name ($(($(now) - t)) s)"; echo "$name 1 0" >>"$RESULTS"
	else
		say "FAILED: $name ($(($(now) - t)) s)"; tail -60 /tmp/$name.log; echo "$name 0 1" >>"$RESULTS"
	fi
}

# Layer 4: end to end through tcm_loop with our handler (ram, file, null backstores:
# sd probe, sg3-utils, dd/cmp, fio crc32c verify), against each module.
for m in $MODS; do
	layer e2e-handler-$m env TCMU_MODULE=$m bash /tcmu/handler-smoke.sh
	unload "$m" e2e-handler-$m
done

# Layer 4b: fio verify matrix (4k..1M, iodepth 1 and 64) with our handler on our module.
if full; then
	layer fio-matrix-tcmu_rs bash /tcmu/fio-matrix.sh
	unload tcmu_rs fio-matrix
fi

# Layer 4c: large commands and sizes (hw_max_sectors, data_pages_per_blk, a 5 GiB sparse
# device, a 256 MiB data area and an 8 MiB ring) with fio verify, against each module.
for m in $MODS; do
	layer large-$m env TCMU_MODULE=$m bash /tcmu/large.sh
	grep -E "^(hw_max_sectors=|sparse device)" /tmp/large-$m.log
	unload "$m" large-$m
done

# Layer 4d: a sustained overload of a one-block data area (300000 commands, nearly all of
# them waiting for space in a queue that never empties; none may fail), against each module.
# The debug kernel (kmemleak) runs 50000: it is several times slower.
SOAK_CMDS=300000
[ -e /sys/kernel/debug/kmemleak ] && SOAK_CMDS=50000
for m in $MODS; do
	layer qfull-soak-$m env TCMU_MODULE=$m SOAK_CMDS=$SOAK_CMDS bash /tcmu/qfull-soak.sh
	grep "^qfull soak on" /tmp/qfull-soak-$m.log
	unload "$m" qfull-soak-$m
done

# Layer 5: Debian's tcmu-runner (qcow handler) through tcm_loop, against each module.
for m in $MODS; do
	layer e2e-tcmu-runner-$m env TCMU_MODULE=$m bash /tcmu/runner-e2e.sh
	grep -E "^restart: fio exit" /tmp/e2e-tcmu-runner-$m.log
	unload "$m" e2e-tcmu-runner-$m
done
# ... and against our module built as the drop-in target_core_user, installed where modprobe
# prefers it over the C module: tcmu-runner must log no error at all.
layer e2e-tcmu-runner-dropin bash /tcmu/dropin-e2e.sh
grep -E "^(drop-in|restart: fio exit)" /tmp/e2e-tcmu-runner-dropin.log
unload target_core_user e2e-tcmu-runner-dropin

# Layer 5a: four devices, two handler processes (ours and tcmu-runner), concurrent verified
# I/O under a low global page limit, a fifth device added and removed under load; each module.
for m in $MODS; do
	layer multi-$m env TCMU_MODULE=$m bash /tcmu/multi.sh
	grep -E "^(round|reclaimed|load[0-9])" /tmp/multi-$m.log
	unload "$m" multi-$m
done

# Layer 5b: LIO iSCSI on 127.0.0.1 with open-iscsi in the guest (our handler and
# tcmu-runner behind one target): verify, a filesystem, TMRs, logout/login; each module.
for m in $MODS; do
	layer iscsi-$m env TCMU_MODULE=$m bash /tcmu/iscsi.sh
	grep -E "^(logged in|task management|logout/login)" /tmp/iscsi-$m.log
	unload "$m" iscsi-$m
done

# Layer 5c: the configfs and sysfs interface walked on both modules and compared (every
# difference must be in attr-diff.allow); targetcli saveconfig/clearconfig/restoreconfig of a
# user:qcow backstore served by tcmu-runner, then fio verify, on each module.
if full; then
	layer attr-diff bash /tcmu/attr-diff.sh
	grep "^attr-diff: [0-9]" /tmp/attr-diff.log
	rmmod tcm_loop tcmu_rs target_core_user 2>/dev/null
	# Differential scenarios: the same seeded scenario on both modules, transcripts compared.
	layer diff env DIFF_SEEDS="${DIFF_SEEDS:-1-12}" TCMU_QUIET_MS=$QUIET_MS bash /tcmu/diff.sh
	grep -E "^(diff: |  allowed: |seed .*DIFFERENT)" /tmp/diff.log
	rmmod tcm_loop tcmu_rs target_core_user 2>/dev/null
	for m in $MODS; do
		layer targetcli-e2e-$m env TCMU_MODULE=$m bash /tcmu/targetcli-e2e.sh
		unload "$m" targetcli-e2e-$m
	done
fi

# Layer 6: robustness: create/enable/destroy cycles with a handler attached (kmemleak on the
# debug flavour), teardown under load with the handler stopped or killed, and fio verify while
# the handler is killed and restarted (bounded D state), on each module.
for m in $MODS; do
	layer cycles-$m env TCMU_MODULE=$m CYCLES=${CYCLES:-20} bash /tcmu/cycles.sh
	grep "cycles on" /tmp/cycles-$m.log
	if full; then
		layer teardown-load-$m env TCMU_MODULE=$m bash /tcmu/teardown-load.sh
		grep "teardown under load" /tmp/teardown-load-$m.log
		layer kill-restart-$m env TCMU_MODULE=$m bash /tcmu/kill-restart.sh
		grep -E "^(A|B): fio exit|^B: READ|longest D state" /tmp/kill-restart-$m.log
	fi
	unload "$m" robustness-$m
done

# Layer 6b: module parameters and data-page reclaim (global_max_data_area_mb), tcmu_rs only
# (the C module shows no page counts).
layer reclaim-tcmu_rs bash /tcmu/reclaim.sh
grep -E "^(after fio|global_max|idle over|default limit|rc2 busy|plug:)" /tmp/reclaim-tcmu_rs.log
unload tcmu_rs reclaim

# Layer 7: a hostile handler (tcmu-rs-fuzzer) corrupting the shared memory protocol while fio
# runs, then recovery with our handler and a verified fio. tcmu_rs only: the C module trusts
# the shared memory and may crash under it.
layer fuzz-tcmu_rs env FUZZ_MUTATIONS=${FUZZ_MUTATIONS:-20000} bash /tcmu/fuzz-handler.sh
if want fuzz-tcmu_rs; then
	say "fuzz: $(grep -m1 '^fuzzer: [0-9]* mutations' /tmp/fuzz-tcmu_rs.log)"
	# Where the fuzzer's time went (wait for the kernel, decode, mutations, completions,
	# recoveries; the ring mutations by kind) and its command and completion counts.
	grep -m4 -E '^fuzzer: (time|ring-mutation time|commands|recoveries:)' /tmp/fuzz-tcmu_rs.log | sed 's/^/[guest] fuzz: /' || true
fi
unload tcmu_rs fuzz

cat "$RESULTS"
