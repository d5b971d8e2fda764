#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Several devices at once, on TCMU_MODULE (both modules run it): four devices served by two
# handler processes (two ram devices by tcmu-rs-handler, two qcow devices by Debian's
# tcmu-runner), each on its own tcm_loop target, all under fio crc32c verify at the same
# time, with global_max_data_area_mb low enough (8 MiB for four areas of 8 MiB) that reclaim
# runs across the devices during the load; meanwhile a fifth device is created, used (fio
# verify) and removed twice. Every fio must pass; on tcmu_rs the devices' attrib/stats must
# show pages taken by reclaim, and the global count must be back under the limit when idle.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
P=/sys/module/$M/parameters
HBA=$CFG/core/user_11
LIMIT_MB=8
RPID= HPID=
declare -A SD=()
rc=0
fail() { echo "FAIL: $*"; rc=1; }
wwn() { printf 'naa.50014050000011%x0' "$1"; }

cleanup() {
	set +e
	local i
	jobs -p | xargs -r kill 2>/dev/null
	for i in 0 1 2 3 4; do
		unexport_lun "$(wwn $i)" l
	done
	rmdir "$HBA"/r* "$HBA"/q* "$HBA" "$CFG/loopback" 2>/dev/null
	[ -n "$HPID" ] && kill "$HPID" && wait "$HPID" 2>/dev/null
	[ -n "$RPID" ] && kill "$RPID" && wait "$RPID" 2>/dev/null
	[ -e "$P/global_max_data_area_mb" ] && echo 2048 >"$P/global_max_data_area_mb"
	rm -f /tmp/multi-*.qcow2
}
trap cleanup EXIT

# add I NAME DEV_CONFIG: device I (HBA user_11), exported on its own target; its disk in SD[I].
# tcmu-runner asks for netlink replies (SET_FEATURES, for every device) and refuses the ram
# devices it has no handler for: those are created with nl_reply_supported=-1, as a
# deployment with a second handler must.
add() {
	local nl=
	[ "${3%%/*}" = ram ] && nl=,nl_reply_supported=-1
	make_user_dev "$HBA/$2" "dev_config=$3,dev_size=$((64 << 20)),max_data_area_mb=$LIMIT_MB$nl" || return 1
	export_lun "$(wwn "$1")" "$HBA/$2" l || return 1
	SD[$1]=$(wait_disk) || { echo "no disk for $2"; return 1; }
	echo "device $2 ($3): /dev/${SD[$1]}"
}
# fio_verify I NAME EXTRA...: verified random I/O on device I (log /tmp/multi-NAME.txt).
fio_verify() {
	local i=$1 name=$2
	shift 2
	fio --name="$name" --filename="/dev/${SD[$i]}" --allow_file_create=0 --rw=randrw --bsrange=4k-256k \
		--iodepth=16 --ioengine=libaio --direct=1 --verify=crc32c --verify_fatal=1 "$@" \
		--output="/tmp/multi-$name.txt"
}
stat_sum() { # field: summed over the devices that show attrib/stats
	local f s=0 v
	for f in "$HBA"/*/attrib/stats; do
		[ -r "$f" ] || continue
		v=$(sed -n "s/^$1 //p" "$f")
		s=$((s + ${v:-0}))
	done
	echo $s
}

modprobe "$M"
modprobe tcm_loop
echo $LIMIT_MB >"$P/global_max_data_area_mb"
# Preallocated: tcmu-runner's qcow handler needs fallocate, which the guest's tmpfs lacks.
qemu-img create -q -f qcow2 -o preallocation=full /tmp/multi-q0.qcow2 64M
qemu-img create -q -f qcow2 -o preallocation=full /tmp/multi-q1.qcow2 64M
: >/var/log/tcmu-runner.log
tcmu-runner >/tmp/multi-runner.out 2>&1 &
RPID=$!
/tcmu/tcmu-rs-handler --wait >/tmp/multi-handler.log 2>&1 &
HPID=$!
sleep 1
[ -e /sys/kernel/debug/kmemleak ] && sleep 4
add 0 r0 ram/r0
add 1 r1 ram/r1
add 2 q0 qcow//tmp/multi-q0.qcow2
add 3 q1 qcow//tmp/multi-q1.qcow2

declare -A FPID=()
for i in 0 1 2 3; do
	fio_verify $i load$i --size=48M --loops=2 &
	FPID[$i]=$!
done
# A fifth device comes and goes twice while the four carry I/O.
for round in 1 2; do
	sleep 2
	add 4 r4 ram/r4 || { fail "adding a device under load (round $round)"; break; }
	fio_verify 4 extra$round --size=8M || fail "fio on the added device (round $round)"
	unexport_lun "$(wwn 4)" l
	rmdir "$HBA/r4" || fail "removing the added device (round $round)"
	echo "round $round: added, used and removed r4 while the others ran"
done
for i in 0 1 2 3; do
	if wait "${FPID[$i]}"; then
		echo "load$i: $(grep -m1 -oE 'err= *[0-9]+' /tmp/multi-load$i.txt)"
	else
		tail -20 "/tmp/multi-load$i.txt"
		fail "fio verify on device $i"
	fi
done

if [ "$M" = tcmu_rs ]; then
	reclaimed=$(stat_sum data_pages_reclaimed)
	echo "reclaimed under load: $reclaimed pages; global $(stat_sum data_pages) pages held, limit $((LIMIT_MB * 256))"
	[ "$reclaimed" -gt 0 ] || fail "no page was reclaimed with four busy devices over a $LIMIT_MB MiB limit"
	for i in $(seq 50); do
		[ "$(stat_sum data_pages)" -le $((LIMIT_MB * 256)) ] && break
		sleep 0.1
	done
	[ "$(stat_sum data_pages)" -le $((LIMIT_MB * 256)) ] || fail "idle devices hold $(stat_sum data_pages) pages over the limit"
fi
# The runner hears of every device's addition and removal and says so for the ones it does
# not serve (the ram devices).
if grep -E "\[ERROR\]" /var/log/tcmu-runner.log |
	grep -v "block_netlink\|reset_netlink\|device_remove:.*not found\|device_add:.*could not find handler"; then
	fail "tcmu-runner logged errors"
fi

for i in 0 1 2 3; do
	unexport_lun "$(wwn $i)" l
done
rmdir "$HBA/r0" "$HBA/r1" "$HBA/q0" "$HBA/q1" "$HBA" "$CFG/loopback"
kill "$HPID" "$RPID"
wait "$HPID" "$RPID" 2>/dev/null || true
HPID= RPID=
echo 2048 >"$P/global_max_data_area_mb"
leakcheck "$M" || rc=1
rmmod tcm_loop "$M" || fail "rmmod"
[ $rc = 0 ] && echo "multi on $M: OK"
exit $rc
