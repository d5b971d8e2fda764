#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# A hostile handler against the module: tcmu-rs-fuzzer serves a ram device exported through
# tcm_loop while fio runs on it, and corrupts the shared memory protocol on purpose (bad
# cmd_tail, len_op, cmd_ids, uflags, status, sense, garbage in the mailbox, SIGBUS pages, ...),
# recovering with action/reset_ring. Then the device must work again: our handler takes over,
# reset_ring, and fio with crc32c verification must pass; everything is torn down and the
# modules unload. The kernel log is checked for splats by vm.sh.
#
# Environment: TCMU_MODULE (default tcmu_rs), FUZZ_MUTATIONS (default 20000), FUZZ_TIME
# (seconds of fuzzing at most; default 90, or FUZZ_MUTATIONS/200 if larger), FUZZ_SEED
# (default: random, printed), FUZZ_TICK (the fuzzer's --tick: ms between rounds of ring-level
# mutations, default 5), FUZZ_ARGS (more fuzzer options, e.g. "-vv --only bad-cmd-id"),
# FUZZ_LOG (the fuzzer's log, default /tmp/fuzzer.log; /dev/console to see it live),
# FUZZ_SD_TIMEOUT (SCSI command timeout of the disk in seconds while fuzzing, default 2: below
# cmd_time_out (3), so the SCSI error handler aborts held and lost commands and resets the LUN,
# which exercises TMR notifications and aborts; empty: the kernel's 30), FUZZER and HANDLER (default /tcmu/tcmu-rs-{fuzzer,handler}).
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
N=${FUZZ_MUTATIONS:-20000}
T=${FUZZ_TIME:-$((N / 200 > 90 ? N / 200 : 90))}
SEED=${FUZZ_SEED:-}
FLOG=${FUZZ_LOG:-/tmp/fuzzer.log}
FUZZER=${FUZZER:-/tcmu/tcmu-rs-fuzzer}
HANDLER=${HANDLER:-/tcmu/tcmu-rs-handler}
CFG=/sys/kernel/config/target
HBA=$CFG/core/user_17
D=$HBA/fuzz0
WWN=naa.5001405000000171
TPG=$CFG/loopback/$WWN/tpgt_1
FPID= HPID= IOPID=
t0=$SECONDS

say() { echo "=== fuzz-handler [$((SECONDS - t0)) s]: $*"; }
fail() { say "FAIL: $*"; exit 1; }

