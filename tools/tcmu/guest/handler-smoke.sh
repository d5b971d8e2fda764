#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest-side smoke test of tcmu-rs-handler (tools/tcmu/handler) against a
# TCMU module (target_core_user by default, TCMU_MODULE=tcmu_rs for ours).
# For each backstore (ram, file, null): create a user device through
# configfs, export it with a tcm_loop target, let tcmu-rs-handler serve it,
# check what sd and sg3-utils see, write/read/compare with dd, run fio with
# verification, then tear everything down. Finally stop the handler with
# SIGTERM and unload the modules.
#
# It uses the guest helpers of devtools/guest/lib.sh (export_lun, wait_disk), which vm.sh
# installs next to it in /tcmu. From the host (see devtools/vm.sh):
#   cargo build --release --manifest-path tools/tcmu/Cargo.toml -p tcmu-handler
#   bash devtools/vm.sh \
#     --file tools/tcmu/target/release/tcmu-rs-handler:tcmu-rs-handler \
#     --file tools/tcmu/guest/handler-smoke.sh:handler-smoke.sh -- 'sh handler-smoke.sh'
#
# Environment: HANDLER (default ./tcmu-rs-handler next to this script),
# TCMU_MODULE (default target_core_user), BACKSTORES (default "ram file
# null"), SIZE (bytes, default 64 MiB), FIO_SIZE (default 16M).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
[ -r "$HERE/lib.sh" ] || { echo "handler-smoke: no $HERE/lib.sh (devtools/guest/lib.sh)"; exit 1; }
. "$HERE/lib.sh"
HANDLER=${HANDLER:-$HERE/tcmu-rs-handler}
TCMU_MODULE=${TCMU_MODULE:-target_core_user}
BACKSTORES=${BACKSTORES:-ram file null}
SIZE=${SIZE:-67108864}
FIO_SIZE=${FIO_SIZE:-16M}
HBA=$CFG/core/user_1
WWN=naa.5001405abcdef012
TPG=$CFG/loopback/$WWN/tpgt_1
LOG=/tmp/tcmu-rs-handler.log
HPID=
FAILED=0

say() { echo "=== handler-smoke: $*"; }
fail() {
	say "FAIL: $*"
	FAILED=1
	exit 1
}
step() {
	echo "+ $*"
	"$@" || fail "command failed ($?): $*"
}

