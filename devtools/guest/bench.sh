#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The benchmark (make bench), in one boot: the same fio matrix through tcm_loop against
#   rs  tcmu_rs + tcmu-rs-handler (null backstore)
#   c   target_core_user + tcmu-rs-handler (null backstore)
#   rd  LIO's rd_mcp ramdisk (no userspace: the limit)
# in BENCH_REPS passes; within a pass, row by row, the three targets back to back, each on a
# fresh device (the order alternating: rs c rd, rd c rs, ...); then one pass of rs and c with
# the ram backstore. Prints one line per fio run:
#   RESULT target=T store=S rep=N row=R iops=X bw_kib=Y p50_us=Z cpu_us_io=C busy_cpu0=P busy_cpu1=Q
#          ctxt_io=K ipi0_io=I ipi1_io=J
# (C: busy CPU time of the whole guest, all CPUs, per I/O; P, Q: % busy of CPU 0 and 1;
# K: context switches per I/O, all CPUs; I, J: IPIs, function call and reschedule, received by
# CPU 0 and CPU 1 per I/O). With two or more CPUs and
# BENCH_PIN=1 (the default) fio runs on CPU 0 and the handler on CPU 1 for every target:
# under TCG, where the scheduler puts them (same vCPU or not) changes a run's IOPS several
# fold, which swamped the differences between targets.
# and, per pass, the data pages tcmu_rs holds (attrib/stats; peak while fio ran, and after
# the pass's last row) and its counters summed over the pass's rows:
#   MEM target=rs store=S rep=N peak_pages=P idle_pages=Q
#   cmds_submitted A qfull_events B handler_wakeups C data_in_deferred D
set -uo pipefail
. /tcmu/lib.sh
RT=${BENCH_RUNTIME:-5}
REPS=${BENCH_REPS:-3}
ROWS=${BENCH_ROWS:-all}
FIO_CPU= HANDLER_CPU=
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
	FIO_CPU="taskset -c 0" HANDLER_CPU="taskset -c 1"
fi
WWN=naa.50014050000000b1
SIZE=$((64 << 20))
# name rw bs iodepth numjobs
MATRIX="randread-4k-qd1-j1 randread 4k 1 1
randread-4k-qd32-j1 randread 4k 32 1
randread-4k-qd1-j2 randread 4k 1 2
randread-4k-qd32-j2 randread 4k 32 2
randwrite-4k-qd1-j1 randwrite 4k 1 1
randwrite-4k-qd32-j1 randwrite 4k 32 1
randwrite-4k-qd1-j2 randwrite 4k 1 2
randwrite-4k-qd32-j2 randwrite 4k 32 2
read-64k-qd8 read 64k 8 1
write-64k-qd8 write 64k 8 1
read-1m-qd8 read 1m 8 1
write-1m-qd8 write 1m 8 1"

D= HBA= HPID= sd=
setup() { # target store
	case $1 in
	rd)
		HBA=$CFG/core/rd_mcp_21
		D=$HBA/b
		mkdir -p "$D"
		echo -n "rd_pages=$((SIZE / 4096))" >"$D/control"
		echo 1 >"$D/enable"
		;;
	rs | c)
		local m=tcmu_rs
		[ "$1" = c ] && m=target_core_user
		modprobe $m || return 1
		HBA=$CFG/core/user_21
		D=$HBA/b
		mkdir -p "$D"
		# The same explicit data area on both modules, large enough for 1M x qd8.
		echo -n "dev_config=$2/b,dev_size=$SIZE,max_data_area_mb=32" >"$D/control"
		echo 1 >"$D/enable"
		$HANDLER_CPU /tcmu/tcmu-rs-handler --wait >/tmp/bench-handler.log 2>&1 &
		HPID=$!
		;;
	esac
	export_lun $WWN "$D" b
	sd=$(wait_disk) || { echo "no disk for $1"; return 1; }
	# The midlayer's default for a LUN: nothing that differs between targets.
	echo none >/sys/block/$sd/queue/scheduler 2>/dev/null || true
}

teardown() { # target
	unexport_lun $WWN b
	rmdir "$D" "$HBA" 2>/dev/null
	if [ -n "$HPID" ]; then
		kill "$HPID" 2>/dev/null
		wait "$HPID" 2>/dev/null
		HPID=
	fi
	rmmod tcm_loop 2>/dev/null
	case $1 in
	rs) rmmod tcmu_rs ;;
	c) rmmod target_core_user ;;
	esac
	return 0
}

# fio_row RW BS IODEPTH NUMJOBS OPTION...: one time-based fio run of a matrix row on /dev/$sd
# (on CPU 0 when pinned).
fio_row() {
	local rw=$1 bs=$2 qd=$3 nj=$4
	shift 4
	$FIO_CPU fio --name=b --filename="/dev/$sd" --allow_file_create=0 --rw="$rw" --bs="$bs" \
		--iodepth="$qd" --numjobs="$nj" --group_reporting --ioengine=libaio --direct=1 \
		--time_based --runtime="$RT" --size=$SIZE "$@"
}

