#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Sustained overload of a tiny data area: one block of 1 MiB (max_data_area_mb=1,
# data_pages_per_blk=256), so one of fio's 128 4 KiB commands is on the ring at a time and the
# others wait for space: a reap moves one of them, so the queue does not empty. At least SOAK_CMDS commands must pass with no
# failed I/O (a queue that grew by a slot per waiting command ran out of memory after ~10^5:
# every new waiting command then failed), then a verified fio. TCMU_MODULE selects the module.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
N=${SOAK_CMDS:-300000}
D=$CFG/core/user_6/soak
WWN=naa.5001405000000061
HPID=
cleanup() {
	set +e
	unexport_lun $WWN s
	rmdir "$CFG/loopback" "$D" "$CFG/core/user_6" 2>/dev/null
	[ -n "$HPID" ] && kill "$HPID" && wait "$HPID" 2>/dev/null
}
trap cleanup EXIT
modprobe "$M"
modprobe tcm_loop
make_user_dev "$D" "dev_config=ram/soak,dev_size=$((16 << 20)),max_data_area_mb=1,data_pages_per_blk=256"
/tcmu/tcmu-rs-handler --wait >/tmp/soak-handler.log 2>&1 &
HPID=$!
export_lun $WWN "$D" s
sd=$(wait_disk) || { echo "no disk"; exit 1; }
cnt() { printf '%d' "$(cat /sys/block/$sd/device/$1)"; }
ios=$(cnt iodone_cnt) errs0=$(cnt ioerr_cnt)
t0=$(date +%s)
# 4 KiB random I/O at iodepth 128 (hw_queue_depth): N of them, 10 min at most.
fio --name=soak --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bs=4k --iodepth=128 \
	--ioengine=libaio --direct=1 --io_size=$((N * 4))k --runtime=600 --output=/tmp/fio-soak.txt || {
	tail -30 /tmp/fio-soak.txt
	exit 1
}
grep -E "err=" /tmp/fio-soak.txt
grep -q "err= 0" /tmp/fio-soak.txt
done_ios=$(($(cnt iodone_cnt) - ios))
errs=$(($(cnt ioerr_cnt) - errs0))
echo "qfull soak on $M: $done_ios commands in $(($(date +%s) - t0)) s, $errs failed"
if [ "$M" = tcmu_rs ]; then
	grep -E "^(cmds_submitted|qfull_events|data_blocks_max) " "$D/attrib/stats"
	q=$(sed -n 's/^qfull_events //p' "$D/attrib/stats")
	[ "$q" -ge $((N * 9 / 10)) ] || { echo "only $q commands waited for space"; exit 1; }
fi
[ "$done_ios" -ge "$N" ] || { echo "only $done_ios commands completed"; exit 1; }
[ "$errs" = 0 ] || { echo "$errs commands failed"; exit 1; }
fio --name=v --filename="/dev/$sd" --allow_file_create=0 --rw=randwrite --bs=4k --iodepth=128 \
	--ioengine=libaio --direct=1 --size=8M --verify=crc32c --verify_fatal=1 --output=/tmp/fio-soakv.txt
grep -q "err= 0" /tmp/fio-soakv.txt
echo "qfull soak on $M: OK"
