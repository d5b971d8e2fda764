#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fio with crc32c verification through tcm_loop and our handler (ram backstore):
# randrw with block sizes 4k..1M at iodepth 1 and 64. TCMU_MODULE selects the module.
set -euo pipefail
M=${TCMU_MODULE:-tcmu_rs}
CFG=/sys/kernel/config/target
D=$CFG/core/user_8/fio0
WWN=naa.5001405000000081
TPG=$CFG/loopback/$WWN/tpgt_1
HPID=
cleanup() {
	set +e
	[ -L "$TPG/lun/lun_0/f" ] && rm "$TPG/lun/lun_0/f"
	rmdir "$TPG/lun/lun_0" "$TPG" "$CFG/loopback/$WWN" "$CFG/loopback" 2>/dev/null
	rmdir "$D" "$CFG/core/user_8" 2>/dev/null
	[ -n "$HPID" ] && kill "$HPID" && wait "$HPID" 2>/dev/null
}
trap cleanup EXIT
modprobe "$M"
modprobe tcm_loop
mkdir -p "$D"
echo -n "dev_config=ram/fio,dev_size=$((64 << 20))" >"$D/control"
echo 1 >"$D/enable"
/tcmu/tcmu-rs-handler --wait >/tmp/fio-handler.log 2>&1 &
HPID=$!
mkdir -p "$TPG/lun/lun_0"
echo -n naa.5001405000000082 >"$TPG/nexus"
ln -s "$D" "$TPG/lun/lun_0/f"
sd=
for i in $(seq 100); do
	for b in /sys/block/sd*; do
		[ -e "$b/size" ] && [ "$(cat "$b/size")" != 0 ] && sd=${b##*/}
	done
	[ -n "$sd" ] && break
	sleep 0.1
done
[ -n "$sd" ] || { echo "no disk"; exit 1; }
for qd in 1 64; do
	fio --name=m$qd --filename="/dev/$sd" --rw=randrw --bsrange=4k-1m --size=32M \
		--verify=crc32c --iodepth=$qd --ioengine=libaio --direct=1 --output=/tmp/fio-m$qd.txt
	grep -E "err=" /tmp/fio-m$qd.txt
	grep -q "err= 0" /tmp/fio-m$qd.txt
done
echo "fio-matrix on $M: OK"
