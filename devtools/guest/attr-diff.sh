#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Differential walk of the configfs and sysfs interface of target_core_user and tcmu_rs.
#
# For each module (loaded alone, with tcm_loop), a transcript of "KEY => RESULT" lines:
#   - the files of a user device (attrib/, action/, the device directory) with their modes;
#   - every attrib/ file: its default, then valid, edge and invalid writes (the write's result,
#     ok or the errno name, and the value read back), before enable, after enable, and once the
#     device is exported on a tcm_loop LUN (export_count > 0: some attributes freeze);
#   - control strings (every key of the C module's match_token table with good, edge and bad
#     values, unknown keys, duplicates, separators, whitespace, over-long strings) on a fresh
#     device each, and on the enabled device; enable values; info; the action/ files;
#   - the UIO device of an enabled device (name, version, map);
#   - the module parameters (/sys/module/<M>/parameters/*, normalised to params/).
# The transcripts are compared key by key; every difference must match a pattern of
# /tcmu/attr-diff.allow ("GLOB # reason"), or the script fails. No handler is attached:
# the LUN is linked without a tcm_loop nexus, so that the SCSI scan never reaches the ring.
# Transcripts and the difference list are kept in $ADOUT (default /out/attr-diff or /tmp).
set -uo pipefail
shopt -s extglob # the allowlist's patterns may use @(a|b)
. /tcmu/lib.sh

MODULES=${ATTR_DIFF_MODULES:-target_core_user tcmu_rs}
ALLOW=${ATTR_DIFF_ALLOW:-/tcmu/attr-diff.allow}
if [ -z "${ADOUT:-}" ]; then
	if [ -d /out ] && [ -w /out ]; then ADOUT=/out/attr-diff; else ADOUT=/tmp/attr-diff; fi
fi
mkdir -p "$ADOUT"
E=/tmp/attr-diff.err
HBA=$CFG/core/user_3
D=$HBA/dev    # the device walked through the phases
C=$HBA/c      # throw-away devices (control strings, enable probes)
WWN=naa.5001405000000031

# strerror text -> errno name, for the messages of bash and cat.
# (No process substitution: the guest has no /dev/fd.)
declare -A ERRNO=()
python3 -c 'import errno, os
for n, c in sorted(errno.errorcode.items()): print(os.strerror(n) + "\t" + c)' >/tmp/attr-diff.errno
while IFS=$'\t' read -r msg name; do
	ERRNO[$msg]=$name
