#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# End to end with Debian's tcmu-runner (qcow handler, netlink handshake) through tcm_loop:
# fio randrw with crc32c verification, then fio verify across a SIGKILL and restart of the
# runner. TCMU_MODULE selects the module (tcmu_rs by default). RUNNER_STRICT=1: any error in
# the runner's log fails (otherwise its writes to /sys/module/target_core_user/parameters,
# which fail when the module has another name, are let through).
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
D=$CFG/core/user_7/qcow0
WWN=naa.5001405000000071
IMG=/tmp/runner-e2e.qcow2
RPID=

cleanup() {
	set +e
	unexport_lun $WWN q
	rmdir "$CFG/loopback" "$D" "$CFG/core/user_7" 2>/dev/null
	[ -n "$RPID" ] && kill "$RPID" && wait "$RPID" 2>/dev/null
	rm -f "$IMG"
}
trap cleanup EXIT

modprobe "$M"
modprobe tcm_loop
# Preallocated: tcmu-runner's qcow handler needs fallocate, which the guest's tmpfs lacks.
qemu-img create -q -f qcow2 -o preallocation=full "$IMG" 64M
: >/var/log/tcmu-runner.log
tcmu-runner >/tmp/tcmu-runner.out 2>&1 &
RPID=$!
# The runner announces SET_FEATURES at start; give it a moment, more on the debug kernel (seen
# there once, with tcmu_rs: a device created 1 s after the start made the runner log "could
# not open /dev/uio0" and a refused block_dev write, though its I/O then passed).
sleep 1
[ -e /sys/kernel/debug/kmemleak ] && sleep 4
make_user_dev "$D" "dev_config=qcow/$IMG,dev_size=67108864"
export_lun $WWN "$D" q
# The only disk: earlier tests removed theirs.
sd=$(wait_disk) || { echo "no disk from tcmu-runner"; tail -20 /var/log/tcmu-runner.log; exit 1; }
echo "tcmu-runner serves /dev/$sd on $M"
fio --name=runner --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bsrange=4k-256k --size=16M \
	--verify=crc32c --iodepth=16 --ioengine=libaio --direct=1 --output=/tmp/fio-runner.txt
grep -E "err=|READ:|WRITE:" /tmp/fio-runner.txt
grep -q "err= 0" /tmp/fio-runner.txt
ALLOWED="block_netlink\|reset_netlink"
[ "${RUNNER_STRICT:-0}" = 1 ] && ALLOWED='^$'
if grep -E "\[ERROR\]" /var/log/tcmu-runner.log | grep -v "$ALLOWED"; then
	echo "tcmu-runner logged errors"
	exit 1
fi

# A real restart: tcmu-runner is SIGKILLed under a verified fio and started again; on start it
# blocks the device, resets the ring and unblocks it, and serves the same ring. The commands
# the dead runner held complete at the reset and are retried: fio must finish with no error
# and every block verified.
fio --name=restart --filename="/dev/$sd" --allow_file_create=0 --rw=randwrite --bsrange=4k-128k --size=16M \
	--verify=crc32c --verify_fatal=1 --iodepth=16 --ioengine=libaio --direct=1 --loops=8 \
	--output=/tmp/fio-runner-restart.txt &
fpid=$!
# Kill once fio's writes are flowing (not after a fixed time: a fast host may be done by then).
w0=$(awk '{ print $5 }' "/sys/block/$sd/stat")
for i in $(seq 100); do
	[ $(($(awk '{ print $5 }' "/sys/block/$sd/stat") - w0)) -ge 200 ] && break
	sleep 0.05
done
kill -0 "$fpid" 2>/dev/null || { echo "fio ended before the runner was killed"; exit 1; }
kill -KILL "$RPID"
wait "$RPID" 2>/dev/null || true
echo "tcmu-runner killed with fio running"
sleep 1
tcmu-runner >>/tmp/tcmu-runner.out 2>&1 &
RPID=$!
frc=0
wait "$fpid" || frc=$?
echo "restart: fio exit $frc, $(grep -m1 -oE 'err= *[0-9]+' /tmp/fio-runner-restart.txt), $(grep -m1 -E '^ *READ:' /tmp/fio-runner-restart.txt | sed 's/^ *//')"
[ "$frc" = 0 ] && grep -q "err= 0" /tmp/fio-runner-restart.txt || { tail -20 /tmp/fio-runner-restart.txt; echo "fio failed across the runner restart"; exit 1; }
grep -qE '^ *READ: .*io=[1-9]' /tmp/fio-runner-restart.txt || { echo "fio verified nothing"; exit 1; }
if [ "${RUNNER_STRICT:-0}" = 1 ] && grep -E "\[ERROR\]" /var/log/tcmu-runner.log; then
	echo "tcmu-runner logged errors across its restart"
	exit 1
fi
echo "runner-e2e on $M: OK"
