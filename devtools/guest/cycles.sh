#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Create/enable/destroy a user device CYCLES times with our handler attached to each, then
# unload. Leaks show up in kmemleak (debug flavour) or as a failed rmmod.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
N=${CYCLES:-100}
HBA=/sys/kernel/config/target/core/user_5
modprobe "$M"
/tcmu/tcmu-rs-handler --wait >/tmp/cycles-handler.log 2>&1 &
HPID=$!
mkdir -p "$HBA"
t0=$(date +%s)
for i in $(seq "$N"); do
	d=$HBA/c$i
	mkdir "$d"
	echo -n "dev_config=null/c$i,dev_size=1048576" >"$d/control"
	echo 1 >"$d/enable"
	# Wait until the handler has the device open and its ring mapped (it logs "attached"
	# then); a device it never took fails the test.
	j=0
	until grep -q "attached uio[0-9]* (tcm-user/5/c$i/" /tmp/cycles-handler.log; do
		j=$((j + 1))
		[ "$j" -le 500 ] || { echo "cycle $i: the handler did not attach in 10 s"; exit 1; }
		sleep 0.02
	done
	rmdir "$d"
done
rmdir "$HBA"
secs=$(($(date +%s) - t0))
kill "$HPID"; wait "$HPID" || true
leakcheck "$M"
rmmod "$M"
echo "cycles on $M: $N create/enable/destroy cycles OK ($secs s; kmemleak clean if enabled)"
