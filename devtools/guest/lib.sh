# SPDX-License-Identifier: GPL-2.0
# Helpers for the guest test scripts. Sourced.

CFG=/sys/kernel/config/target

# make_user_dev DEV CONTROL: create and enable a user device with the given control string.
make_user_dev() {
	mkdir -p "$1"
	echo -n "$2" >"$1/control"
	echo 1 >"$1/enable"
}

# clean_dev_nodes: a write to /dev/sdX while that disk was gone (a dd or fio racing a
# teardown) creates a regular file there, and devtmpfs cannot make the node when a disk takes
# the name again: later tests would do their I/O on a file in memory (seen on the debug
# kernel: kill-restart's dd "succeeded" with the handler dead, reclaim and fuzz saw no I/O).
# Removes such leftovers; call it before a new disk appears.
clean_dev_nodes() {
	local f
	for f in /dev/sd*; do
		[ -e "$f" ] && [ ! -b "$f" ] && { echo "removing stale non-device $f" >&2; rm -f "$f"; }
	done
	return 0
}

# snap_disks: records the disks there are now; wait_disk looks for one that is not among them
# (a disk of an earlier test may still be going away on a slow kernel). Call it before a step
# that makes a disk appear (export_lun does).
snap_disks() {
	ls /sys/block >/tmp/.disks-before 2>/dev/null
}

# export_lun WWN DEV NAME: a tcm_loop target naa.WWN with LUN 0 linked (as NAME) to DEV;
# the nexus is created first, as tcm_loop wants it before the LUN.
export_lun() {
	local tpg=$CFG/loopback/$1/tpgt_1
	snap_disks
	clean_dev_nodes
	mkdir -p "$tpg/lun/lun_0" &&
		echo -n "${1%?}f" >"$tpg/nexus" &&
		ln -s "$2" "$tpg/lun/lun_0/$3"
}

# unexport_lun WWN NAME: undoes export_lun; tolerates a partial setup.
unexport_lun() {
	local tpg=$CFG/loopback/$1/tpgt_1
	[ -L "$tpg/lun/lun_0/$2" ] && rm "$tpg/lun/lun_0/$2"
	rmdir "$tpg/lun/lun_0" "$tpg" "$CFG/loopback/$1" 2>/dev/null || true
}

# wait_disk: prints the name of the SCSI disk (with a size) that appeared since the last
# snap_disks (or export_lun), waiting up to 10 s (30 s for a slow kernel).
wait_disk() {
	local i b sd=
	for i in $(seq 300); do
		for b in /sys/block/sd*; do
			[ -e "$b/size" ] && [ "$(cat "$b/size")" != 0 ] || continue
			grep -qx "${b##*/}" /tmp/.disks-before 2>/dev/null && continue
			sd=${b##*/}
		done
		[ -n "$sd" ] && [ -b "/dev/$sd" ] && { echo "$sd"; return 0; }
		sleep 0.1
	done
	return 1
}

# start_handler LOG: tcmu-rs-handler --wait (it serves the user devices there are and those
# that come) in the background, its output appended to LOG; its pid in $hpid.
start_handler() {
	/tcmu/tcmu-rs-handler --wait >>"$1" 2>&1 &
	hpid=$!
}

# served_lun MODULE DEV CONTROL TMO WWN LOG: loads MODULE and tcm_loop, creates and enables the
# user device DEV (CONTROL, cmd_time_out TMO), starts the handler (start_handler LOG: $hpid),
# exports DEV as LUN "l" of naa.WWN (unexport_lun WWN l undoes it) and waits for its disk: its
# name in $sd. Fails if a step does or no disk appears.
served_lun() {
	modprobe "$1" && modprobe tcm_loop &&
		mkdir -p "$2" &&
		echo -n "$3" >"$2/control" &&
		echo "$4" >"$2/attrib/cmd_time_out" &&
		echo 1 >"$2/enable" || return 1
	start_handler "$6"
	export_lun "$5" "$2" l || return 1
	sd=$(wait_disk) || { echo "no disk"; return 1; }
}

# leakcheck MODULE: on a kernel with kmemleak (debug flavour), scans for leaks while MODULE is
# still loaded, so that the backtraces name its functions (after rmmod they are bare
# addresses). Two scans: kmemleak reports an object only once its content stayed the same
# over a scan. Fails (and prints the report) on any leak but the C module's known one:
# target_core_user's tcmu_check_and_free_pending_cmd() frees an expired or KEEP_BUF command
# left at device removal without its dbi array, allocated in tcmu_queue_cmd (6.12). Reports
# are cleared so that the next layer starts clean; they are kept in /out/kmemleak-*.txt.
leakcheck() {
	local f=/sys/kernel/debug/kmemleak r n=0
	[ -w $f ] || return 0
	local t0; t0=$(date +%s)
	echo scan >$f && echo scan >$f
	r=$(cat $f)
	echo clear >$f
	echo "kmemleak: 2 scans with $1 loaded in $(($(date +%s) - t0)) s"
	[ -n "$r" ] || return 0
	while [ -e "/out/kmemleak-$1-$n.txt" ]; do n=$((n + 1)); done
	echo "$r" >"/out/kmemleak-$1-$n.txt" 2>/dev/null
	if [ "$1" = target_core_user ] && echo "$r" | awk '
		/^unreferenced object/ { if (seen && !known) bad = 1; seen = 1; known = 0 }
		/tcmu_queue_cmd\+0x[0-9a-f]+\/0x[0-9a-f]+ \[target_core_user\]/ { known = 1 }
		END { exit (bad || (seen && !known)) }'; then
		echo "kmemleak: only the C module's known dbi leak (tcmu_check_and_free_pending_cmd)"
		return 0
	fi
	echo "kmemleak: leaks with $1 loaded:"
	echo "$r"
	return 1
}

# start_iscsid: open-iscsi's daemon for the kernel initiator; prints its pid. In a session
# of its own: a terminated iscsid signals its whole process group.
start_iscsid() {
	mkdir -p /run/lock/iscsi /etc/iscsi/nodes /etc/iscsi/send_targets
	setsid iscsid -f >/tmp/iscsid.log 2>&1 &
	echo $!
	sleep 1
}

# unload_iscsi_target: rmmod iscsi_target_mod once its connection threads are gone. They
# outlive a logout a little, and nothing stops an rmmod meanwhile (seen: an oops in iscsi_trx
# running unloaded code, with either TCMU module).
unload_iscsi_target() {
	local i n
	for i in $(seq 100); do
		n=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -cE '^iscsi_(trx|ttx)$' || true)
		[ "$n" = 0 ] && { rmmod iscsi_target_mod 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	echo "iscsi_target_mod left loaded: $n connection threads 10 s after the logout"
}

# iscsi_disk LUN: the sd disk of LUN of the iSCSI session (waits up to 30 s).
iscsi_disk() {
	local i d
	for i in $(seq 300); do
		for d in /sys/class/iscsi_session/session*/device/target*/*:*:*:"$1"/block/sd*; do
			[ -e "$d" ] || continue
			[ -b "/dev/${d##*/}" ] && [ "$(cat "$d/size")" != 0 ] && { echo "${d##*/}"; return 0; }
		done
		sleep 0.1
	done
	return 1
}
