#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Teardown under load: fio runs through tcm_loop while the handler is stopped (SIGSTOP) or
# killed (SIGKILL); removing the LUN and the device must finish within cmd_time_out + 5 s.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
TMO=4
D=$CFG/core/user_6/load
WWN=naa.5001405000000061

# A failed check leaves a stopped handler, fio and the LUN behind: undo them for the layers
# after this one.
CUR_H= CUR_F=
cleanup() {
	set +e
	[ -n "$CUR_H" ] && kill -KILL "$CUR_H" 2>/dev/null
	[ -n "$CUR_F" ] && kill -KILL "$CUR_F" 2>/dev/null
	wait 2>/dev/null
	unexport_lun $WWN l
	rmdir "$D" "$CFG/core/user_6" "$CFG/loopback" 2>/dev/null
}
trap cleanup EXIT

# inflight SD: requests of the disk in flight now (reads + writes).
inflight() {
	local r w
	read -r r w <"/sys/block/$1/inflight"
	echo $((r + w))
}

run() { # stop|kill (SIGSTOP or SIGKILL of the handler)
	local hpid sd fpid t0 dt held frc i
	served_lun "$M" "$D" "dev_config=ram/load,dev_size=$((32 << 20))" $TMO $WWN \
		/tmp/load-handler.log
	fio --name=load --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bs=4k --iodepth=32 --ioengine=libaio \
		--direct=1 --time_based --runtime=60 --size=32M >/tmp/load-fio.log 2>&1 &
	fpid=$!
	CUR_H=$hpid CUR_F=$fpid
	# Until I/O flows (a fixed 2 s was not enough for fio to complete one on the debug kernel).
	for i in $(seq 300); do
		[ "$(awk '{ print $1 + $5 }' "/sys/block/$sd/stat")" -ge 200 ] && break
		sleep 0.1
	done
	if [ "$1" = stop ]; then kill -STOP "$hpid"; else kill -KILL "$hpid"; fi
	# The point is a teardown with commands held by the handler: fio's queue (32) must be
	# in flight and staying there.
	sleep 0.5
	held=$(inflight "$sd")
	echo "teardown under load with the handler $1: $held requests in flight"
	[ "$held" -gt 0 ] || { echo "no I/O in flight when the handler was ${1}ped"; return 1; }
	t0=$(date +%s)
	unexport_lun $WWN l
	rmdir "$D"
	dt=$(($(date +%s) - t0))
	kill -KILL "$hpid" 2>/dev/null || true
	wait "$hpid" 2>/dev/null || true
	# fio must end (its disk is gone) and say so with an error.
	for i in $(seq 300); do
		kill -0 "$fpid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$fpid" 2>/dev/null; then
		kill -KILL "$fpid"
		echo "fio still running 30 s after the teardown"
		return 1
	fi
	frc=0
	wait "$fpid" || frc=$?
	echo "teardown under load with the handler $1: ${dt}s, fio exit $frc: $(grep -m1 'err=' /tmp/load-fio.log)"
	[ "$dt" -le $((TMO + 5)) ] || { echo "teardown took too long"; return 1; }
	grep -qE 'io=[1-9]' /tmp/load-fio.log || { echo "fio did no I/O"; tail -20 /tmp/load-fio.log; return 1; }
	[ "$frc" != 0 ] || { echo "fio ran 60 s without an error: was its disk removed?"; return 1; }
	CUR_H= CUR_F=
}
run stop
run kill
rmdir "$CFG/loopback" "$CFG/core/user_6"
leakcheck "$M"
rmmod tcm_loop "$M"
trap - EXIT
echo "teardown-load on $M: OK"
