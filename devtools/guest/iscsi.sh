#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# LIO iSCSI, the deployment most users run: user devices on TCMU_MODULE exported through
# iscsi_target_mod on 127.0.0.1:3260, created with configfs as an administrator's script
# does (target, TPG, LUNs, portal, demo-mode ACLs, enable), and a real initiator in the same
# guest (open-iscsi: iscsid, iscsiadm, the kernel's iscsi_tcp). LUN 0 is a ram device served
# by tcmu-rs-handler, LUN 1 a qcow device served by tcmu-runner. On them:
#   - fio crc32c verify on both LUNs at once;
#   - a filesystem round trip on LUN 0 (mkfs, files, unmount, checksums after a remount);
#   - task management: with the handler stopped and writes held, a LUN RESET (sg_reset -d)
#     goes over iSCSI to the target and reaches the handler as a TMR notification naming the
#     held commands (tmr_notification=1); the handler resumes, everything completes, and
#     verified I/O works after;
#   - logout and login again: what was written before reads back the same.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
HBA=$CFG/core/user_12
IQN=iqn.2026-12.org.tcmu-rs:target$$
TPG=$CFG/iscsi/$IQN/tpgt_1
PORTAL=127.0.0.1:3260
IMG=/tmp/iscsi-q.qcow2
HPID= RPID= IPID=
rc=0
fail() { echo "FAIL: $*"; rc=1; }
step() { echo "+ $*"; "$@"; }

cleanup() {
	set +e
	umount /mnt/iscsi 2>/dev/null
	[ -n "$HPID" ] && kill -CONT "$HPID" 2>/dev/null
	iscsiadm -m node -T "$IQN" -p $PORTAL --logout >/dev/null 2>&1
	iscsiadm -m node -T "$IQN" -p $PORTAL -o delete >/dev/null 2>&1
	[ -n "$IPID" ] && kill "$IPID" && wait "$IPID" 2>/dev/null
	echo 0 >"$TPG/enable" 2>/dev/null
	rm -f "$TPG"/lun/lun_*/dev 2>/dev/null
	rmdir "$TPG"/lun/lun_* "$TPG/np/$PORTAL" "$TPG" "$CFG/iscsi/$IQN" 2>/dev/null
	rmdir "$HBA/r0" "$HBA/q0" "$HBA" 2>/dev/null
	[ -n "$HPID" ] && kill "$HPID" && wait "$HPID" 2>/dev/null
	[ -n "$RPID" ] && kill "$RPID" && wait "$RPID" 2>/dev/null
	rmdir "$CFG/iscsi" 2>/dev/null
	rm -f "$IMG"
}
trap cleanup EXIT

fio_verify() { # disk name extra...
	local sd=$1 name=$2
	shift 2
	fio --name="$name" --filename="/dev/$sd" --allow_file_create=0 --ioengine=libaio --direct=1 \
		--verify=crc32c --verify_fatal=1 --iodepth=16 "$@" --output="/tmp/iscsi-$name.txt" ||
		{ tail -20 "/tmp/iscsi-$name.txt"; return 1; }
	echo "$name: $(grep -m1 -oE 'err= *[0-9]+' "/tmp/iscsi-$name.txt")"
	grep -q "err= 0" "/tmp/iscsi-$name.txt"
}
login() {
	step iscsiadm -m discovery -t sendtargets -p $PORTAL >/dev/null
	step iscsiadm -m node -T "$IQN" -p $PORTAL --login >/dev/null
	sd0=$(iscsi_disk 0) || { echo "no disk for LUN 0"; return 1; }
	sd1=$(iscsi_disk 1) || { echo "no disk for LUN 1"; return 1; }
	echo "logged in: LUN 0 /dev/$sd0, LUN 1 /dev/$sd1"
}

step modprobe "$M"
step modprobe iscsi_target_mod
step modprobe iscsi_tcp

# The backstores: ram for our handler (no netlink reply: tcmu-runner would refuse it), qcow
# for tcmu-runner.
qemu-img create -q -f qcow2 -o preallocation=full "$IMG" 64M
: >/var/log/tcmu-runner.log
tcmu-runner >/tmp/iscsi-runner.out 2>&1 &
RPID=$!
/tcmu/tcmu-rs-handler -v --wait >/tmp/iscsi-handler.log 2>&1 &
HPID=$!
sleep 1
[ -e /sys/kernel/debug/kmemleak ] && sleep 4
step make_user_dev "$HBA/r0" "dev_config=ram/r0,dev_size=$((128 << 20)),nl_reply_supported=-1"
echo 8 >"$HBA/r0/attrib/cmd_time_out"
echo 1 >"$HBA/r0/attrib/tmr_notification"
step make_user_dev "$HBA/q0" "dev_config=qcow/$IMG,dev_size=$((64 << 20))"

# The target, as configfs scripts do it.
step mkdir -p "$TPG/lun/lun_0" "$TPG/lun/lun_1"
step ln -s "$HBA/r0" "$TPG/lun/lun_0/dev"
step ln -s "$HBA/q0" "$TPG/lun/lun_1/dev"
step mkdir "$TPG/np/$PORTAL"
echo 0 >"$TPG/attrib/authentication"
echo 1 >"$TPG/attrib/generate_node_acls"
echo 1 >"$TPG/attrib/cache_dynamic_acls"
echo 0 >"$TPG/attrib/demo_mode_write_protect"
step sh -c "echo 1 >$TPG/enable"

