#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Module parameters and data-page reclaim (tcmu_rs): the parameters exist with the C module's
# names, modes and defaults; the data area's pages show in attrib/stats; lowering
# global_max_data_area_mb below what the devices hold frees an idle device's unused pages
# (unmapped from the handler), and they are faulted in again on demand: fio verify passes
# afterwards, and each time the device goes idle over the limit its pages above the last block
# in use go again, down to at most the limit.
set -euo pipefail
. /tcmu/lib.sh
M=tcmu_rs
P=/sys/module/$M/parameters
D=$CFG/core/user_9/rc
WWN=naa.5001405000000091
rc=0
fail() { echo "FAIL: $*"; rc=1; }
stat_of() { sed -n "s/^$1 //p" "$D/attrib/stats"; }
# wait_pages OP N SECONDS: waits until data_pages OP N (-eq, -gt, ...).
wait_pages() {
	local i
	for i in $(seq $(($3 * 10))); do
		[ "$(stat_of data_pages)" "$1" "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

modprobe $M
modprobe tcm_loop
for p in global_max_data_area_mb block_netlink reset_netlink; do
	[ -e "$P/$p" ] || fail "no parameter $p"
done
[ "$(stat -c %a $P/global_max_data_area_mb)" = 644 ] || fail "global_max_data_area_mb mode $(stat -c %a $P/global_max_data_area_mb)"
[ "$(stat -c %a $P/block_netlink)" = 644 ] || fail "block_netlink mode"
[ "$(stat -c %a $P/reset_netlink)" = 200 ] || fail "reset_netlink mode"
[ "$(cat $P/global_max_data_area_mb)" = 2048 ] || fail "global_max_data_area_mb default $(cat $P/global_max_data_area_mb)"
[ "$(cat $P/block_netlink)" = unblocked ] || fail "block_netlink default $(cat $P/block_netlink)"
echo 0 >$P/global_max_data_area_mb 2>/dev/null && fail "global_max_data_area_mb=0 accepted"
echo 0x10 >$P/global_max_data_area_mb 2>/dev/null && fail "global_max_data_area_mb=0x10 accepted (decimal only)"
echo 2 >$P/block_netlink 2>/dev/null && fail "block_netlink=2 accepted"
echo 0 >$P/reset_netlink 2>/dev/null && fail "reset_netlink=0 accepted"
echo 1 >$P/reset_netlink || fail "reset_netlink=1 with nothing waiting refused"
echo 1 >$P/block_netlink && [ "$(cat $P/block_netlink)" = blocked ] || fail "block_netlink=1"
echo 0 >$P/block_netlink
modinfo -p $M 2>/dev/null | grep -q "^block_netlink:" || fail "modinfo shows no parameter descriptions"

mkdir -p "$D"
echo -n "dev_config=ram/rc,dev_size=$((64 << 20)),max_data_area_mb=32" >"$D/control"
echo 1 >"$D/enable"
/tcmu/tcmu-rs-handler --wait >/tmp/rc-handler.log 2>&1 &
hpid=$!
export_lun $WWN "$D" l
sd=$(wait_disk) || { echo "no disk"; exit 1; }
fio_verify() {
	fio --name=rc --filename="/dev/$sd" --allow_file_create=0 --rw=write --bs=1M --iodepth=8 --ioengine=libaio \
		--direct=1 --size=24M --verify=crc32c --verify_fatal=1 >/tmp/rc-fio.log 2>&1 ||
		{ tail -20 /tmp/rc-fio.log; return 1; }
}
fio_verify || fail "fio verify (first)"
held=$(stat_of data_pages)
echo "after fio: data_pages $held, peak blocks $(stat_of data_blocks_peak), global $(stat_of global_data_pages)"
[ "$held" -gt 0 ] || fail "no data pages held after fio"

echo 1 >$P/global_max_data_area_mb
wait_pages -eq 0 3 || fail "data_pages still $(stat_of data_pages) 3 s after global_max_data_area_mb=1"
echo "global_max_data_area_mb=1: data_pages $(stat_of data_pages), global $(stat_of global_data_pages)"

fio_verify || fail "fio verify after the reclaim (pages faulted in again)"
# Going idle over the limit reclaims down to the limit, not to 0 (as C: the unmap work is
# scheduled only while global_data_pages > the limit). A reclaim that ran between two commands
# during fio may leave one command's blocks (256 pages of 1 MiB) held: exactly the limit.
lim=256 # 1 MiB of 4 KiB pages (x86_64)
[ "$(stat_of data_pages)" -gt "$lim" ] && echo "over the limit after fio: data_pages $(stat_of data_pages)"
wait_pages -le "$lim" 3 || fail "data_pages still $(stat_of data_pages) (> $lim) 3 s after fio went idle over the limit"
echo "idle over the limit again: data_pages $(stat_of data_pages), global $(stat_of global_data_pages)"
[ "$(stat_of global_data_pages)" -le "$lim" ] || fail "global_data_pages $(stat_of global_data_pages) over the limit when idle"

echo 2048 >$P/global_max_data_area_mb
fio_verify || fail "fio verify with the default limit"
[ "$(stat_of data_pages)" -gt 0 ] || fail "pages freed below the limit"
echo "default limit: data_pages $(stat_of data_pages)"
# A busy device's allocations enforce the limit too (as C, whose block allocation schedules
# the unmap work when it goes over): rc idles holding its pages under the limit, then rc2's
# commands take the total over it while the handler is stopped (so rc2 never goes idle and
# nothing is reaped); rc's pages must go meanwhile.
D2=$CFG/core/user_9/rc2
WWN2=naa.5001405000000092
mkdir -p "$D2"
echo -n "dev_config=ram/rc2,dev_size=$((64 << 20)),max_data_area_mb=32" >"$D2/control"
echo 1 >"$D2/enable"
export_lun $WWN2 "$D2" l
sd2=$(wait_disk) || { echo "no disk for rc2"; exit 1; }
held=$(stat_of data_pages)
lim_mb=$((held / 256 + 4))
echo $lim_mb >$P/global_max_data_area_mb
sleep 1
[ "$(stat_of data_pages)" = "$held" ] || fail "rc's pages went under the limit ($held pages, limit $lim_mb MiB)"
kill -STOP "$hpid"
fio --name=busy --filename="/dev/$sd2" --allow_file_create=0 --rw=write --bs=1M --iodepth=32 \
	--ioengine=libaio --direct=1 --size=32M >/tmp/rc2-fio.log 2>&1 &
fpid=$!
freed=0
for i in $(seq 50); do
	[ "$(stat_of data_pages)" -lt "$held" ] && { freed=1; break; }
	sleep 0.1
done
busy=$(sed -n 's/^cmds_inflight //p' "$D2/attrib/stats")
echo "rc2 busy over a limit of $lim_mb MiB: rc data_pages $held -> $(stat_of data_pages) after $((i / 10)) s, rc2 $busy in flight, global $(stat_of global_data_pages)"
kill -CONT "$hpid"
[ "$busy" -gt 0 ] || fail "rc2 had no command in flight"
[ $freed = 1 ] || fail "the idle device kept its $held pages while another one took the total over the limit"
wait $fpid || { tail -20 /tmp/rc2-fio.log; fail "fio on rc2"; }
unexport_lun $WWN2 l
rmdir "$D2"
echo 2048 >$P/global_max_data_area_mb

# Plugging: tcm_loop submits through the target core's per-CPU queue, whose work plugs the
# device around a batch; the handler is woken once per batch, not per command. fio submits
# 16 reads at a time at queue depth 64: batches must form (one wake-up per command is what
# no plugging gives; base: 0.23 wake-ups a command, debug, where the handler keeps up with
# a slow fio: 0.76; required: at most 0.9).
w0=$(stat_of handler_wakeups) n0=$(stat_of cmds_submitted)
fio --name=plug --filename="/dev/$sd" --allow_file_create=0 --rw=randread --bs=4k --iodepth=64 \
	--iodepth_batch_submit=16 --ioengine=libaio --direct=1 --time_based --runtime=3 --size=32M \
	>/tmp/rc-plug.log 2>&1 || fail "fio (plugging)"
w=$(($(stat_of handler_wakeups) - w0)) n=$(($(stat_of cmds_submitted) - n0))
echo "plug: $w handler wake-ups for $n commands at queue depth 64"
[ "$n" -gt 500 ] || fail "plugging: only $n commands in 3 s"
[ "$w" -gt 0 ] && [ $((10 * w)) -le $((9 * n)) ] || fail "plugging: $w handler wake-ups for $n commands"
grep . "$D/attrib/stats"

kill "$hpid"
wait "$hpid" 2>/dev/null || true
unexport_lun $WWN l
rmdir "$D" "$CFG/core/user_9"
rmdir "$CFG/loopback" 2>/dev/null || true
leakcheck $M
rmmod tcm_loop $M
[ $rc = 0 ] && echo "reclaim on $M: OK"
exit $rc
