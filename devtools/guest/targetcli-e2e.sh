#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Debian's targetcli (rtslib) with a user:qcow backstore served by Debian's tcmu-runner:
# create (control string and hw_max_sectors at creation), set attributes, export on a
# tcm_loop LUN, saveconfig, clearconfig (everything gone: configfs, UIO, SCSI disk),
# restoreconfig (the attributes and the LUN come back), then fio randrw with crc32c
# verification on the restored LUN, the same storage object exported over LIO iSCSI with
# targetcli and verified through open-iscsi, and a clean teardown. TCMU_MODULE selects the module
# (tcmu_rs by default).
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
WWN=naa.5001405000000041
IMG=/tmp/targetcli-e2e.qcow2
SAVE=/tmp/targetcli-e2e.json
SO=/backstores/user:qcow/tq0
IQN=iqn.2026-12.org.tcmu-rs:targetcli$$
PORTAL=127.0.0.1:3260
RPID= IPID=

cleanup() {
	set +e
	iscsiadm -m node -T "$IQN" -p $PORTAL --logout >/dev/null 2>&1
	[ -n "$IPID" ] && kill "$IPID"
	[ -n "$RPID" ] && targetcli clearconfig confirm=True >/dev/null 2>&1
	[ -n "$RPID" ] && kill "$RPID" && wait "$RPID" 2>/dev/null
	rm -f "$IMG" "$SAVE"
}
trap cleanup EXIT

tc() { echo "+ targetcli $*"; targetcli "$@"; }
fail() { echo "targetcli-e2e on $M: FAILED: $*"; exit 1; }

# so_dir: the configfs directory of the storage object tq0 (targetcli picks the HBA).
so_dir() { ls -d "$CFG"/core/user_*/tq0 2>/dev/null | head -1; }

