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

run() { # stop|kill (SIGSTOP or SIGKILL of the handler)
	local hpid sd
	served_lun "$M" "$D" "dev_config=ram/load,dev_size=$((32 << 20))" $TMO $WWN \
		/tmp/load-handler.log
	fio --name=load --filename="/dev/$sd" --allow_file_create=0 --rw=randrw --bs=4k --iodepth=32 --ioengine=libaio \
		--direct=1 --time_based --runtime=60 --size=32M >/tmp/load-fio.log 2>&1 &
	local fpid=$!
	sleep 2
	if [ "$1" = stop ]; then kill -STOP "$hpid"; else kill -KILL "$hpid"; fi
	local t0=$(date +%s)
	unexport_lun $WWN l
	rmdir "$D"
	local dt=$(($(date +%s) - t0))
	kill -KILL "$hpid" 2>/dev/null || true
	wait "$hpid" 2>/dev/null || true
	wait "$fpid" 2>/dev/null || true
	echo "teardown under load with the handler $1: ${dt}s"
	[ "$dt" -le $((TMO + 5)) ] || { echo "teardown took too long"; return 1; }
}
run stop
run kill
rmdir "$CFG/loopback" "$CFG/core/user_6"
leakcheck "$M"
rmmod tcm_loop "$M"
echo "teardown-load on $M: OK"
