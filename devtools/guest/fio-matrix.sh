#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fio with crc32c verification through tcm_loop and our handler (ram backstore):
# randrw with block sizes 4k..1M at iodepth 1 and 64, then (two CPUs or more) random writes of
# 64k..512k with fio on CPU 0 and the handler on CPU 1 (on tcmu_rs their Data-Out copies are
# handed off to the handler's CPU: the phase fails if none was). TCMU_MODULE selects the module.
# Then, on tcmu_rs, 1 MiB reads at iodepth 16 and 4 MiB ones at iodepth 1 on a 2 MiB data area: the Data-In copies of
# large reads are deferred to a work item, which holds the blocks until it is done, so the
# commands waiting for space (qfull) only move on if that work frees them and wakes the
# handler; the phase fails if it hangs or no copy was deferred.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
D=$CFG/core/user_8/fio0
D2=$CFG/core/user_8/fio1
WWN=naa.5001405000000081
HPID=
cleanup() {
	set +e
	unexport_lun $WWN f
	rmdir "$CFG/loopback" "$D" "$D2" "$CFG/core/user_8" 2>/dev/null
	[ -n "$HPID" ] && kill "$HPID" && wait "$HPID" 2>/dev/null
}
trap cleanup EXIT
modprobe "$M"
modprobe tcm_loop
make_user_dev "$D" "dev_config=ram/fio,dev_size=$((64 << 20))"
/tcmu/tcmu-rs-handler --wait >/tmp/fio-handler.log 2>&1 &
HPID=$!
export_lun $WWN "$D" f
sd=$(wait_disk) || { echo "no disk"; exit 1; }
for qd in 1 64; do
	fio --name=m$qd --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bsrange=4k-1m --size=32M \
		--verify=crc32c --iodepth=$qd --ioengine=libaio --direct=1 --output=/tmp/fio-m$qd.txt
	grep -E "err=" /tmp/fio-m$qd.txt
	grep -q "err= 0" /tmp/fio-m$qd.txt
done
# Large writes with the handler on CPU 1 and fio on CPU 0: tcmu_rs hands the Data-Out copy
# of a write of 64 KiB or more that finds the handler asleep to a work item on the handler's
# CPU (the command waits in the qfull queue meanwhile); verified like the rest.
HANDOFF=0
if [ "$(nproc)" -ge 2 ]; then
	taskset -p -c 1 "$HPID" >/dev/null
	taskset -c 0 fio --name=ho --filename="/dev/$sd" --allow_file_create=0 --rw=randwrite --bsrange=64k-512k \
		--size=32M --verify=crc32c --iodepth=4 --ioengine=libaio --direct=1 --output=/tmp/fio-ho.txt
	grep -E "err=" /tmp/fio-ho.txt
	grep -q "err= 0" /tmp/fio-ho.txt
	HANDOFF=1
fi
stat_of() { sed -n "s/^$2 //p" "$1/attrib/stats"; }
if [ "$M" = tcmu_rs ]; then
	n=$(stat_of "$D" data_in_deferred)
	echo "data_in_deferred $n"
	[ "${n:-0}" -gt 0 ] || { echo "no Data-In copy was deferred"; exit 1; }
	n=$(stat_of "$D" data_out_handed_off)
	echo "data_out_handed_off $n"
	[ "$HANDOFF" = 0 ] || [ "${n:-0}" -gt 0 ] || { echo "no Data-Out copy was handed off"; exit 1; }
	unexport_lun $WWN f
	# The handler (--wait) picks up the new device.
	make_user_dev "$D2" "dev_config=ram/fio1,dev_size=$((16 << 20)),max_data_area_mb=2"
	export_lun $WWN "$D2" f
	sd=$(wait_disk) || { echo "no disk"; exit 1; }
	timeout 120 fio --name=small --filename="/dev/$sd" --allow_file_create=0 --rw=write --bs=1m --size=16M \
		--verify=crc32c --iodepth=16 --ioengine=libaio --direct=1 --output=/tmp/fio-small.txt
	grep -E "err=" /tmp/fio-small.txt
	grep -q "err= 0" /tmp/fio-small.txt
	timeout 120 fio --name=smallr --filename="/dev/$sd" --allow_file_create=0 --rw=read --bs=1m --size=16M \
		--loops=4 --iodepth=16 --ioengine=libaio --direct=1 --output=/tmp/fio-smallr.txt
	grep -E "err=" /tmp/fio-smallr.txt
	grep -q "err= 0" /tmp/fio-smallr.txt
	# One 4 MiB read at a time: 64 commands, of which 32 fit; the others wait while the
	# first ones' copies are deferred, and no new command comes to retry them: only the work
	# that frees the blocks can (else each waits for its qfull timeout).
	timeout 30 fio --name=small4m --filename="/dev/$sd" --allow_file_create=0 --rw=read --bs=4m --size=16M \
		--loops=4 --iodepth=1 --ioengine=libaio --direct=1 --output=/tmp/fio-small4m.txt
	grep -E "err=" /tmp/fio-small4m.txt
	grep -q "err= 0" /tmp/fio-small4m.txt
	grep -E "^(data_in_deferred|data_out_handed_off|qfull_events|data_blocks_used|cmds_inflight) " "$D2/attrib/stats"
	[ "$(stat_of "$D2" data_in_deferred)" -gt 0 ] || { echo "no Data-In copy was deferred"; exit 1; }
	[ "$(stat_of "$D2" qfull_events)" -gt 0 ] || { echo "the data area never filled"; exit 1; }
fi
echo "fio-matrix on $M: OK"
