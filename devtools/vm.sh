#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Run a command in a QEMU guest booted from the $FLAVOUR kernel build:
#   vm.sh [--timeout SECONDS] [--out DIR] [--file host:guest]... -- COMMAND...
# COMMAND runs with sh -c in /tcmu (devtools/guest/* and the --file files; a
# relative guest path lands under /tcmu). DIR (default $CACHE/runs/<time>) is
# shared with the guest as /out and gets console.log and dmesg.log.
# ACCEL=tcg (default) | kvm | auto (kvm only if a cached probe booted with it).
# Exit status: the guest command's, or 124 timeout, 125 no exit marker (the
# guest crashed), 120 the kernel log shows a splat (BUG, WARNING, lockdep...).
. "$(dirname "$0")/lib.sh"
shopt -s lastpipe

# Kernel reports that fail a run, matched on every line of the run's kernel log (and of the
# console after a crash: it mixes in the tests' own output). Real reports only: lockdep's own lines, not the word (the debug kernel's boot line
# "RCU lockdep checking is enabled." is benign).
SPLATS='BUG:|WARNING:|Oops|KASAN|UBSAN|Kernel panic|general protection fault|Call Trace:'
SPLATS+='|INFO: task .* blocked for more than|detected stalls? on CPU|self-detected stall|soft lockup|hard LOCKUP'
SPLATS+='|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage'
SPLATS+='|DEBUG_LOCKS_WARN_ON|INFO: trying to register non-static key|turning off the locking correctness validator'
SPLATS+='|unreferenced object|page allocation failure'
# The guest writes this line to the kernel log before the test command: a scanned log
# without it (or without the kernel's first line) lost the start of the run.
CANARY='tcmu-check: kernel log start of the test command'
# Room for a whole run's kernel log (a full base run writes about 200 KiB, attr-diff most of
# it; the default is 128 KiB). A run that outgrows it fails on the canary below.
LOG_BUF_LEN=8M
TIMEOUT=600 OUT= FILES=()
usage() { die "usage: vm.sh [--timeout SECONDS] [--out DIR] [--file host:guest]... -- COMMAND..."; }
while [ $# -gt 0 ]; do
	case $1 in
	--timeout) TIMEOUT=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--file) FILES+=("$2"); shift 2 ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
[ $# -gt 0 ] || usage
CMD="$*"
KERNEL=$BUILD/arch/x86/boot/bzImage
[ -f "$KERNEL" ] || die "no kernel at $KERNEL: run devtools/kernel.sh build"

OUT=${OUT:-$CACHE/runs/$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/console.log" "$OUT/dmesg.log"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# The kernel command line holds 2048 bytes: long commands go in a file.
if [ "$(printf %s "$CMD" | base64 -w0 | wc -c)" -gt 1500 ]; then
	printf '%s\n' "$CMD" >"$TMP/cmd.sh"
	FILES+=("$TMP/cmd.sh:.cmd.sh")
	CMD='. /tcmu/.cmd.sh'
fi
B64=$(printf %s "$CMD" | base64 -w0)
bash "$TOP/devtools/initramfs.sh" "$TMP/initrd.cpio" ${FILES[@]+"${FILES[@]}"}

# qemu ACCEL TIMEOUT CMD_B64: the guest console on stdout.
qemu() {
	timeout -k 5 "$2" qemu-system-x86_64 -accel "$1" -cpu "$([ "$1" = kvm ] && echo host || echo max)" -smp 2 -m 2048 \
		-nodefaults -no-user-config -display none -no-reboot -monitor none -serial stdio \
		-kernel "$KERNEL" -initrd "$TMP/initrd.cpio" \
		-append "console=ttyS0 quiet panic=-1 acpi=noirq log_buf_len=$LOG_BUF_LEN rcupdate.rcu_cpu_stall_timeout=60 tcmu.accel=$1 tcmu.cmd=$3" \
		-fsdev local,id=out,path="$OUT",security_model=none \
		-device virtio-9p-pci,fsdev=out,mount_tag=out </dev/null 2>&1
}

# KVM on some hosts hangs in the boot stub, so it is only used when a quick
# boot with it reached /init (result cached per host and host kernel).
pick_accel() {
	local probe=$CACHE/kvm-probe-$(hostname)-$(uname -r)
	if [ ! -f "$probe" ]; then
		log "probing KVM (30 s at most)"
		local out=
		[ -w /dev/kvm ] && out=$(qemu kvm 30 "$(printf true | base64 -w0)" || true)
		if grep -aq '===TCMU-CMD-BEGIN===' <<<"$out"; then
			echo ok >"$probe"
		else
			echo fail >"$probe"
		fi
	fi
	if [ "$(cat "$probe")" = ok ]; then echo kvm; else echo tcg; fi
}
case ${ACCEL:=tcg} in
tcg | kvm) ;;
auto) ACCEL=$(pick_accel) ;;
*) die "ACCEL must be tcg, kvm or auto" ;;
esac

log "booting $(basename "$BUILD") with $ACCEL (timeout ${TIMEOUT}s, results in $OUT)"
t0=${EPOCHREALTIME//[.,]/}
boot_ms=
exec 3>"$OUT/console.log"
set +e
qemu "$ACCEL" "$TIMEOUT" "$B64" | while IFS= read -r line || [ -n "$line" ]; do
	line=${line%$'\r'}
	printf '%s\n' "$line"
	printf '%s\n' "$line" >&3
	if [ -z "$boot_ms" ] && [[ $line == *===TCMU-CMD-BEGIN===* ]]; then
		boot_ms=$(((${EPOCHREALTIME//[.,]/} - t0) / 1000))
		log "boot-to-test: $((boot_ms / 1000)).$(printf %03d $((boot_ms % 1000))) s"
	fi
done
qemu_rc=${PIPESTATUS[0]}
set -e
exec 3>&-

sed -n '/===TCMU-DMESG-BEGIN===/,/===TCMU-DMESG-END===/p' "$OUT/console.log" >"$OUT/dmesg.log"
rc=$(sed -n 's/^===TCMU-EXIT=\([0-9]*\)===$/\1/p' "$OUT/console.log" | tail -1)
if [ -z "$rc" ]; then
	grep -aE "$SPLATS" "$OUT/console.log" | head -20 >&2 || true
	if [ "$qemu_rc" = 124 ]; then
		log "error: timeout: guest killed after ${TIMEOUT}s (see $OUT/console.log)"
		exit 124
	fi
	log "error: no exit marker: guest crashed or QEMU failed (status $qemu_rc; see $OUT/console.log)"
	exit 125
fi
# The whole kernel log of the run must be there, or the scan below proves nothing.
if ! grep -aqE '^(\[[ 0-9.]+\] )?Linux version ' "$OUT/dmesg.log" || ! grep -aqF "$CANARY" "$OUT/dmesg.log"; then
	log "error: the kernel log lost the start of the run (wrapped or not printed; see $OUT/dmesg.log)"
	exit 120
fi
if grep -aqE "$SPLATS" "$OUT/dmesg.log"; then
	log "error: kernel log problems (guest command exited $rc):"
	grep -aE "$SPLATS" "$OUT/dmesg.log" | head -20 >&2
	exit 120
fi
log "guest command exited $rc (boot-to-test ${boot_ms:-?} ms)"
exit "$rc"