# stop PID SIGNAL SECONDS: signal a process, wait for it (SIGKILL after SECONDS); its exit
# status goes to $rc.
stop() {
	local pid=$1 i
	rc=0
	[ -n "$pid" ] || return 0
	kill "-$2" "$pid" 2>/dev/null || true
	for i in $(seq $(($3 * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "pid $pid still running after $3 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
}

cleanup() {
	local status=$?
	set +e
	[ -n "$IOPID" ] && stop "$IOPID" KILL 5
	[ -n "$FPID" ] && stop "$FPID" TERM 10
	[ -n "$HPID" ] && stop "$HPID" TERM 10
	[ -L "$TPG/lun/lun_0/f" ] && rm "$TPG/lun/lun_0/f"
	rmdir "$TPG/lun/lun_0" "$TPG" "$CFG/loopback/$WWN" 2>/dev/null
	rmdir "$D" "$HBA" 2>/dev/null
	rmdir "$CFG/loopback" 2>/dev/null
	# Logs for the host (vm.sh shares its results directory as /out).
	[ -d /out ] && cp /tmp/fuzzer.out /tmp/fuzzer.log /tmp/fuzz-*.txt /tmp/fuzz-*.log /out/ 2>/dev/null
	if [ "$status" != 0 ]; then
		echo "----- fuzzer stdout -----"; cat /tmp/fuzzer.out 2>/dev/null
		echo "----- fuzzer log (last 40 lines) -----"; tail -40 "$FLOG" 2>/dev/null
		echo "----- kernel log (last 30 lines) -----"; dmesg | tail -30
		say "FAILED"
	fi
	exit "$status"
}
trap cleanup EXIT

say "module $M, $N mutations, $T s at most${SEED:+, seed $SEED}"
modprobe "$M"
modprobe tcm_loop
mkdir -p "$D"
echo -n "dev_config=ram/fuzz,dev_size=$((64 << 20))" >"$D/control"
echo 1 >"$D/enable"
# Commands the fuzzer loses or holds fail after 3 s instead of 30.
echo 3 >"$D/attrib/cmd_time_out"
[ -e "$D/attrib/tmr_notification" ] && echo 1 >"$D/attrib/tmr_notification"
uio=$(basename "$(dirname "$(grep -l "tcm-user/17/fuzz0/" /sys/class/uio/uio*/name)")")

# fio's continue_on_error only continues on EIO and EILSEQ by default: every errno a failed
# SCSI command can end as (blk_status_to_errno) must be ignored.
ERRS=5:121:52:95:110:28:67:61:84:12:16:11:19:62:22:6
# The real handler serves the LUN scan (INQUIRY, READ CAPACITY, partition table), so the disk
# shows up sane whatever the fuzzer does later.
"$HANDLER" --dev "$uio" >/tmp/fuzz-handler1.log 2>&1 &
HPID=$!
export_lun $WWN "$D" f || fail "tcm_loop LUN setup"
sd=$(wait_disk) || fail "no disk appeared"
say "disk /dev/$sd on $uio"
udevadm settle 2>/dev/null || sleep 1
stop "$HPID" TERM 10; HPID=
[ "$rc" = 0 ] || fail "handler exited with $rc"

# shellcheck disable=SC2086 # FUZZ_ARGS is a list of options
if [ -n "${FUZZ_SD_TIMEOUT-2}" ]; then
	echo "${FUZZ_SD_TIMEOUT-2}" >"/sys/block/$sd/device/timeout"
fi
"$FUZZER" -v --dev "$uio" --mutations "$N" --time "$T" --settle 60 ${SEED:+--seed "$SEED"} \
	${FUZZ_TICK:+--tick "$FUZZ_TICK"} \
	${FUZZ_ARGS:-} >/tmp/fuzzer.out 2>"$FLOG" &
FPID=$!
fio --name=fuzz --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bsrange=4k-64k --iodepth=16 \
	--ioengine=libaio --direct=1 --verify=0 --continue_on_error=all --ignore_error="$ERRS,$ERRS" \
	--time_based \
	--runtime=$((T + 60)) --numjobs=2 --group_reporting --output=/tmp/fuzz-fio.txt &
IOPID=$!

# Until the fuzzer has used its budget (it then resets the ring and serves correctly).
limit=$((SECONDS + T + 30))
while ! grep -q "^fuzzer: [0-9]* mutations" /tmp/fuzzer.out 2>/dev/null; do
	kill -0 "$FPID" 2>/dev/null || break
	[ "$SECONDS" -lt "$limit" ] || fail "fuzzer still running after $((T + 30)) s"
	sleep 0.5
done
say "fuzzing done"
cat /tmp/fuzzer.out
# A fuzzer that ran out of time (or died) before its budget tested less than it says.
made=$(sed -n 's/^fuzzer: \([0-9]*\) mutations.*/\1/p' /tmp/fuzzer.out | head -1)
[ "${made:-0}" -ge "$N" ] || fail "the fuzzer made ${made:-no} of its $N mutations in $T s"
# fio stops on SIGINT once its in-flight I/O completes (served correctly now).
stop "$IOPID" INT 30; IOPID=
say "fio under fuzzing exited with $rc"
grep -E "err=|io=|IOPS" /tmp/fuzz-fio.txt | head -6 || true
stop "$FPID" TERM 10; FPID=
cat /tmp/fuzzer.out
grep "ANOMALY" "$FLOG" 2>/dev/null | head -20 || true
[ "$rc" = 0 ] || fail "fuzzer exited with $rc"
grep -q "^fuzzer: settled" /tmp/fuzzer.out || fail "fuzzer did not finish cleanly"

# Recovery: the real handler takes over after a ring reset; verified I/O must work.
say "recovery check"
"$HANDLER" --dev "$uio" -v >/tmp/fuzz-handler2.log 2>&1 &
HPID=$!
sleep 0.5
kill -0 "$HPID" 2>/dev/null || { cat /tmp/fuzz-handler2.log; fail "handler did not attach"; }
echo 1 >"$D/action/reset_ring"
[ -b "/dev/$sd" ] || fail "/dev/$sd is gone"
timeout 120 fio --name=verify --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bsrange=4k-128k --size=16M \
	--verify=crc32c --verify_fatal=1 --iodepth=16 --ioengine=libaio --direct=1 \
	--output=/tmp/fuzz-verify.txt || { cat /tmp/fuzz-verify.txt; fail "verify fio failed"; }
grep -E "err=" /tmp/fuzz-verify.txt
grep -q "err= 0" /tmp/fuzz-verify.txt || fail "verify fio reported errors"
stop "$HPID" TERM 10; HPID=
[ "$rc" = 0 ] || { cat /tmp/fuzz-handler2.log; fail "handler exited with $rc"; }

say "teardown"
rm "$TPG/lun/lun_0/f"
rmdir "$TPG/lun/lun_0" "$TPG" "$CFG/loopback/$WWN"
rmdir "$D" "$HBA"
rmdir "$CFG/loopback"
rmmod tcm_loop
leakcheck "$M"
rmmod "$M"
! lsmod | grep -qE "^($M|tcm_loop) " || fail "modules still loaded"
say "PASS: $(grep '^fuzzer: [0-9]* mutations' /tmp/fuzzer.out)"
