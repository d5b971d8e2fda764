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

SPLATS='BUG:|WARNING:|Oops|KASAN|possible circular locking|lockdep|INFO: task .* blocked for more than|unreferenced object|Kernel panic|general protection fault|UBSAN'
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
		-append "console=ttyS0 quiet panic=-1 acpi=noirq tcmu.cmd=$3" \
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
if grep -aqE "$SPLATS" "$OUT/dmesg.log"; then
	log "error: kernel log problems (guest command exited $rc):"
	grep -aE "$SPLATS" "$OUT/dmesg.log" | head -20 >&2
	exit 120
fi
log "guest command exited $rc (boot-to-test ${boot_ms:-?} ms)"
exit "$rc"
