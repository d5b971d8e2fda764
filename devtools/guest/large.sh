#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Large commands and sizes, with fio crc32c verify through tcm_loop and our handler, on
# TCMU_MODULE (both modules run it):
#   - hw_max_sectors 1024 and 8192 with max_data_area_mb 256 and cmd_ring_size_mb 8: the
#     disk's queue is opened to the device's limit and 1 MiB fio requests must reach the
#     module whole (average request size from /sys/block/sdX/stat above 64 KiB, the default
#     hw_max_sectors; tcm_loop itself caps a command at 256 pages);
#   - data_pages_per_blk 1, 4, 16 and 256, each with I/O of 4 KiB to 1 MiB;
#   - a 5 GiB device on a sparse file: verified writes scattered over all of it, and at its
#     last megabyte.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
D=$CFG/core/user_10/large
WWN=naa.5001405000000101
IMG=/tmp/large.img
hpid=
rc=0
fail() { echo "FAIL: $*"; rc=1; }
cleanup() {
	set +e
	unexport_lun $WWN l
	rmdir "$D" "$CFG/core/user_10" "$CFG/loopback" 2>/dev/null
	[ -n "$hpid" ] && kill "$hpid" 2>/dev/null && wait "$hpid" 2>/dev/null
	rm -f "$IMG"
}
trap cleanup EXIT

# setup CONTROL: a fresh device with CONTROL (and its handler), exported; its disk in $sd.
setup() {
	served_lun "$M" "$D" "$1" 30 $WWN /tmp/large-handler.log || { echo "setup of $1 failed"; return 1; }
	echo "device: $1 -> /dev/$sd (max_hw_sectors_kb $(cat /sys/block/$sd/queue/max_hw_sectors_kb))"
}
teardown() {
	unexport_lun $WWN l
	rmdir "$D"
	kill "$hpid" 2>/dev/null && wait "$hpid" 2>/dev/null
	hpid=
}
# verify NAME FIO-ARGS...: fio crc32c verify on $sd; fails the layer on any error.
verify() {
	local name=$1
	shift
	if fio --name="$name" --filename="/dev/$sd" --allow_file_create=0 --ioengine=libaio --direct=1 \
		--verify=crc32c --verify_fatal=1 "$@" --output=/tmp/large-$name.txt; then
		echo "$name: $(grep -m1 -oE 'err= *[0-9]+' /tmp/large-$name.txt), $(grep -m1 -E '^ *WRITE:' /tmp/large-$name.txt | sed 's/^ *//')"
		grep -q "err= 0" /tmp/large-$name.txt || fail "$name: fio reported errors"
	else
		tail -20 /tmp/large-$name.txt
		fail "$name: fio verify failed"
	fi
}
# avg_kib: average size in KiB of the disk's completed requests (reads and writes).
avg_kib() {
	local s
	read -ra s <"/sys/block/$sd/stat"
	local ios=$((s[0] + s[4])) sectors=$((s[2] + s[6]))
	echo $((ios ? sectors / 2 / ios : 0))
}

for hms in 1024 8192; do
	setup "dev_config=ram/large,dev_size=$((64 << 20)),hw_max_sectors=$hms,max_data_area_mb=256,cmd_ring_size_mb=8" || exit 1
	want=$((hms / 2))
	hw=$(cat "/sys/block/$sd/queue/max_hw_sectors_kb")
	[ "$hw" -ge $((want < 1024 ? want : 1024)) ] || fail "hw_max_sectors=$hms: the disk allows $hw KiB"
	cat "/sys/block/$sd/queue/max_hw_sectors_kb" >"/sys/block/$sd/queue/max_sectors_kb"
	verify big$hms --rw=write --bs=1M --iodepth=8 --size=48M
	avg=$(avg_kib)
	echo "hw_max_sectors=$hms: average request $avg KiB (max_sectors_kb $(cat /sys/block/$sd/queue/max_sectors_kb))"
	# Most requests must be as large as the device allows (up to tcm_loop's 1 MiB).
	[ "$avg" -gt $(((want < 1024 ? want : 1024) * 3 / 4)) ] ||
		fail "hw_max_sectors=$hms: requests of $avg KiB on average for 1 MiB writes"
	teardown
done

for dpb in 1 4 16 256; do
	setup "dev_config=ram/large,dev_size=$((64 << 20)),data_pages_per_blk=$dpb,max_data_area_mb=64" || exit 1
	verify dpb$dpb --rw=randrw --bsrange=4k-1m --iodepth=16 --size=32M
	teardown
done

truncate -s 5G "$IMG"
setup "dev_config=file/$IMG,dev_size=$((5 << 30)),hw_max_sectors=1024" || exit 1
bytes=$(($(cat "/sys/block/$sd/size") * 512))
echo "sparse device: $bytes bytes"
[ "$bytes" = $((5 << 30)) ] || fail "the disk has $bytes bytes, not 5 GiB"
verify sparse --rw=randwrite --bsrange=4k-256k --iodepth=16 --size=5G --io_size=48M
verify sparse-end --rw=write --bs=64k --iodepth=4 --offset=$(((5 << 30) - (1 << 20))) --size=1M
teardown
rm -f "$IMG"

rmdir "$CFG/core/user_10" "$CFG/loopback" 2>/dev/null || true
leakcheck "$M" || rc=1
rmmod tcm_loop "$M" || fail "rmmod"
trap - EXIT
[ $rc = 0 ] && echo "large on $M: OK"
exit $rc
