#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# fio --verify while the handler is killed (SIGKILL) and restarted, as tcmu-runner restarts
# (block_dev 1, reset_ring 1, block_dev 0, then serve the same ring again):
#   A. quick restarts (three kills, each restarted within 1 s): fio must finish with no error
#      and every block verified (the commands the dead handler held complete with BUSY at the
#      reset; the midlayer retries them on the new handler);
#   B. a late restart (after cmd_time_out + 2 s): fio may see I/O errors (the held commands
#      timed out; it goes on and leaves the failed writes out of its verification), but its
#      verify pass must run and find no mismatch, and a fresh verified fio passes afterwards.
# Throughout, no task stays in D state longer than cmd_time_out + 5 s.
set -euo pipefail
. /tcmu/lib.sh
M=${TCMU_MODULE:-tcmu_rs}
TMO=4
D=$CFG/core/user_8/kr
WWN=naa.5001405000000081
IMG=/tmp/kr.img
SIZE=$((32 << 20))
rm -f /tmp/kr-dmon.stop /tmp/kr-dmax

# dmon: records the longest continuous D state of any task (centiseconds, task) in /tmp/kr-dmax.
dmon() {
	declare -A since=() seen=()
	local max=0 who=- up now pid st line f d
	while [ ! -e /tmp/kr-dmon.stop ]; do
		read -r up _ </proc/uptime
		now=$((10#${up/./}))
		seen=()
		for f in /proc/[0-9]*/stat; do
			read -r line 2>/dev/null <"$f" || continue
			st=${line##*) }
			st=${st%% *}
			[ "$st" = D ] || continue
			pid=${f#/proc/}
			pid=${pid%/stat}
			seen[$pid]=1
			[ -n "${since[$pid]:-}" ] || since[$pid]=$now
			d=$((now - since[$pid]))
			if [ $d -gt $max ]; then
				max=$d
				who=${line#* (}
				who="$pid ${who%%)*}"
			fi
		done
		for pid in "${!since[@]}"; do
			[ -n "${seen[$pid]:-}" ] || unset "since[$pid]"
		done
		echo "$max $who" >/tmp/kr-dmax
		sleep 0.2
	done
}

kill_handler() {
	kill -KILL "$hpid" 2>/dev/null || true
	wait "$hpid" 2>/dev/null || true
}
# restart: what tcmu-runner does when it starts on an existing device.
restart_handler() {
	echo 1 >"$D/action/block_dev"
	echo 1 >"$D/action/reset_ring"
	echo 0 >"$D/action/block_dev"
	start_handler /tmp/kr-handler.log
}

fio_verify() { # name log extra-args...
	local name=$1 log=$2
	shift 2
	fio --name="$name" --filename="/dev/$sd" --allow_file_create=0 --rw=randwrite --bsrange=4k-64k --iodepth=16 \
		--ioengine=libaio --direct=1 --size=$SIZE --verify=crc32c --verify_fatal=1 \
		--randrepeat=0 "$@" >"$log" 2>&1
}

truncate -s $SIZE "$IMG"
served_lun "$M" "$D" "dev_config=file/$IMG,dev_size=$SIZE" $TMO $WWN /tmp/kr-handler.log
dmon &
mpid=$!
rc=0

# A: quick restarts.
# Four loops and a kill every second: on a fast machine two loops took under 3 s, and the
# first kill (at 3 s) came after fio had finished.
fio_verify quick /tmp/kr-fio-a.log --loops=4 &
fpid=$!
kills=0
for i in 1 2 3; do
	sleep 1
	kill -0 "$fpid" 2>/dev/null || break
	kill_handler
	sleep 0.5
	restart_handler
	kills=$i
	echo "A: handler killed and restarted ($i)"
done
arc=0
wait "$fpid" || arc=$?
echo "A: fio exit $arc: $(grep -E 'err=' /tmp/kr-fio-a.log | head -1)"
if [ $arc != 0 ] || grep -qiE 'verify|err= *[1-9]' /tmp/kr-fio-a.log; then
	echo "A: fio failed with quick restarts"
	tail -30 /tmp/kr-fio-a.log
	rc=1
fi
[ $kills -ge 1 ] || { echo "A: fio ended before the first kill"; rc=1; }

# B: a late restart. Every errno a failed SCSI command can end as (blk_status_to_errno) is
# ignored, so fio writes on and then verifies what it wrote successfully (fio drops a write
# that failed from its verify list).
ERRS=5:121:52:95:110:28:67:61:84:12:16:11:19:62:22:6
fio_verify late /tmp/kr-fio-b.log --loops=2 --continue_on_error=all --ignore_error="$ERRS,$ERRS" &
fpid=$!
sleep 3
kill -0 "$fpid" 2>/dev/null || { echo "B: fio ended before the handler was killed"; rc=1; }
kill_handler
echo "B: handler killed"
# A synchronous direct read waits in D state until its command times out: it shows the
# monitor sees D states (and bounds them).
dd if="/dev/$sd" of=/dev/null bs=4k count=1 skip=7 iflag=direct 2>/dev/null &
ddpid=$!
sleep $((TMO + 2))
ddok=0
if wait "$ddpid"; then
	ddok=1
	echo "B: dd while the handler was gone succeeded (it never waited for a timeout; handler pid $hpid alive: $(kill -0 "$hpid" 2>/dev/null && echo yes || echo no))"
else
	echo "B: dd while the handler was gone failed (timed out)"
fi
restart_handler
echo "B: handler restarted after $((TMO + 2)) s"
brc=0
wait "$fpid" || brc=$?
echo "B: fio exit $brc: $(grep -E 'err=' /tmp/kr-fio-b.log | head -1)"
if [ $brc != 0 ] || grep -qiE 'verify.*(bad|fail|mismatch)|bad magic|crc32c' /tmp/kr-fio-b.log; then
	echo "B: fio failed or saw a verify mismatch"
	tail -30 /tmp/kr-fio-b.log
	rc=1
fi
# Its verify pass is the read side of a write job: no read means nothing was verified.
if ! grep -qE '^ *READ: .*io=[1-9]' /tmp/kr-fio-b.log; then
	echo "B: fio verified nothing (no read)"
	tail -30 /tmp/kr-fio-b.log
	rc=1
fi
echo "B: $(grep -m1 -E '^ *READ: ' /tmp/kr-fio-b.log | sed 's/^ *//')"
if ! fio_verify after /tmp/kr-fio-c.log; then
	echo "B: verified fio after the late restart failed"
	tail -30 /tmp/kr-fio-c.log
	rc=1
fi

touch /tmp/kr-dmon.stop
wait "$mpid" || true
read -r dmax dwho </tmp/kr-dmax
echo "longest D state: $((dmax / 100)).$(printf %02d $((dmax % 100))) s ($dwho); bound $((TMO + 5)) s"
[ "$dmax" -le $(((TMO + 5) * 100)) ] || { echo "a task stayed in D state too long"; rc=1; }
# The monitor must have seen the dd wait for its timeout (when it did time out).
[ "$ddok" = 1 ] || [ "$dmax" -ge 100 ] || { echo "the D-state monitor missed the dd waiting for a timed-out command"; rc=1; }

kill_handler
unexport_lun $WWN l
rmdir "$D" "$CFG/core/user_8"
rmdir "$CFG/loopback" 2>/dev/null || true
rm -f "$IMG"
leakcheck "$M"
rmmod tcm_loop "$M"
[ $rc = 0 ] && echo "kill-restart on $M: OK"
exit $rc