# Tears down whatever exists, in reverse order of creation; safe to call
# at any point.
teardown_dev() {
	local name=$1
	if [ -d "$TPG/lun/lun_0" ]; then
		for l in "$TPG"/lun/lun_0/*; do
			[ -L "$l" ] && { echo "+ unlink $l"; rm -f "$l" || true; }
		done
		echo "+ rmdir $TPG/lun/lun_0"
		rmdir "$TPG/lun/lun_0" || true
	fi
	if [ -d "$TPG" ]; then
		grep -q . "$TPG/nexus" 2>/dev/null && { echo -n NULL >"$TPG/nexus" || true; }
		echo "+ rmdir $TPG $CFG/loopback/$WWN"
		rmdir "$TPG" || true
		rmdir "$CFG/loopback/$WWN" || true
	fi
	if [ -d "$HBA/$name" ]; then
		echo "+ rmdir $HBA/$name"
		rmdir "$HBA/$name" || true
	fi
}

stop_handler() {
	[ -n "$HPID" ] || return 0
	kill -TERM "$HPID" 2>/dev/null || true
	local rc=0
	wait "$HPID" || rc=$?
	HPID=
	say "handler exited with status $rc"
	echo "----- handler log -----"
	cat "$LOG" || true
	echo "-----------------------"
	return "$rc"
}

cleanup() {
	local rc=$?
	set +e
	if [ "$rc" != 0 ] || [ "$FAILED" != 0 ]; then
		say "cleaning up after failure"
		for n in h_opt h_ram h_file h_null; do teardown_dev "$n"; done
		stop_handler
		rmdir "$HBA" "$CFG/loopback" 2>/dev/null
		dmesg | tail -30
		say "FAILED"
	fi
	exit "$rc"
}
trap cleanup EXIT

# expect_illegal WHAT ASC_TEXT SG_RAW_ARGS...: the command must end in
# CHECK CONDITION, ILLEGAL REQUEST with the given additional sense.
expect_illegal() {
	local what=$1 asc=$2
	shift 2
	echo "+ sg_raw $*"
	sg_raw "$@" >/tmp/sg_raw.out 2>&1 || true
	cat /tmp/sg_raw.out
	grep -qi "illegal request" /tmp/sg_raw.out || fail "$what: no ILLEGAL REQUEST"
	grep -qi "$asc" /tmp/sg_raw.out || fail "$what: no '$asc'"
	echo "ok: $what -> ILLEGAL REQUEST, $asc"
}

check_eq() {
	[ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
	echo "ok: $3 = $1"
}

run_backstore() {
	local kind=$1 name=h_$1 cfg sd dev blocks
	case $kind in
	ram) cfg=ram/smoke ;;
	file) cfg=file//tmp/tcmu-smoke.img; rm -f /tmp/tcmu-smoke.img ;;
	null) cfg=null/smoke ;;
	*) fail "unknown backstore $kind" ;;
	esac
	say "backstore $kind ($cfg)"

	step mkdir -p "$HBA/$name"
	step sh -c "echo -n 'dev_config=$cfg,dev_size=$SIZE,nl_reply_supported=-1' > $HBA/$name/control"
	step sh -c "echo 1 > $HBA/$name/enable"
	cat "$HBA/$name/info"
	grep -l "tcm-user/1/$name/" /sys/class/uio/uio*/name >/dev/null || fail "no UIO device for $name"

	# Linking the LUN scans it (INQUIRY, READ CAPACITY, ...): the handler
	# (started with --wait) serves the device by now.
	export_dev "$name"
	dev=/dev/$sd
	say "$name is $dev"
	[ -b "$dev" ] || mknod "$dev" b "$(cut -d: -f1 /sys/block/$sd/dev)" "$(cut -d: -f2 /sys/block/$sd/dev)"

	# What sd made of our INQUIRY / READ CAPACITY / MODE SENSE / VPD data.
	blocks=$((SIZE / 512))
	check_eq "$(cat /sys/block/$sd/size)" "$blocks" "size in 512-byte sectors"
	check_eq "$(cat /sys/block/$sd/queue/logical_block_size)" 512 "logical block size"
	case $kind in
	file) check_eq "$(cat /sys/block/$sd/device/scsi_disk/*/cache_type)" "write back" "cache type" ;;
	*) check_eq "$(cat /sys/block/$sd/device/scsi_disk/*/cache_type)" "write through" "cache type" ;;
	esac
	check_eq "$(cat /sys/block/$sd/queue/max_sectors_kb)" 64 "max_sectors_kb (Block Limits VPD: hw_max_sectors 128)"
	step sg_inq "$dev"
	step sg_vpd -p sn "$dev"
	step sg_vpd -p di "$dev"
	step sg_vpd -p bl "$dev"
	step sg_readcap -l "$dev"
	step sg_modes -a "$dev"
	step sg_turs "$dev"
	step sg_sync "$dev"
	step sg_luns "$dev"
	step sg_requests "$dev"
	# An opcode the handler does not implement (WRITE SAME(10)) and a READ(10)
	# one block past the end must fail with ILLEGAL REQUEST (and the right
	# additional sense), not hang or crash.
	expect_illegal "unsupported opcode" "invalid command operation code" \
		-s 512 -i /dev/zero "$dev" 41 00 00 00 00 00 00 00 01 00
	expect_illegal "read past the end" "logical block address out of range" \
		-r 512 "$dev" 28 00 $(printf '%08x' "$blocks" | sed 's/../& /g') 00 00 01 00

	# Pattern write / read back / compare, with O_DIRECT.
	step dd if=/dev/urandom of=/tmp/pattern bs=1M count=8 status=none
	step dd if=/tmp/pattern of="$dev" bs=1M oflag=direct conv=fsync status=none
	step dd if="$dev" of=/tmp/readback bs=1M count=8 iflag=direct status=none
	if [ "$kind" = null ]; then
		step dd if=/dev/zero of=/tmp/zeros bs=1M count=8 status=none
		step cmp /tmp/zeros /tmp/readback
	else
		step cmp /tmp/pattern /tmp/readback
		# Unaligned offsets and a read at the very end of the device.
		step dd if=/tmp/pattern of="$dev" bs=4096 seek=$((SIZE / 4096 - 3)) count=3 oflag=direct status=none
		step dd if="$dev" of=/tmp/tail bs=4096 skip=$((SIZE / 4096 - 3)) count=3 iflag=direct status=none
		step cmp -n 12288 /tmp/tail /tmp/pattern
		if [ "$kind" = file ]; then
			# SYNCHRONIZE CACHE reached the file: its first 8 MiB are the pattern.
			step cmp -n 8388608 /tmp/pattern /tmp/tcmu-smoke.img
		fi
		step fio --name=v --filename="$dev" --rw=randrw --bs=4k --size="$FIO_SIZE" \
			--verify=crc32c --verify_fatal=1 --iodepth=8 --ioengine=libaio --direct=1
	fi
	# Buffered I/O too, through the page cache and block layer merging.
	step dd if=/tmp/pattern of="$dev" bs=64k seek=16 conv=fsync status=none
	step sh -c "echo 3 > /proc/sys/vm/drop_caches"
	step dd if="$dev" of=/tmp/readback bs=64k skip=16 count=128 status=none
	if [ "$kind" = null ]; then step cmp /tmp/zeros /tmp/readback; else step cmp /tmp/pattern /tmp/readback; fi

	say "tearing down $name"
	teardown_dev "$name"
	[ ! -d "$HBA/$name" ] || fail "$HBA/$name still exists"
	[ -e "/sys/block/$sd" ] && fail "$dev still present after teardown"
	rm -f /tmp/tcmu-smoke.img /tmp/readback /tmp/tail
	say "backstore $kind OK"
}

