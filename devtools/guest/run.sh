#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of `make run`: load tcmu_rs, create a `user` device served by our handler
# (tcmu-rs-handler, ram backstore), export it through tcm_loop, and make and use a filesystem
# on the resulting disk with a checksum check. Every step is shown.
set -euo pipefail
CFG=/sys/kernel/config/target
HBA=$CFG/core/user_0
DEV=$HBA/disk0
WWN=naa.5001405000000001
TPG=$CFG/loopback/$WWN/tpgt_1
SIZE=$((128 << 20))
step() { echo "+ $*"; "$@"; }

step modprobe tcmu_rs
step modprobe tcm_loop
step mkdir -p "$DEV"
step sh -c "echo -n dev_config=ram/demo,dev_size=$SIZE > $DEV/control"
step sh -c "echo 1 > $DEV/enable"
step cat "$DEV/info"
step cat /sys/class/uio/uio0/name
/tcmu/tcmu-rs-handler --wait >/tmp/handler.log 2>&1 &
HPID=$!
step mkdir -p "$TPG/lun/lun_0"
step sh -c "echo -n naa.5001405000000002 > $TPG/nexus"
step ln -s "$DEV" "$TPG/lun/lun_0/demo"
sd=
for i in $(seq 100); do
	for d in /sys/block/sd*; do
		if [ -e "$d/size" ] && [ "$(cat "$d/size")" != 0 ]; then sd=${d##*/}; fi
	done
	[ -n "$sd" ] && break
	sleep 0.1
done
[ -n "$sd" ] || { echo "no disk appeared"; exit 1; }
echo "disk: /dev/$sd, $(($(cat /sys/block/$sd/size) * 512)) bytes"
step sg_inq "/dev/$sd"
step mkfs.ext4 -q -F "/dev/$sd"
step mkdir -p /mnt/demo
step mount "/dev/$sd" /mnt/demo
step dd if=/dev/urandom of=/mnt/demo/data bs=1M count=32 status=none
step cp /tcmu/run.sh /mnt/demo/
(cd /mnt/demo && sha256sum data run.sh) >/tmp/sums
cat /tmp/sums
step umount /mnt/demo
echo 3 >/proc/sys/vm/drop_caches
step mount "/dev/$sd" /mnt/demo
(cd /mnt/demo && step sha256sum -c /tmp/sums)
step df -h /mnt/demo
step umount /mnt/demo
step e2fsck -fn "/dev/$sd"
step rm "$TPG/lun/lun_0/demo"
step rmdir "$TPG/lun/lun_0" "$TPG" "$CFG/loopback/$WWN"
step rmdir "$DEV" "$HBA"
kill -TERM "$HPID"; wait "$HPID" || true
step rmdir "$CFG/loopback"
step rmmod tcm_loop tcmu_rs
dmesg | grep -i tcmu_rs || true
echo "run: OK"
