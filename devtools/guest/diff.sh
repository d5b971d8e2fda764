#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Differential scenarios: each seed of DIFF_SEEDS (default 1-12; "A-B" or a list) and each
# regression case of diff.cases runs the kselftest tcmu_diff on tcmu_rs and on
# target_core_user, and the two transcripts must be the same line for line, except for the
# deliberate differences of diff.allow. Prints one line per case and a summary; exits 1 on
# any other difference.
#
# A seed that differs is minimised (DIFF_MINIMISE, default 2 seeds): its steps are dropped
# one at a time while the difference stays, and the smallest scenario is printed as a
# line for diff.cases.
set -uo pipefail
. /tcmu/lib.sh
SEEDS=${DIFF_SEEDS:-1-12}
MINIMISE=${DIFF_MINIMISE:-2}
NSTEPS=10		# tcmu_diff's default
OUT=/tmp/diff
BIN=/tcmu/selftests/tcmu_diff
MODULES="tcmu_rs target_core_user"
[ -x "$BIN" ] || { echo "no $BIN"; exit 1; }
case $SEEDS in
*-*) SEEDS=$(seq "${SEEDS%-*}" "${SEEDS#*-}") ;;
esac

# Cases are "SEED" or "SEED/STEPS" (STEPS: a comma-separated list of the steps to run);
# a case's transcripts are named after it with '/' turned into '_'.
CASES=$SEEDS
while read -r seed only _; do
	case $seed in '' | '#'*) continue ;; esac
	CASES="$CASES $seed/$only"
done </tcmu/diff.cases
tag_of() { echo "${1//\//_}"; }

# run_cases DIR CASE...: every case on each module, transcripts under DIR/MODULE.
run_cases() {
	local dir=$1 m c tag rc=0
	shift
	for m in $MODULES; do
		mkdir -p "$dir/$m"
		modprobe "$m" || { echo "modprobe $m failed"; return 1; }
		for c in "$@"; do
			tag=$(tag_of "$c")
			if ! TCMU_MODULE=$m DIFF_SEED=${c%%/*} DIFF_ONLY=$([ "$c" = "${c#*/}" ] || echo "${c#*/}") \
				DIFF_OUT="$dir/$m/$tag.txt" "$BIN" >"$dir/$m/$tag.log" 2>&1; then
				echo "case $c on $m: the scenario failed:"
				grep -E "^#.*(Expected|ring errors|:\[)" "$dir/$m/$tag.log" | head -5
				rc=1
			fi
		done
		rmmod tcm_loop "$m" || { echo "rmmod $m failed"; rc=1; }
	done
	return $rc
}

# compare DIR CASE...: diff-compare.py on the transcripts of DIR.
compare() {
	local dir=$1 c tags=()
	shift
	for c in "$@"; do tags+=("$(tag_of "$c")"); done
	python3 /tcmu/diff-compare.py /tcmu/diff.allow "$dir/tcmu_rs" "$dir/target_core_user" \
		"${tags[@]}"
}

# minimise SEED: drops steps while the difference stays; prints the smallest case.
minimise() {
	local seed=$1 steps i try n=0 keep
	steps=$(seq -s, 0 $((NSTEPS - 1)))
	for i in $(seq 0 $((NSTEPS - 1))); do
		keep=$(echo ",$steps," | sed "s/,$i,/,/; s/^,//; s/,$//")
		[ -n "$keep" ] || continue
		try="$seed/$keep"
		n=$((n + 1))
		run_cases "$OUT/min" "$try" >/dev/null 2>&1
		if ! compare "$OUT/min" "$try" >/dev/null 2>&1; then
			steps=$keep
		fi
	done
	echo "seed $seed minimised in $n tries: the difference stays with steps $steps"
	echo "  for diff.cases: $seed $steps"
	compare "$OUT/min" "$seed/$steps" | grep -v '^diff: '
}

rm -rf "$OUT"
rc=0
# shellcheck disable=SC2086 # CASES is a list of words
run_cases "$OUT" $CASES || rc=1
# shellcheck disable=SC2086
compare "$OUT" $CASES | tee "$OUT/compare.txt"
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
for t in $(sed -n 's/^seed \([0-9]*\): DIFFERENT$/\1/p' "$OUT/compare.txt" | head -n "$MINIMISE"); do
	minimise "$t"
done
exit $rc