# Busy time so far (user, nice, system, irq, softirq), in clock ticks: all CPUs, CPU 0, CPU 1.
busy_ticks() {
	awk '/^cpu[01 ] / { b[$1] = $2 + $3 + $4 + $7 + $8 }
	     END { print b["cpu"] + 0, b["cpu0"] + 0, b["cpu1"] + 0 }' /proc/stat
}

# Scheduling events so far: context switches (all CPUs), then the inter-processor interrupts
# (function call + reschedule) received by CPU 0 and by CPU 1.
sched_events() {
	awk '/^ctxt / { c = $2 }
	     $1 == "CAL:" || $1 == "RES:" { i0 += $2; i1 += $3 }
	     END { print c + 0, i0 + 0, i1 + 0 }' /proc/stat /proc/interrupts
}

# devstat KEY: the value of KEY in the device's attrib/stats (tcmu_rs; 0 elsewhere) in $STAT.
# Shell builtins only: sampled while fio runs, a fork of sed every 0.5 s would cost CPU time
# (charged to the I/O) and disturb the pinned CPUs under TCG.
devstat() {
	local k v
	STAT=0
	[ -r "$D/attrib/stats" ] || return 0
	while read -r k v; do
		[ "$k" = "$1" ] && { STAT=$v; return 0; }
	done <"$D/attrib/stats"
}

# Per pass (rep) of tcmu_rs: data pages (peak while fio ran, and after the pass's last row)
# and the counters summed over its rows.
declare -A PEAK IDLE CSUB CQF CWAKE CDEF

# run_row TARGET STORE REP ROW: a fresh device for TARGET, one fio run of ROW, teardown.
run_row() {
	local t=$1 store=$2 rep=$3 row=$4 line name rw bs qd nj b0 b1 e0 e1 fpid key=$2.$3
	line=$(grep "^$row " <<<"$MATRIX") || return 1
	read -r name rw bs qd nj <<<"$line"
	modprobe tcm_loop
	setup "$t" "$store" || { echo "fio failed: $t $name (setup)"; teardown "$t"; return 1; }
	read -ra b0 <<<"$(busy_ticks)"
	read -ra e0 <<<"$(sched_events)"
	fio_row "$rw" "$bs" "$qd" "$nj" --ramp_time=1 --lat_percentiles=1 --output-format=json \
		>/tmp/bench.json 2>/tmp/bench.err &
	fpid=$!
	# The same sampling loop for every target (the C module and rd_mcp have no counter).
	while kill -0 $fpid 2>/dev/null; do
		devstat data_pages
		[ "$STAT" -gt "${PEAK[$key]:-0}" ] && PEAK[$key]=$STAT
		sleep 0.5
	done
	# A failed run fails the benchmark (bench-report.py refuses the log): dropping it from the
	# medians would bias them.
	wait $fpid || { echo "fio failed: $t $store $name rep $rep"; cat /tmp/bench.err; rm -f /tmp/bench.json; }
	read -ra b1 <<<"$(busy_ticks)"
	read -ra e1 <<<"$(sched_events)"
	local busy=$((b1[0] - b0[0])) busy_c0=$((b1[1] - b0[1])) busy_c1=$((b1[2] - b0[2]))
	if [ "$t" = rs ]; then
		devstat data_pages; IDLE[$key]=$STAT
		devstat cmds_submitted; CSUB[$key]=$((${CSUB[$key]:-0} + STAT))
		devstat qfull_events; CQF[$key]=$((${CQF[$key]:-0} + STAT))
		devstat handler_wakeups; CWAKE[$key]=$((${CWAKE[$key]:-0} + STAT))
		devstat data_in_deferred; CDEF[$key]=$((${CDEF[$key]:-0} + STAT))
		# All counters of the run, on one line (after fio: not charged to the I/O).
		echo "STATS target=rs store=$store rep=$rep row=$name" $(tr ' \n' '= ' <"$D/attrib/stats")
	fi
	python3 - "$t" "$store" "$rep" "$name" "$busy" "$RT" "$busy_c0" "$busy_c1" \
		$((e1[0] - e0[0])) $((e1[1] - e0[1])) $((e1[2] - e0[2])) <<-'EOF'
	import json, os, sys
	t, store, rep, name = sys.argv[1:5]
	busy, rt, hz = int(sys.argv[5]), int(sys.argv[6]), os.sysconf("SC_CLK_TCK")
	# Busy share of CPU 0 (fio when pinned) and CPU 1 (the handler) over the run.
	c0, c1 = (int(x) * 100 / hz / (rt + 1) for x in sys.argv[7:9])
	try:
	    j = json.load(open("/tmp/bench.json"))["jobs"][0]
	except Exception as e:
	    print(f"RESULT target={t} store={store} rep={rep} row={name} iops=0 bw_kib=0 p50_us=0 error={e}")
	    sys.exit(0)
	d = j["write"] if "write" in name else j["read"]
	p50 = (d.get("lat_ns", {}).get("percentile", {}).get("50.000000") or
	       d["clat_ns"].get("percentile", {}).get("50.000000", 0)) / 1000
	ios = d["iops"] * (rt + 1)
	cpu = busy * 1e6 / hz / ios if ios else 0
	# Context switches and IPIs received by CPU 0 / CPU 1, per I/O.
	ctxt, ipi0, ipi1 = (int(x) / ios if ios else 0 for x in sys.argv[9:12])
	print(f"RESULT target={t} store={store} rep={rep} row={name} iops={d['iops']:.1f} "
	      f"bw_kib={d['bw']} p50_us={p50:.1f} cpu_us_io={cpu:.1f} busy_cpu0={c0:.0f} busy_cpu1={c1:.0f} "
	      f"ctxt_io={ctxt:.2f} ipi0_io={ipi0:.2f} ipi1_io={ipi1:.2f}")
	EOF
	teardown "$t"
}