# expect_attrs DIR: the attributes set at creation and afterwards.
expect_attrs() {
	local d=$1 kv k v got bad=0
	for kv in cmd_time_out=7 qfull_time_out=5 tmr_notification=1 max_data_area_mb=16 \
		data_pages_per_blk=2 hw_max_sectors=256 dev_size=67108864 "dev_config=qcow/$IMG"; do
		k=${kv%%=*} v=${kv#*=}
		got=$(cat "$d/attrib/$k")
		if [ "$got" = "$v" ]; then echo "  $k = $got"; else echo "  $k = $got (expected $v)"; bad=1; fi
	done
	[ "$(cat "$d/enable")" = 1 ] || { echo "  not enabled"; bad=1; }
	return $bad
}

modprobe "$M"
modprobe tcm_loop
[ -e /run/dbus/system_bus_socket ] || fail "no D-Bus system bus (see devtools/guest/init)"
# Preallocated: tcmu-runner's qcow handler needs fallocate, which the guest's tmpfs lacks.
qemu-img create -q -f qcow2 -o preallocation=full "$IMG" 64M
: >/var/log/tcmu-runner.log
tcmu-runner >/tmp/targetcli-runner.out 2>&1 &
RPID=$!
# targetcli finds the user:* backstores on D-Bus once tcmu-runner has registered.
for i in $(seq 20); do
	targetcli ls /backstores 2>/dev/null | grep -q 'user:qcow' && break
	[ "$i" = 20 ] && { cat /tmp/targetcli-runner.out; fail "user:qcow never appeared in targetcli"; }
	sleep 0.5
done

tc "$(dirname $SO)" create name=tq0 size=64M "cfgstring=$IMG" hw_max_sectors=256 \
	control=max_data_area_mb=16,data_pages_per_blk=2
tc $SO set attribute cmd_time_out=7 qfull_time_out=5 tmr_notification=1
snap_disks
tc /loopback create "$WWN"
tc "/loopback/$WWN/luns" create $SO
D=$(so_dir)
[ -n "$D" ] || fail "no configfs directory for tq0"
echo "created $D:"
expect_attrs "$D" || fail "attributes after creation"
sd=$(wait_disk) || fail "no disk after creation"
echo "LUN: /dev/$sd"

tc saveconfig "$SAVE"
python3 - "$SAVE" <<-'EOF' || fail "saved configuration"
	import json, sys
	c = json.load(open(sys.argv[1]))
	so = [s for s in c["storage_objects"] if s["name"] == "tq0"][0]
	a = so["attributes"]
	print("saved:", so["plugin"], so["config"], so["size"], so["control"],
	      {k: a.get(k) for k in ("cmd_time_out", "qfull_time_out", "tmr_notification")})
	assert so["plugin"] == "user" and so["config"].startswith("qcow/")
	assert a["cmd_time_out"] == 7 and a["qfull_time_out"] == 5 and a["tmr_notification"] == 1
	assert "max_data_area_mb=16" in so["control"] and "data_pages_per_blk=2" in so["control"]
	assert so["hw_max_sectors"] == 256
	t = [t for t in c["targets"] if t["wwn"] == "naa.5001405000000041"][0]
	assert t["tpgs"][0]["luns"][0]["storage_object"] == "/backstores/user/tq0"
EOF

tc clearconfig confirm=True
# Everything is gone: storage object, HBA, target, UIO device, SCSI disk.
left=$(ls -d "$CFG"/core/user_* "$CFG"/loopback/naa.* 2>/dev/null || true)
[ -z "$left" ] || fail "left in configfs after clearconfig: $left"
grep -ls '^tcm-user/' /sys/class/uio/uio*/name 2>/dev/null && fail "UIO device left after clearconfig"
for i in $(seq 50); do [ -e "/sys/block/$sd" ] || break; sleep 0.1; done
[ ! -e "/sys/block/$sd" ] || fail "/dev/$sd still there after clearconfig"
echo "cleared: no user backstore, target, UIO device or disk left"

# rtslib writes back every saved attribute after enabling the device; for dev_config,
# dev_size and emulate_write_cache that is a RECONFIG_DEVICE netlink request, which
# tcmu-runner's qcow handler refuses (EOPNOTSUPP) even for the same value, with either
# module. Those are the only "recoverable errors" accepted.
rc=0
snap_disks
tc restoreconfig "$SAVE" >/tmp/targetcli-restore.txt 2>&1 || rc=$?
cat /tmp/targetcli-restore.txt
if [ $rc != 0 ]; then
	grep -q 'recoverable errors' /tmp/targetcli-restore.txt || fail "restoreconfig"
	if grep -v -e '^+ targetcli' -e 'recoverable errors:$' /tmp/targetcli-restore.txt |
		grep -v -E '^Storage Object user/tq0: Cannot set attribute (dev_config|dev_size|emulate_write_cache): \[Errno 95\] Operation not supported, skipped$'; then
		fail "restoreconfig: unexpected errors"
	fi
	echo "(only the handler's refusals of RECONFIG_DEVICE: accepted)"
fi
D=$(so_dir)
[ -n "$D" ] || fail "no configfs directory for tq0 after restoreconfig"
echo "restored $D:"
expect_attrs "$D" || fail "attributes after restoreconfig"
lnk=$(find "$CFG/loopback/$WWN/tpgt_1/lun/lun_0" -maxdepth 1 -type l | head -1)
[ -n "$lnk" ] && [ "$(readlink -f "$lnk")" = "$(readlink -f "$D")" ] || fail "no LUN to tq0 after restoreconfig"
sd=$(wait_disk) || fail "no disk after restoreconfig"
echo "restored LUN: /dev/$sd"

fio --name=targetcli --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bsrange=4k-256k --size=16M \
	--verify=crc32c --iodepth=16 --ioengine=libaio --direct=1 --output=/tmp/fio-targetcli.txt
grep -E "err=|READ:|WRITE:" /tmp/fio-targetcli.txt
grep -q "err= 0" /tmp/fio-targetcli.txt || fail "fio"

# The same storage object over LIO iSCSI, made with targetcli as administrators do (its
# default portal 0.0.0.0:3260), with the kernel initiator: login, verified I/O, logout.
modprobe iscsi_tcp
tc /iscsi create "$IQN"
tc "/iscsi/$IQN/tpg1/luns" create $SO
tc "/iscsi/$IQN/tpg1" set attribute authentication=0 generate_node_acls=1 cache_dynamic_acls=1 \
	demo_mode_write_protect=0
IPID=$(start_iscsid)
iscsiadm -m discovery -t sendtargets -p $PORTAL >/dev/null || fail "iSCSI discovery"
iscsiadm -m node -T "$IQN" -p $PORTAL --login >/dev/null || fail "iSCSI login"
isd=$(iscsi_disk 0) || fail "no disk for the iSCSI LUN"
echo "iSCSI LUN: /dev/$isd"
fio --name=targetcli-iscsi --filename="/dev/$isd" --allow_file_create=0 --rw=randrw --bsrange=4k-256k \
	--size=16M --verify=crc32c --iodepth=16 --ioengine=libaio --direct=1 --output=/tmp/fio-targetcli-iscsi.txt
grep -E "err=|READ:|WRITE:" /tmp/fio-targetcli-iscsi.txt
grep -q "err= 0" /tmp/fio-targetcli-iscsi.txt || fail "fio over iSCSI"
iscsiadm -m node -T "$IQN" -p $PORTAL --logout >/dev/null || fail "iSCSI logout"
iscsiadm -m node -T "$IQN" -p $PORTAL -o delete >/dev/null 2>&1 || true
kill "$IPID"; IPID=

tc clearconfig confirm=True
rmmod iscsi_tcp libiscsi_tcp libiscsi scsi_transport_iscsi 2>/dev/null || true
# clearconfig leaves the fabric's directory, which holds iscsi_target_mod.
rmdir "$CFG/iscsi" 2>/dev/null || true
unload_iscsi_target
kill "$RPID"; wait "$RPID" 2>/dev/null || true
RPID=
if grep -E "\[ERROR\]" /var/log/tcmu-runner.log | grep -v "block_netlink\|reset_netlink"; then
	fail "tcmu-runner logged errors"
fi
# clearconfig leaves the fabric's directory, which holds tcm_loop.
rmdir "$CFG/loopback" 2>/dev/null || true
rmmod tcm_loop
leakcheck "$M"
rmmod "$M"
echo "targetcli-e2e on $M: OK"
