#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fio with crc32c verification through tcm_loop and our handler (ram backstore):
# randrw with block sizes 4k..1M at iodepth 1 and 64. TCMU_MODULE selects the module.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
D=$CFG/core/user_8/fio0
WWN=naa.5001405000000081
HPID=
cleanup() {
	set +e
	unexport_lun $WWN f
	rmdir "$CFG/loopback" "$D" "$CFG/core/user_8" 2>/dev/null
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
echo "fio-matrix on $M: OK"