done </tmp/attr-diff.errno
[ ${#ERRNO[@]} -gt 100 ] || { echo "attr-diff: no errno table"; exit 1; }

# Kernel messages of the refused writes would flood the serial console: quieter while running.
read -r LOGLEVEL _ </proc/sys/kernel/printk
dmesg -n 1
trap 'dmesg -n "$LOGLEVEL"' EXIT

# errname: ERR = the errno name of the last message in $E.
errname() {
	local m=
	IFS= read -r m <"$E" || true
	m=${m##*: }
	ERR=${ERRNO[$m]:-ERR($m)}
}

# vis STRING [MAX]: V = STRING quoted, with \n \t \\ escaped; strings longer than MAX
# (default 40: the values in keys) are abbreviated.
vis() {
	local s=$1 n=${#1} sum
	if [ "$n" -gt "${2:-40}" ]; then
		sum=$(printf %s "$s" | md5sum)
		s="${s:0:16}...(${n} bytes, md5 ${sum:0:12})"
	fi
	s=${s//\\/\\\\}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	V="\"$s\""
}

# wr FILE VALUE: W = ok or the errno name of the failed open or write; K = VALUE quoted.
wr() {
	vis "$2"; K=$V
	: >"$E"
	if printf %s "$2" 2>"$E" >"$1"; then W=ok; else errname; W=$ERR; fi
}

# rd FILE: R = the quoted content, or !ERRNO.
rd() {
	local v=
	: >"$E"
	IFS= read -r -d '' v 2>"$E" <"$1"
	if [ -s "$E" ]; then errname; R="!$ERR"; else vis "$v" 400; R=$V; fi
}

# rec KEY RESULT: one transcript line; a repeated key gets a " #n" suffix.
declare -A SEEN=()
rec() {
	local k=$1
	if [ -n "${SEEN[$1]:-}" ]; then
		SEEN[$1]=$((SEEN[$1] + 1))
		k="$1 #${SEEN[$1]}"
	else
		SEEN[$1]=1
	fi
	printf '%s => %s\n' "$k" "$2" >>"$T"
	NCHK=$((NCHK + 1))
}

# listing PREFIX DIR: one line per entry of DIR (type and mode), PREFIX/name as key.
listing() {
	local mode type name
	if [ ! -d "$2" ]; then rec "ls $1/" "no directory"; return; fi
	while IFS='|' read -r mode type name; do
		[ -n "$name" ] || continue
		case $type in regular*) type=file ;; esac
		rec "ls $1/${name##*/}" "$type $mode"
	done <<<"$(stat -c '%a|%F|%n' "$2"/* 2>/dev/null)"
}

# Names in DIR plus the given ones, sorted and unique (the C module's names first
# guarantee a key even when the other module lacks the file).
names() { # dir known...
	local d=$1; shift
	{ printf '%s\n' "$@"; [ -d "$d" ] && ls "$d"; } | sort -u
}

C_ATTRIB="alua_support cmd_ring_size_mb cmd_time_out data_pages_per_blk dev_config dev_size
emulate_pr emulate_write_cache enforce_pr_isids force_pr_aptpl hw_block_size hw_max_sectors
hw_pi_prot_type hw_queue_depth max_data_area_mb nl_reply_supported pgr_support qfull_time_out
submit_type tmr_notification"
C_RO="cmd_ring_size_mb data_pages_per_blk hw_block_size hw_max_sectors hw_pi_prot_type
hw_queue_depth max_data_area_mb"
C_RO=${C_RO//$'\n'/ }
C_PARAMS="block_netlink global_max_data_area_mb reset_netlink"

LONG300=$(printf '%0300d' 0 | tr 0 c)
HUGE=$(printf '%05000d' 0 | tr 0 9)
# Values written to every attrib/ file.
VALUES=(0 1 2 -1 -2 5 127 128 255 256 65535 65536 2147483647 2147483648 2147484 4294967295
	4294967296 4294968 18446744073709551615 18446744073709551616 "$HUGE" 0x10 010 08 +7 -0 abc
	"" $'\n' 5x "5 5" " 5" "5 " $'5\n' $'5\n\n' $'\t5' " ")
# Extra values for the string and size attributes.
declare -A EXTRA=(
	[dev_config]="qcow/x|$(printf '%0255d' 0 | tr 0 c)|$(printf '%0256d' 0 | tr 0 c)|$LONG300|a b|a,b|a=b"
	[dev_size]="2097152|0x200000"
)

# unquote QUOTED: U = the value to write back for a value read with rd (no newline), or
# empty and status 1 when it was not readable.
unquote() {
	case $1 in '"'*) ;; *) U=; return 1 ;; esac
	U=${1#\"}; U=${U%\"}; U=${U%\\n}
}

# attr_battery PHASE: every attrib/ file of $D. Each write is followed by a read back and
# by a write of the file's value at the start of the battery, so that checks are
# independent of each other (not recorded: the restore is checked once at the end).
attr_battery() {
	local p=$1 f v vals def
	for f in $(names "$D/attrib" $C_ATTRIB); do
		rd "$D/attrib/$f"; def=$R
		rec "$p attrib/$f read" "$R"
		vals=("${VALUES[@]}")
		# Read-only in C, or unknown to it: a few writes are enough.
		[[ " $C_RO " == *" $f "* ]] || [[ " ${C_ATTRIB//$'\n'/ } " != *" $f "* ]] &&
			vals=(0 1 -1 x "")
		if [ -n "${EXTRA[$f]:-}" ]; then
			IFS='|' read -r -a ex <<<"${EXTRA[$f]}"
			vals+=("${ex[@]}")
		fi
		for v in "${vals[@]}"; do
			wr "$D/attrib/$f" "$v"
			rd "$D/attrib/$f"
			rec "$p attrib/$f w $K" "$W ; $R"
			unquote "$def" && [ "$R" != "$def" ] && printf %s "$U" >"$D/attrib/$f" 2>/dev/null
		done
		rd "$D/attrib/$f"
		rec "$p attrib/$f after" "$R"
	done
}

# action_battery PHASE: the action/ files of $D.
action_battery() {
	local p=$1 v
	rd "$D/action/block_dev"; rec "$p action/block_dev read" "$R"
	rd "$D/action/reset_ring"; rec "$p action/reset_ring read" "$R"
	rd "$D/action/free_kept_buf"; rec "$p action/free_kept_buf read" "$R"
	for v in 1 1 0 2 -1 256 x "" $'\n' " 1" $'1\n' 0x1 01 1x 0; do
		wr "$D/action/block_dev" "$v"; rd "$D/action/block_dev"
		rec "$p action/block_dev w $K" "$W ; $R"
	done
	for v in 1 2 0 3 -1 256 x "" $'1\n' 0x2 " 1" 1x; do
		wr "$D/action/reset_ring" "$v"
		rec "$p action/reset_ring w $K" "$W"
	done
	for v in 0 1 65535 65536 -1 x "" $'0\n' 0x0 " 0"; do
		wr "$D/action/free_kept_buf" "$v"
		rec "$p action/free_kept_buf w $K" "$W"
	done
	rd "$D/action/block_dev"; rec "$p action/block_dev final" "$R"
}

# state DEV: S = what the control string changed (info and the related attributes).
state() {
	local s f
	rd "$1/info"; s="info $R"
	for f in dev_config dev_size hw_block_size hw_max_sectors nl_reply_supported \
		max_data_area_mb data_pages_per_blk cmd_ring_size_mb; do
		rd "$1/attrib/$f"; s+=" $f=$R"
	done
	S=$s
}

# The zero data_pages_per_blk divides by zero in the C module: never sent to it.
c_crashes() {
	[ "$M" = target_core_user ] || return 1
	local t
	IFS=$',\n' read -r -d '' -a toks <<<"$1" || true
	for t in "${toks[@]}"; do
		[[ $t =~ ^data_pages_per_blk=[+-]?(0+|0[xX]0*)$ ]] && return 0
	done
	return 1
}

# control_one KEYPREFIX DEV STRING: one control write and the state it leaves.
control_one() {
	vis "$3"; local k="$1 control w $V"
	if c_crashes "$3"; then rec "$k" "SKIPPED (division by zero in the C module)"; return; fi
	wr "$2/control" "$3"
	state "$2"
	rec "$k" "$W ; $S"
}

control_battery() {
	local key v s strs=()
	for key in hw_block_size hw_max_sectors nl_reply_supported max_data_area_mb \
		data_pages_per_blk cmd_ring_size_mb; do
		for v in 0 1 -1 2 4 8 9 512 4096 2048 2049 2147483647 2147483648 -2147483648 \
			-2147483649 99999999999 abc 5x "" 0x10 010 " 5" +5 -0 "5 "; do
			strs+=("$key=$v")
		done
	done
	for v in 0 1 512 1048576 18446744073709551615 18446744073709551616 -1 abc 5x "" 0x100000 \
		" 5" 010; do
		strs+=("dev_size=$v")
	done
	for v in "" a qcow/x "$(printf '%0255d' 0 | tr 0 c)" "$(printf '%0256d' 0 | tr 0 c)" \
		"$LONG300" "a b" "a=b" " x" "%s" "a\\b"; do
		strs+=("dev_config=$v")
	done
	s=$(for i in $(seq 400); do printf 'dev_size=%d,' "$i"; done)
	strs+=("" $'\n' , ,,, $'\n\n' unknown=1 unknown dev_config dev_size dev_size= DEV_SIZE=5
		"dev_size =5" " dev_size=5" "dev_size=5 " $'dev_size=5\t' "dev_size=1,dev_size=2"
		"max_data_area_mb=4,max_data_area_mb=16" $'dev_size=5\ndev_config=a/b' $'dev_size=5\n'
		"dev_size=5;dev_config=a/b" "dev_size=1,hw_block_size=0,dev_config=x/y"
		"dev_size=1,unknown=2,dev_config=x/y" "data_pages_per_blk=8,max_data_area_mb=1"
		"max_data_area_mb=1,data_pages_per_blk=256" "max_data_area_mb=1,data_pages_per_blk=257"
		"max_data_area_mb=1,data_pages_per_blk=512" "data_pages_per_blk=512,max_data_area_mb=1"
		"max_data_area_mb=4096" "cmd_ring_size_mb=8" "cmd_ring_size_mb=9"
		"dev_config=a,b" "dev_config=a=b=c" "dev_config=x/y,dev_size=2,hw_block_size=4096,hw_max_sectors=64,nl_reply_supported=1,max_data_area_mb=16,data_pages_per_blk=8,cmd_ring_size_mb=2"
		"$s" "${s}dev_config=after/4k" "dev_config=$HUGE")
	for s in "${strs[@]}"; do
		mkdir "$C" || { rec "mkdir for control" "failed"; return; }
		control_one fresh "$C" "$s"
		rmdir "$C"
	done
}

# enable_probe NAME CONTROL ENABLE-VALUE: a fresh device enabled with this control string.
enable_probe() {
	mkdir "$C" || { rec "mkdir for enable" "failed"; return; }
	[ -n "$2" ] && printf %s "$2" >"$C/control"
	wr "$C/enable" "$3"; local w=$W
	rd "$C/enable"; local r=$R
	state "$C"
	rec "enable-probe $1" "$w ; enable=$r ; $S"
	rmdir "$C"
}

# uio_check PHASE: the UIO device of $D.
uio_check() {
	local u n=
	for u in /sys/class/uio/uio*; do
		[ -e "$u/name" ] || continue
		IFS= read -r n <"$u/name"
		case $n in tcm-user/3/dev*) break ;; esac
		n=
	done
	if [ -z "$n" ]; then rec "$1 uio" "none"; return; fi
	rd "$u/name"; rec "$1 uio name" "$R"
	rd "$u/version"; rec "$1 uio version" "$R"
	rd "$u/maps/map0/name"; rec "$1 uio map0 name" "$R"
	rd "$u/maps/map0/size"; rec "$1 uio map0 size" "$R"
	rd "$u/maps/map0/offset"; rec "$1 uio map0 offset" "$R"
	rd "$u/maps/map0/addr"
	case $R in '"0x0000000000000000\n"') ;; '"'*) R="nonzero" ;; esac
	rec "$1 uio map0 addr" "$R"
	[ -e "$u/maps/map1" ] && rec "$1 uio map1" "present"
	rec "$1 uio parent" "$(basename "$(readlink -f "$u/device")")"
}

# device_reads PHASE: the device's own files.
device_reads() {
	local f
	rd "$D/info"; rec "$1 info" "$R"
	rd "$D/enable"; rec "$1 enable read" "$R"
	rd "$D/control"; rec "$1 control read" "$R"
	rd "$D/udev_path"; rec "$1 udev_path read" "$R"
	rd "$D/alias"; rec "$1 alias read" "$R"
	for f in $(names "$D/pr"); do rd "$D/pr/$f"; rec "$1 pr/$f read" "$R"; done
}

# params_battery: the module parameters, then the global limit's effect on a device.
params_battery() {
	local P=/sys/module/$M/parameters f v def vals
	listing params "$P"
	for f in $(names "$P" $C_PARAMS); do
		rd "$P/$f"; def=$R
		rec "params/$f read" "$R"
		case $f in
		global_max_data_area_mb) vals=(0 -1 1 4 2048 2147483647 2147483648 x "" $'\n' $'8\n' " 8" 8x 0x10 010) ;;
		block_netlink) vals=(1 0 2 -1 256 x "" $'1\n' 0x1 " 1" 1x 0) ;;
		reset_netlink) vals=(0 1 2 -1 256 x "" $'1\n' 0x1) ;;
		*) vals=(0 1 x) ;;
		esac
		for v in "${vals[@]}"; do
			wr "$P/$f" "$v"; rd "$P/$f"
			rec "params/$f w $K" "$W ; $R"
			# Back to the default, so that each check starts from it.
			case $f in
			block_netlink) printf 0 >"$P/$f" 2>/dev/null ;;
			reset_netlink) ;;
			*) unquote "$def" && printf %s "$U" >"$P/$f" 2>/dev/null ;;
			esac
		done
		if [ "$f" = global_max_data_area_mb ]; then
			# A device's max_data_area_mb is clamped to the global limit.
			wr "$P/$f" 4
			mkdir "$C"
			control_one "global=4 fresh" "$C" "max_data_area_mb=8"
			rmdir "$C"
		fi
		rd "$P/$f"; rec "params/$f after" "$R"
	done
}

