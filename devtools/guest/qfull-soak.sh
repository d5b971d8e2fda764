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
hpid=
cleanup() {
	set +e
	unexport_lun $WWN l
	rmdir "$CFG/loopback" "$D" "$CFG/core/user_6" 2>/dev/null
	[ -n "$hpid" ] && kill "$hpid" && wait "$hpid" 2>/dev/null
}
trap cleanup EXIT
served_lun "$M" "$D" "dev_config=ram/soak,dev_size=$((16 << 20)),max_data_area_mb=1,data_pages_per_blk=256" \
	30 $WWN /tmp/soak-handler.log
cnt() { printf '%d' "$(cat /sys/block/$sd/device/$1)"; }
ios=$(cnt iodone_cnt) errs0=$(cnt ioerr_cnt)
t0=$(date +%s)
# 4 KiB random I/O: N of them (N KiB per job), 10 min at most.
# Four jobs, so that the block layer always has a request for a freed SCSI tag: the target
# keeps the LUN's whole queue depth (128) and the waiting queue does not drain.
fio --name=soak --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bs=4k --iodepth=64 \
	--numjobs=4 --group_reporting --ioengine=libaio --direct=1 --io_size=$((N))k \
	--runtime=600 --output=/tmp/fio-soak.txt || {
	tail -30 /tmp/fio-soak.txt
	exit 1
}
grep -E "err=" /tmp/fio-soak.txt
grep -q "err= 0" /tmp/fio-soak.txt
done_ios=$(($(cnt iodone_cnt) - ios))
errs=$(($(cnt ioerr_cnt) - errs0))
echo "qfull soak on $M: $done_ios commands in $(($(date +%s) - t0)) s, $errs failed"
if [ "$M" = tcmu_rs ]; then
	grep -E "^(cmds_submitted|qfull_events|qfull_peak|qfull_slots|data_blocks_max) " "$D/attrib/stats"
	st() { sed -n "s/^$1 //p" "$D/attrib/stats"; }
	[ "$(st qfull_events)" -ge $((N * 9 / 10)) ] || { echo "only $(st qfull_events) commands waited for space"; exit 1; }
	# The queue was long, and its storage stayed bounded by that length.
	[ "$(st qfull_peak)" -ge 100 ] || { echo "at most $(st qfull_peak) commands waited at once"; exit 1; }
	[ "$(st qfull_slots)" -le $((2 * $(st qfull_peak) + 8)) ] ||
		{ echo "$(st qfull_slots) queue slots for at most $(st qfull_peak) waiting commands"; exit 1; }
fi
[ "$done_ios" -ge "$N" ] || { echo "only $done_ios commands completed"; exit 1; }
[ "$errs" = 0 ] || { echo "$errs commands failed"; exit 1; }
fio --name=v --filename="/dev/$sd" --allow_file_create=0 --rw=randwrite --bs=4k --iodepth=128 \
	--ioengine=libaio --direct=1 --size=8M --verify=crc32c --verify_fatal=1 --output=/tmp/fio-soakv.txt
grep -q "err= 0" /tmp/fio-soakv.txt
echo "qfull soak on $M: OK"