# Exports device NAME (already enabled) through tcm_loop and waits for its
# disk (the one that appeared since), which our handler must serve: its name
# in $sd.
export_dev() {
	local vendor
	export_lun "$WWN" "$HBA/$1" "$1" || fail "exporting $1 through tcm_loop"
	sd=$(wait_disk) || fail "no /dev/sdX appeared for $1"
	vendor=$(cat "/sys/block/$sd/device/vendor" 2>/dev/null | tr -d " ")
	[ "$vendor" = TCMU-RS ] || fail "/dev/$sd has vendor '$vendor', not TCMU-RS"
}

# --dev, --once-device and the exit status without devices.
test_options() {
	local uio rc=0 sd
	say "options: no device"
	"$HANDLER" >/tmp/opt.log 2>&1 || rc=$?
	cat /tmp/opt.log
	check_eq "$rc" 1 "exit status without devices"
	say "options: --dev --once-device"
	step mkdir -p "$HBA/h_opt"
	step sh -c "echo -n 'dev_config=null/opt,dev_size=1048576' > $HBA/h_opt/control"
	step sh -c "echo 1 > $HBA/h_opt/enable"
	uio=$(basename "$(dirname "$(grep -l "tcm-user/1/h_opt/" /sys/class/uio/uio*/name)")")
	"$HANDLER" -v --dev "$uio" --once-device >/tmp/opt.log 2>&1 &
	HPID=$!
	export_dev h_opt
	check_eq "$(cat /sys/block/$sd/size)" 2048 "size of $sd"
	step dd if="/dev/$sd" of=/dev/null bs=4k count=16 iflag=direct status=none
	teardown_dev h_opt
	# The handler exits by itself once its only device is gone.
	for i in $(seq 50); do kill -0 "$HPID" 2>/dev/null || break; sleep 0.1; done
	rc=0
	wait "$HPID" || rc=$?
	HPID=
	cat /tmp/opt.log
	check_eq "$rc" 0 "exit status of --once-device after removal"
	grep -q "device removed" /tmp/opt.log || fail "no removal logged"
}

say "modules"
step modprobe "$TCMU_MODULE"
step modprobe tcm_loop
[ -x "$HANDLER" ] || fail "no handler at $HANDLER"
step mkdir -p "$HBA"
test_options

"$HANDLER" --wait -v >"$LOG" 2>&1 &
HPID=$!
say "handler pid $HPID"

for kind in $BACKSTORES; do
	run_backstore "$kind"
done

say "stopping the handler"
sleep 0.3 # let it notice the last device going away
stop_handler || fail "handler exited with an error"
grep -q "detached" "$LOG" || fail "handler log has no detach message"
grep -q "signal received" "$LOG" || fail "handler did not log the signal"
step rmdir "$HBA"
# The fabric directory holds a reference on tcm_loop.
step rmdir "$CFG/loopback"
[ -z "$(ls /sys/class/uio)" ] || fail "UIO devices left: $(ls /sys/class/uio)"
step rmmod tcm_loop
step modprobe -r "$TCMU_MODULE"
lsmod
lsmod | grep -qE "^(tcm_loop|target_core_user|tcmu_rs) " && fail "modules still loaded"
say "PASS"