walk() { # module
	M=$1 T=$ADOUT/$1.txt NCHK=0
	SEEN=()
	: >"$T"
	rmmod tcm_loop target_core_user tcmu_rs 2>/dev/null
	if ! modprobe "$M"; then rec load failed; return; fi
	modprobe tcm_loop
	mkdir -p "$HBA"
	rd "$HBA/hba_info"; rec "hba_info" "$(sed 's/Index: [0-9]*/Index: N/' <<<"$R")"
	rd "$HBA/hba_mode"; rec "hba_mode read" "$R"
	for v in 1 0 x; do wr "$HBA/hba_mode" "$v"; rd "$HBA/hba_mode"; rec "hba_mode w $v" "$W ; $R"; done

	# A new device: its files and defaults.
	mkdir "$D"
	listing dev "$D"
	listing attrib "$D/attrib"
	listing action "$D/action"
	device_reads new
	for f in $(names "$D/attrib" $C_ATTRIB); do rd "$D/attrib/$f"; rec "new attrib/$f read" "$R"; done

	control_battery
	enable_probe "no control" "" 1
	enable_probe "value 11" "dev_size=1048576" 11
	enable_probe "value x1y" "dev_size=1048576" x1y
	enable_probe "value 0" "dev_size=1048576" 0
	enable_probe "value 2" "dev_size=1048576" 2
	enable_probe "value empty" "dev_size=1048576" ""
	enable_probe "hw_block_size 4096" "dev_size=1048576,hw_block_size=4096,hw_max_sectors=1024" 1
	enable_probe "small data area" "dev_size=1048576,max_data_area_mb=1,data_pages_per_blk=256" 1
	enable_probe "ring 2 MiB" "dev_size=1048576,cmd_ring_size_mb=2" 1
	enable_probe "nl_reply_supported 1" "dev_size=1048576,nl_reply_supported=1" 1

	# Configured, not enabled.
	control_one main "$D" "dev_config=attr/diff,dev_size=1048576,max_data_area_mb=8,data_pages_per_blk=4,cmd_ring_size_mb=1"
	device_reads pre
	attr_battery pre
	action_battery pre

	# Enable values, then enabled.
	for v in 0 x "" $'\n' 2 1 1 11; do
		wr "$D/enable" "$v"; rd "$D/enable"
		rec "enable w $K" "$W ; $R"
	done
	device_reads enabled
	uio_check enabled
	attr_battery enabled
	action_battery enabled

	# Exported: a tcm_loop LUN without a nexus (no SCSI command reaches the ring).
	mkdir -p "$CFG/loopback/$WWN/tpgt_1/lun/lun_0"
	ln -s "$D" "$CFG/loopback/$WWN/tpgt_1/lun/lun_0/d"
	device_reads exported
	attr_battery exported
	action_battery exported
	for v in max_data_area_mb=4 max_data_area_mb=8 max_data_area_mb=0 data_pages_per_blk=1 \
		data_pages_per_blk=0 cmd_ring_size_mb=2 cmd_ring_size_mb=1 dev_size=2097152 \
		dev_config=post/x dev_config= hw_block_size=4096 hw_max_sectors=256 \
		nl_reply_supported=1 unknown=1 ""; do
		control_one exported "$D" "$v"
	done
	uio_check exported
	unexport_lun "$WWN" d
	rmdir "$CFG/loopback" 2>/dev/null
	wr "$D/enable" 1; rec "unexported enable w 1" "$W"
	rmdir "$D"; rec "rmdir enabled device" "$?"

	params_battery

	rmdir "$HBA"; rec "rmdir hba" "$?"
	rmmod tcm_loop
	leakcheck "$M" >&2; rec "kmemleak" "$?"
	rmmod "$M"; rec "rmmod" "$?"
	echo "attr-diff: $M: $NCHK checks in $T (${SECONDS}s)"
}

