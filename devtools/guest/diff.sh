#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Differential scenarios: each seed of DIFF_SEEDS (default 1-12; "A-B" or a list) runs the
# kselftest tcmu_diff on tcmu_rs and on target_core_user, and the two transcripts must be the
# same line for line, except for the deliberate differences of diff.allow. Prints one line
# per seed and a summary; exits 1 on any other difference.
set -uo pipefail
. /tcmu/lib.sh
SEEDS=${DIFF_SEEDS:-1-12}
OUT=/tmp/diff
BIN=/tcmu/selftests/tcmu_diff
[ -x "$BIN" ] || { echo "no $BIN"; exit 1; }
case $SEEDS in
*-*) SEEDS=$(seq "${SEEDS%-*}" "${SEEDS#*-}") ;;
esac
rm -rf "$OUT"
rc=0
for m in tcmu_rs target_core_user; do
	mkdir -p "$OUT/$m"
	modprobe "$m" || { echo "modprobe $m failed"; exit 1; }
	for s in $SEEDS; do
		if ! TCMU_MODULE=$m DIFF_SEED=$s DIFF_OUT="$OUT/$m/$s.txt" "$BIN" >"$OUT/$m/$s.log" 2>&1; then
			echo "seed $s on $m: the scenario failed:"
			grep -E "^#.*(Expected|ring errors|:\[)" "$OUT/$m/$s.log" | head -5
			rc=1
		fi
	done
	rmmod tcm_loop "$m" || { echo "rmmod $m failed"; rc=1; }
done
python3 /tcmu/diff-compare.py /tcmu/diff.allow "$OUT/tcmu_rs" "$OUT/target_core_user" $SEEDS || rc=1
exit $rc