# The initiator.
IPID=$(start_iscsid)
login || exit 1

# Verified I/O on both LUNs at once.
fio_verify "$sd0" both0 --rw=randrw --bsrange=4k-256k --size=32M &
f0=$!
fio_verify "$sd1" both1 --rw=randrw --bsrange=4k-256k --size=16M || fail "fio verify on LUN 1 (tcmu-runner)"
wait $f0 || fail "fio verify on LUN 0 (tcmu-rs-handler)"

# A filesystem round trip on LUN 0.
step mkfs.ext4 -q -F "/dev/$sd0"
mkdir -p /mnt/iscsi
step mount "/dev/$sd0" /mnt/iscsi
dd if=/dev/urandom of=/mnt/iscsi/data bs=1M count=16 status=none
cp /tcmu/iscsi.sh /mnt/iscsi/
(cd /mnt/iscsi && sha256sum data iscsi.sh) >/tmp/iscsi-sums
step umount /mnt/iscsi
echo 3 >/proc/sys/vm/drop_caches
step mount "/dev/$sd0" /mnt/iscsi
(cd /mnt/iscsi && sha256sum -c /tmp/iscsi-sums) || fail "checksums after the remount"
step umount /mnt/iscsi
e2fsck -fn "/dev/$sd0" >/dev/null 2>&1 || fail "e2fsck"

# Task management over iSCSI while the handler holds writes.
kill -STOP "$HPID"
dd if=/dev/urandom of=/tmp/iscsi-block bs=64k count=16 status=none
dd if=/tmp/iscsi-block of="/dev/$sd0" bs=64k oflag=direct seek=100 2>/tmp/iscsi-dd.err &
ddpid=$!
sleep 2
t0=$(date +%s)
sg_reset -d "/dev/$sd0" >/tmp/iscsi-reset.log 2>&1 &
rpid=$!
sleep 2
kill -CONT "$HPID"
reset_rc=0
wait $rpid || reset_rc=$?
dd_rc=0
wait $ddpid || dd_rc=$?
echo "task management: LUN RESET exit $reset_rc after $(($(date +%s) - t0)) s; held dd exit $dd_rc"
tmr=$(grep -m1 "TMR" /tmp/iscsi-handler.log || true)
echo "task management: the handler saw: ${tmr:-nothing}"
[ -n "$tmr" ] || fail "the LUN RESET did not reach the handler as a TMR notification"
# The disk may have been offlined by a failed recovery: then the test fails here.
[ "$(cat "/sys/block/$sd0/device/state")" = running ] || fail "LUN 0 is $(cat "/sys/block/$sd0/device/state") after the TMRs"
fio_verify "$sd0" after-tmr --rw=randrw --bsrange=4k-128k --size=16M || fail "verified I/O after the TMRs"

# Logout and login: data written before reads back the same.
dd if=/tmp/iscsi-block of="/dev/$sd0" bs=64k oflag=direct seek=300 status=none
dd if=/tmp/iscsi-block of="/dev/$sd1" bs=64k oflag=direct seek=300 status=none
step iscsiadm -m node -T "$IQN" -p $PORTAL --logout >/dev/null
for i in $(seq 100); do
	[ -z "$(ls /sys/class/iscsi_session 2>/dev/null)" ] && break
	sleep 0.1
done
login || exit 1
for sd in "$sd0" "$sd1"; do
	dd if="/dev/$sd" of=/tmp/iscsi-back bs=64k iflag=direct skip=300 count=16 status=none
	cmp -s /tmp/iscsi-block /tmp/iscsi-back || fail "/dev/$sd: data written before the logout differs after the login"
done
echo "logout/login: data intact on both LUNs"

step iscsiadm -m node -T "$IQN" -p $PORTAL --logout >/dev/null
iscsiadm -m node -T "$IQN" -p $PORTAL -o delete >/dev/null 2>&1 || true
kill "$IPID"; wait "$IPID" 2>/dev/null || true; IPID=
echo 0 >"$TPG/enable"
rm "$TPG/lun/lun_0/dev" "$TPG/lun/lun_1/dev"
rmdir "$TPG/lun/lun_0" "$TPG/lun/lun_1" "$TPG/np/$PORTAL" "$TPG" "$CFG/iscsi/$IQN"
rmdir "$HBA/r0" "$HBA/q0" "$HBA"
kill "$HPID" "$RPID"; wait "$HPID" "$RPID" 2>/dev/null || true; HPID= RPID=
rmdir "$CFG/iscsi" 2>/dev/null || true
rmmod iscsi_tcp libiscsi_tcp libiscsi scsi_transport_iscsi 2>/dev/null || true
unload_iscsi_target
leakcheck "$M" || rc=1
rmmod "$M" || fail "rmmod $M"
trap - EXIT
rm -f "$IMG"
[ $rc = 0 ] && echo "iscsi on $M: OK"
exit $rc