for m in $MODULES; do walk "$m"; done

# Compare the first module's transcript with the others, key by key.
set -- $MODULES
REFM=$1 REF=$ADOUT/$1.txt
shift
[ $# -gt 0 ] || { echo "attr-diff: one module only, nothing to compare"; exit 0; }

# Allowlist: "GLOB # reason" lines.
pats=() reasons=() used=()
while IFS= read -r line; do
	case $line in '' | '#'*) continue ;; esac
	[[ $line == *' # '?* ]] || { echo "attr-diff: allow entry without ' # reason': $line"; exit 1; }
	pats+=("${line%% # *}")
	reasons+=("${line#* # }")
	used+=(0)
done <"$ALLOW"

rc=0
for other in "$@"; do
	OTH=$ADOUT/$other.txt
	# KEY <tab> reference result <tab> other result, for the keys whose results differ.
	awk -v ref="$REF" -v oth="$OTH" '
		function split2(line, kv,   i) { i = index(line, " => "); kv[1] = substr(line, 1, i - 1); kv[2] = substr(line, i + 4) }
		BEGIN {
			while ((getline l < ref) > 0) { split2(l, kv); a[kv[1]] = kv[2]; order[++n] = kv[1] }
			while ((getline l < oth) > 0) { split2(l, kv); b[kv[1]] = kv[2]; if (!(kv[1] in a)) order[++n] = kv[1] }
			for (i = 1; i <= n; i++) {
				k = order[i]
				x = (k in a) ? a[k] : "(missing)"; y = (k in b) ? b[k] : "(missing)"
				if (x != y) print k "\t" x "\t" y
			}
			print n > "/tmp/attr-diff.nkeys"
		}' >"$ADOUT/diff-$other.tsv"
	nchk=$(cat /tmp/attr-diff.nkeys)
	ndiff=0 nbad=0
	: >"$ADOUT/diff-$other.txt"
	while IFS=$'\t' read -r k x y; do
		ndiff=$((ndiff + 1))
		why=
		for i in "${!pats[@]}"; do
			# shellcheck disable=SC2053 # the pattern is a glob
			if [[ $k == ${pats[$i]} ]]; then why=${reasons[$i]}; used[$i]=1; break; fi
		done
		if [ -n "$why" ]; then tag=allowed; else tag=UNLISTED nbad=$((nbad + 1)); fi
		{
			echo "$tag: $k"
			echo "    $REFM: $x"
			echo "    $other: $y"
			[ -n "$why" ] && echo "    reason: $why"
		} >>"$ADOUT/diff-$other.txt"
	done <"$ADOUT/diff-$other.tsv"
	echo "== attr-diff: $REFM vs $other (transcripts in $ADOUT) =="
	cat "$ADOUT/diff-$other.txt"
	if [ "$nbad" != 0 ]; then
		echo "== attr-diff: differences NOT in $ALLOW =="
		grep -A2 '^UNLISTED: ' "$ADOUT/diff-$other.txt" | grep -v '^--$'
	fi
	if [ "$nbad" = 0 ]; then
		echo "attr-diff: $nchk checks, $ndiff differences (all documented)"
	else
		echo "attr-diff: $nchk checks, $ndiff differences, $nbad NOT in $ALLOW"
		rc=1
	fi
done
for i in "${!pats[@]}"; do
	[ "${used[$i]}" = 1 ] || echo "attr-diff: note: allow entry matched nothing: ${pats[$i]}"
done
exit $rc