# mem_lines STORE REP: the MEM and counter lines of a tcmu_rs pass.
mem_lines() {
	local key=$1.$2
	[ -n "${IDLE[$key]:-}" ] || return 0
	echo "MEM target=rs store=$1 rep=$2 peak_pages=${PEAK[$key]:-0} idle_pages=${IDLE[$key]}"
	echo "cmds_submitted ${CSUB[$key]} qfull_events ${CQF[$key]} handler_wakeups ${CWAKE[$key]} data_in_deferred ${CDEF[$key]}"
}

ROWLIST=
while read -r name _; do
	[ "$ROWS" = all ] || [[ " $ROWS " == *" $name "* ]] && ROWLIST+=" $name"
done <<<"$MATRIX"


# BENCH_PROFILE=ROW: instead of the matrix, a system-wide perf profile (cpu-clock, call
# graphs) of row ROW on rs, c and rd: where the time goes, by symbol and by module.
profile() { # row
	local t line name rw bs qd nj
	line=$(grep "^$1 " <<<"$MATRIX") || { echo "no row $1"; return 1; }
	read -r name rw bs qd nj <<<"$line"
	for t in rs c rd; do
		modprobe tcm_loop
		setup "$t" null || { teardown "$t"; return 1; }
		perf record -q -a -g -e cpu-clock -F 2000 -o /tmp/perf-$t.data >/dev/null 2>&1 &
		local ppid=$!
		fio_row "$rw" "$bs" "$qd" "$nj" --output=/tmp/perf-fio-$t.txt >/dev/null 2>&1
		kill -INT $ppid
		wait $ppid
		echo "PROFILE $t $name: $(grep -o 'IOPS=[^,]*' /tmp/perf-fio-$t.txt | head -1)"
		perf report -q -i /tmp/perf-$t.data --no-children --sort dso --stdio 2>/dev/null |
			grep -v '^$' | head -12 | sed "s/^/PROFILE $t dso /"
		perf report -q -i /tmp/perf-$t.data --no-children --sort sym --stdio -g none 2>/dev/null |
			grep -v '^$' | head -40 | sed "s/^/PROFILE $t sym /"
		perf report -q -i /tmp/perf-$t.data --no-children --sort cpu --stdio -g none 2>/dev/null |
			grep -v '^$' | head -4 | sed "s/^/PROFILE $t cpu /"
		local c
		for c in 0 1; do
			perf report -q -i /tmp/perf-$t.data --no-children --cpu $c --sort sym --stdio -g none \
				2>/dev/null | grep -v '^$' | head -25 | sed "s/^/PROFILE $t cpu$c sym /"
		done
		teardown "$t"
	done
}
if [ -n "${BENCH_PROFILE:-}" ]; then
	profile "$BENCH_PROFILE"
	exit
fi

# vm.sh names the accelerator it booted with on the kernel command line.
accel=$(sed -n 's/.*tcmu\.accel=\([a-z]*\).*/\1/p' /proc/cmdline)
echo "BENCH runtime=${RT}s reps=$REPS cpus=$(nproc) accel=${accel:-unknown} pinned=${FIO_CPU:+fio:0,handler:1} interleave=row kernel=$(uname -r)"
# Row by row: the three targets run one row back to back (a fresh device each), so a slow
# spell of the host hits the rs and c runs of a pair alike; the order alternates from row to
# row and pass to pass (rs c rd, rd c rs, ...).
for rep in $(seq "$REPS"); do
	echo "pass $rep (null)"
	n=$rep
	for row in $ROWLIST; do
		if [ $((n % 2)) = 1 ]; then order="rs c rd"; else order="rd c rs"; fi
		n=$((n + 1))
		for t in $order; do
			run_row "$t" null "$rep" "$row"
		done
	done
	mem_lines null "$rep"
done
if [ "${BENCH_RAM:-1}" = 1 ]; then
	echo "pass ram"
	for row in $ROWLIST; do
		for t in rs c; do
			run_row "$t" ram 1 "$row"
		done
	done
	mem_lines ram 1
fi
echo "BENCH done"
