#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# make bench: builds the kernel and the handler, runs devtools/guest/bench.sh in one boot and
# writes the medians and ratios to BENCHMARKS.md (and the raw lines next to it in the run
# directory). BENCH_RUNTIME (s per fio run, default 5), BENCH_REPS (default 3), BENCH_ROWS, BENCH_PIN (1:
# fio on CPU 0, the handler on CPU 1).
. "$(dirname "$0")/lib.sh"
RT=${BENCH_RUNTIME:-5}
REPS=${BENCH_REPS:-3}
ROWS=${BENCH_ROWS:-all}
bash "$TOP/devtools/kernel.sh" build || exit 1
(cd "$TOP/tools/tcmu" && cargo build --release -q -p tcmu-handler) || exit 1
OUT=$(mktemp -d)
slow=1
[ "${FLAVOUR:-base}" = base ] || slow=4
log "bench: ${REPS} passes per target, ${RT} s per fio run (about $(((REPS * 3 + 2) * 12 * (RT + 4) / 60)) min)"
bash "$TOP/devtools/vm.sh" --out "$OUT" --timeout $(((REPS * 3 + 2) * 12 * (RT + 6) * slow + 300)) \
	--file "$TOP/tools/tcmu/target/release/tcmu-rs-handler:/tcmu/tcmu-rs-handler" \
	-- "BENCH_RUNTIME=$RT BENCH_REPS=$REPS BENCH_ROWS='$ROWS' BENCH_RAM=${BENCH_RAM:-1} BENCH_PIN=${BENCH_PIN:-1} BENCH_PROFILE=${BENCH_PROFILE:-} bash /tcmu/bench.sh" | tee "$OUT/bench.log" |
	grep -E "^(pass|RESULT|MEM|STATS|BENCH|PROFILE|fio failed)" || true
[ -z "${BENCH_PROFILE:-}" ] || exit 0
grep -q "^BENCH done" "$OUT/bench.log" || die "bench: the guest run did not finish (log: $OUT/bench.log)"
# Only a run of the whole matrix replaces BENCHMARKS.md; a partial one (BENCH_ROWS) writes
# its report next to the raw log.
REPORT=$TOP/BENCHMARKS.md
[ "$ROWS" = all ] || REPORT=$OUT/BENCHMARKS.md
python3 "$TOP/devtools/bench-report.py" "$OUT/bench.log" "$REPORT" || exit 1
log "bench: $REPORT written (raw log: $OUT/bench.log)"
