#!/bin/sh
# make bench: blkbackd serving a simulated guest (blkfront-sim) next to fio
# on the same backing file, same block sizes, queue depths and O_DIRECT
# setting; prints a table with the ratios and writes BUILDDIR/bench.json.
# Not part of make check: numbers depend on the machine and its load.
# Usage: bench.sh BUILDDIR. Environment: BENCH_SECONDS (per case, default
# 5), BENCH_FILE (default /var/tmp/blkbackd-bench.img, not tmpfs: it must
# be a real file system for O_DIRECT and io_uring to mean anything),
# BENCH_SIZE_MB (default 1024), BENCH_KEEP=1 keeps the file for next time.
set -eu

build=${1:?usage: bench.sh BUILDDIR}
top_builddir=$(cd "$build" && pwd)
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
export top_builddir top_srcdir
# Daemons, cleanup trap, TEST_DIR: the integration tests' helpers.
. "$top_srcdir/tests/functions.sh"

secs=${BENCH_SECONDS:-5}
file=${BENCH_FILE:-/var/tmp/blkbackd-bench.img}
size_mb=${BENCH_SIZE_MB:-1024}
json_out="$top_builddir/bench.json"
case $secs in ''|*[!0-9]*|0) fail "BENCH_SECONDS must be a positive integer" ;; esac
case $size_mb in ''|*[!0-9]*|0) fail "BENCH_SIZE_MB must be a positive integer" ;; esac
for p in fio jq xenstore-read; do
	command -v $p >/dev/null || fail "$p not found (build-aux/install-deps installs it)"
done
# A watchdog like test_timeout's, but whose sleeps hold no copy of our
# stdout: "make bench | tee" must end when we do, not when a sleep does.
limit=$((secs * 60 + 900)) me=$$
(
	n=0
	while [ $n -lt $limit ]; do
		sleep 1 </dev/null >/dev/null 2>&1
		n=$((n + 1))
	done
	echo "FAIL: bench: timed out after ${limit}s" >&2
	kill -TERM $me
) &
_timer=$!

# The file: created and filled once (real blocks, no holes, so reads hit
# the disk path on both sides), kept when BENCH_KEEP=1 and reused when it
# has the right size.
if [ "$(stat -c %s "$file" 2>/dev/null || echo 0)" != $((size_mb * 1048576)) ]; then
	info "filling $file with $size_mb MiB of random data"
	rm -f "$file"
	dd if=/dev/urandom of="$file" bs=1M count="$size_mb" conv=fsync status=none ||
		fail "cannot create $file"
fi
if [ "${BENCH_KEEP:-0}" != 1 ]; then
	trap 'rc=$?; rm -f "$file"; (exit $rc); _cleanup' EXIT
fi

start_xensimd
start_blkbackd
guest=$(xensim create bench) || fail "xensim create"
be=/local/domain/0/backend/vbd/$guest/51712

# attach MODE: the file as xvda, direct (direct-io-safe: blkbackd opens it
# O_DIRECT) or buffered.
attach() {
	local spec="vdev=xvda, access=rw, script=blkbackd"
	[ "$1" = direct ] && spec="$spec, direct-io-safe"
	XENSIM_SCRIPT_DIR="$top_srcdir/hotplug" \
		xensim block-attach bench "$spec, target=$file" >/dev/null ||
		fail "block-attach ($1) failed"
}
detach() { xensim block-detach bench xvda >/dev/null || fail "block-detach failed"; }

attach direct
indirect=$(xenstore-read "$be/feature-max-indirect-segments" 2>/dev/null || echo 0)
# 128 KiB is 32 segments: it needs indirect requests; without them the
# largest direct request (11 segments, 44 KiB) stands in, on both sides.
if [ "$indirect" -ge 32 ]; then
	seq_bs=128k seq_label="128k seq qd8"
else
	seq_bs=44k seq_label="44k seq qd8 (no indirect)"
fi
bf_cmd="blkfront-sim --domain bench --vdev xvda --workload W --bs BS --qd QD [--ring-order O] [--queues N] [--persistent] --seconds $secs --json"
fio_cmd="fio --name=bench --filename=$file --size=${size_mb}m --ioengine=io_uring --direct=D --rw=RW --bs=BS --iodepth=QD [--numjobs=N] --group_reporting --time_based --runtime=$secs --output-format=json"
cat <<EOF
blkbackd-via-simulator vs fio on the same file, $secs s per case.
  file:     $file ($size_mb MiB, filled with random data)
  xensimd:  xensimd -d --dir \$XENSIM_DIR
  blkbackd: blkbackd -d -v --platform=sim --dir \$XENSIM_DIR   (null rows: --io-engine=null)
  attach:   xensim block-attach bench 'vdev=xvda, access=rw, script=blkbackd[, direct-io-safe], target=$file'
            (direct-io-safe on the "direct" rows: blkbackd opens the file O_DIRECT)
  guest:    $bf_cmd
  fio:      $fio_cmd
            (D=1 on the "direct" rows, 0 on the "buffered" ones: both through the page cache)
  blkbackd advertises feature-max-indirect-segments=$indirect, x86_64 ABI; ring order 2 (128
  entries) for queue depths above 32; "2 queues" spreads the depth over two rings, and fio
  over two jobs of half the depth each
EOF

rows="$TEST_DIR/rows.jsonl"
: >"$rows"

# System calls and wakeups of the daemon, counted by perf over each guest
# run, on every thread of blkbackd (ring threads, their engine's workers,
# the idle main thread; the kernel's io_uring workers not). perf stat -p
# counts only threads that exist when it attaches, and ring threads start
# when the guest connects, so perf attaches once they are there and the
# requests of its window are estimated as the run's IOPS times the window
# (the window starts a little before perf counts: the figures err low by
# a few per cent). A wakeup is a context switch of one of those threads
# (sleeps; under load, preemptions add a few). Counting costs a little
# throughput, the same on every row.
count_ok=0
if command -v perf >/dev/null &&
	perf stat -e raw_syscalls:sys_enter,context-switches -x, -o "$TEST_DIR/perf.probe" \
		-- true 2>/dev/null && ! grep -q 'not counted\|not supported' "$TEST_DIR/perf.probe"; then
	count_ok=1
else
	info "perf cannot count system calls here: the syscall columns stay empty"
fi

# perf_count FILE EVENT: the count perf stat -x, wrote for EVENT, or null.
perf_count() {
	awk -F, -v ev="$2" '$3 == ev && $1 ~ /^[0-9]+$/ { print $1; found = 1 }
		END { if (!found) print "null" }' "$1"
}

nr_threads() { ls "/proc/$BLKBACKD_PID/task" 2>/dev/null | wc -l; }
now_s() { date +%s.%N; }

# run_bf ARGS...: one blkfront-sim run; its JSON on stdout, with system
# calls and wakeups per request when perf counts them.
run_bf() {
	local out="$TEST_DIR/bf.json" pc="$TEST_DIR/perf.txt" bf_pid perf_pid="" i n0
	local sc=null cs=null t0=0 t1=0
	n0=$(nr_threads)
	blkfront-sim --domain bench --vdev xvda --seconds "$secs" --json "$@" >"$out" \
		2>>"$TEST_DIR/bf.log" &
	bf_pid=$!
	if [ $count_ok = 1 ]; then
		i=0
		while [ "$(nr_threads)" -le "$n0" ] && [ $i -lt 100 ]; do
			sleep 0.02
			i=$((i + 1))
		done
		rm -f "$pc"
		t0=$(now_s)
		perf stat -e raw_syscalls:sys_enter,context-switches -x, -o "$pc" \
			-p "$BLKBACKD_PID" 2>/dev/null &
		perf_pid=$!
	fi
	wait "$bf_pid" || fail "blkfront-sim $* failed: $(tail -3 "$TEST_DIR/bf.log")"
	if [ -n "$perf_pid" ]; then
		t1=$(now_s)
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
		sc=$(perf_count "$pc" raw_syscalls:sys_enter)
		cs=$(perf_count "$pc" context-switches)
	fi
	jq -e '.result == "ok" and .errors == 0' "$out" >/dev/null ||
		fail "blkfront-sim $*: $(cat "$out")"
	jq -c --argjson sc "$sc" --argjson cs "$cs" --argjson win "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
		'(.iops * $win) as $ops |
		 {iops, mib_s, lat_p50_us: .lat_us.p50, lat_p99_us: .lat_us.p99,
		  syscalls_per_req: (if $sc == null or $ops <= 0 then null else $sc / $ops end),
		  wakeups_per_req: (if $cs == null or $ops <= 0 then null else $cs / $ops end)}' "$out"
}

# run_fio ARGS... (--rw= first): one fio run; its numbers as JSON on stdout.
run_fio() {
	local out="$TEST_DIR/fio.json" dir=read
	case $1 in *write*) dir=write ;; esac
	fio --name=bench --filename="$file" --size="${size_mb}m" --ioengine=io_uring \
		--time_based --runtime="$secs" --group_reporting --output-format=json "$@" \
		>"$out" 2>"$TEST_DIR/fio.err" || fail "fio $* failed: $(tail -3 "$TEST_DIR/fio.err")"
	jq -e ".jobs[0].error == 0 and .jobs[0].$dir.io_bytes > 0" "$out" >/dev/null ||
		fail "fio $* did no I/O: $(head -c 400 "$out")"
	jq -c ".jobs[0].$dir | {iops, mib_s: (.bw_bytes / 1048576),
		lat_p50_us: (.clat_ns.percentile[\"50.000000\"] / 1000),
		lat_p99_us: (.clat_ns.percentile[\"99.000000\"] / 1000)}" "$out"
}

# row LABEL MODE "BLKFRONT-SIM ARGS" ["FIO ARGS"]: both sides (fio only
# when given) as one row.
row() {
	local label=$1 mode=$2 b f=null
	info "$label, $mode"
	# shellcheck disable=SC2086
	b=$(run_bf $3)
	# shellcheck disable=SC2086
	[ $# -lt 4 ] || f=$(run_fio $4)
	jq -nc --arg case "$label" --arg mode "$mode" --argjson b "$b" --argjson f "$f" \
		'{case: $case, mode: $mode, blkbackd: $b, fio: $f,
		  ratio: (if $f == null or $f.iops == 0 then null else $b.iops / $f.iops end)}' \
		>>"$rows"
}

# (attached direct above, to read what blkbackd advertises)
for rw in read write; do
	for qd in 1 32 128; do
		order=0
		[ $qd -le 32 ] || order=2
		row "4k rand $rw qd$qd" direct \
			"--workload rand$rw --bs 4k --qd $qd --ring-order $order" \
			"--rw=rand$rw --bs=4k --iodepth=$qd --direct=1"
	done
done
row "4k rand read qd32, 2 queues" direct \
	"--workload randread --bs 4k --qd 32 --queues 2" \
	"--rw=randread --bs=4k --iodepth=16 --numjobs=2 --direct=1"
row "4k rand read qd32, persistent" direct \
	"--workload randread --bs 4k --qd 32 --persistent" \
	"--rw=randread --bs=4k --iodepth=32 --direct=1"
row "4k rand write qd32, persistent" direct \
	"--workload randwrite --bs 4k --qd 32 --persistent" \
	"--rw=randwrite --bs=4k --iodepth=32 --direct=1"
for rw in read write; do
	row "$seq_label $rw" direct "--workload seq$rw --bs $seq_bs --qd 8" \
		"--rw=$rw --bs=$seq_bs --iodepth=8 --direct=1"
	if [ "$indirect" -ge 256 ]; then
		row "1m seq $rw qd4" direct "--workload seq$rw --bs 1m --qd 4" \
			"--rw=$rw --bs=1m --iodepth=4 --direct=1"
	fi
done
detach
attach buffered
row "4k rand read qd32" buffered "--workload randread --bs 4k --qd 32" \
	"--rw=randread --bs=4k --iodepth=32 --direct=0"
row "4k rand write qd32" buffered "--workload randwrite --bs 4k --qd 32" \
	"--rw=randwrite --bs=4k --iodepth=32 --direct=0"
row "$seq_label read" buffered "--workload seqread --bs $seq_bs --qd 8" \
	"--rw=read --bs=$seq_bs --iodepth=8 --direct=0"
detach

# Protocol cost alone: the same guest workloads against a storage engine
# that answers every request at once. Ratios are against the direct fio
# rows above (what the real storage path gives).
stop_pid "$BLKBACKD_PID" || fail "blkbackd did not stop"
start_blkbackd --io-engine=null
attach direct
: >"$rows.null"
for r in "4k rand read qd32=--workload randread --bs 4k --qd 32" \
	"4k rand read qd32, persistent=--workload randread --bs 4k --qd 32 --persistent" \
	"4k rand read qd128=--workload randread --bs 4k --qd 128 --ring-order 2" \
	"$seq_label read=--workload seqread --bs $seq_bs --qd 8"; do
	label=${r%%=*}
	info "$label, null engine"
	# shellcheck disable=SC2086
	b=$(run_bf ${r#*=})
	jq -c --arg case "$label" --argjson b "$b" \
		'select(.case == $case and .mode == "direct") |
		 {case, mode: "null engine", blkbackd: $b, fio: .fio,
		  ratio: ($b.iops / .fio.iops)}' "$rows" >>"$rows.null"
done
cat "$rows.null" >>"$rows"
detach
null_ok=1

# ---- instructions per request (callgrind, null engine) ----
# Two runs of the same workload, CG_OPS1 and CG_OPS2 requests, each under a
# fresh blkbackd in callgrind: the difference divided by the difference in
# requests is what one more request costs, start-up and connect cancelled
# out. Deterministic for a given binary and input. memcpy/memmove (the data
# copy, which grant copy does in the simulator) is reported apart.
cg_ops1=${CG_OPS1:-20000}
cg_ops2=${CG_OPS2:-60000}
cg_run() {
	local ops=$1 out="$TEST_DIR/cg.$1" pid
	shift
	rm -f "$TEST_DIR/cg.pid"
	valgrind --tool=callgrind --callgrind-out-file="$out" \
		"$top_builddir/backend/blkbackd" -d --platform=sim --dir "$XENSIM_DIR" \
		--io-engine=null -p "$TEST_DIR/cg.pid" >>"$TEST_DIR/cg.log" 2>&1 &
	pid=$!
	wait_for 60 test -s "$TEST_DIR/cg.pid" || fail "blkbackd under callgrind did not start"
	attach direct
	blkfront-sim --domain bench --vdev xvda --ops "$ops" --json "$@" >"$TEST_DIR/cg.json" \
		2>>"$TEST_DIR/bf.log" || fail "blkfront-sim under callgrind: $(tail -3 "$TEST_DIR/bf.log")"
	jq -e '.result == "ok" and .errors == 0' "$TEST_DIR/cg.json" >/dev/null ||
		fail "callgrind workload: $(cat "$TEST_DIR/cg.json")"
	detach
	kill -TERM "$pid"
	wait "$pid" || fail "blkbackd under callgrind exited $?"
	# total Ir, then Ir in memcpy/memmove, on one line
	callgrind_annotate "$out" 2>/dev/null | awk '
		/PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
		/mem(cpy|move)/ && $1 ~ /^[0-9,]+$/ { gsub(",", "", $1); copy += $1 }
		END { printf "%d %d\n", total, copy }'
}
cg_rows="$TEST_DIR/cg.jsonl"
: >"$cg_rows"
if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
	stop_pid "$BLKBACKD_PID" || fail "blkbackd did not stop"
	for r in "4k rand read qd32=--workload randread --bs 4k --qd 32" \
		"4k rand write qd32=--workload randwrite --bs 4k --qd 32" \
		"4k rand read qd32, persistent=--workload randread --bs 4k --qd 32 --persistent"; do
		label=${r%%=*}
		info "$label: instructions per request under callgrind"
		# shellcheck disable=SC2086
		set -- $(cg_run "$cg_ops1" ${r#*=})
		t1=$1 c1=$2
		# shellcheck disable=SC2086
		set -- $(cg_run "$cg_ops2" ${r#*=})
		t2=$1 c2=$2
		jq -nc --arg case "$label" --argjson t1 "$t1" --argjson t2 "$t2" --argjson c1 "$c1" \
			--argjson c2 "$c2" --argjson n1 "$cg_ops1" --argjson n2 "$cg_ops2" \
			'{case: $case, ops: [$n1, $n2], total_ir: [$t1, $t2],
			  ir_per_request: (($t2 - $t1) / ($n2 - $n1) | round),
			  copy_ir_per_request: (($c2 - $c1) / ($n2 - $n1) | round),
			  ir_per_request_without_copy: ((($t2 - $t1) - ($c2 - $c1)) / ($n2 - $n1) | round)}' \
			>>"$cg_rows"
	done
	start_blkbackd
else
	info "callgrind rows skipped: valgrind not installed"
fi

# ---- scale: 1,000 idle vbds on one daemon ----
# The toolstack's side is written straight into xenstore, 50 vbds to a
# transaction, with hotplug-status already connected: what is timed is
# blkbackd claiming each, reaching InitWait and opening its storage; then
# closing all (online=0, state 5) and forgetting all (dirs removed).
scale_n=${SCALE_VBDS:-1000}
ulimit -n $((scale_n * 2 + 1024)) 2>/dev/null || fail "cannot raise the fd limit for $scale_n vbds"
stop_pid "$BLKBACKD_PID" || fail "blkbackd did not stop"
start_blkbackd
sgst=$(xensim create scale) || fail "xensim create scale"
truncate -s 1M "$TEST_DIR/scale.img"
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$BLKBACKD_PID/status"; }
vbds_in() {
	blkback-ctl list --json | jq --arg st "$1" \
		'[.vbds[] | select(.backend_state == $st and (.target != "" or $st != "InitWait"))] | length'
}
# scale_write KEY VALUE...: pairs written for every vbd, 50 to a call.
scale_write() {
	local i=1 j be fe
	while [ $i -le $scale_n ]; do
		set --
		j=$i
		while [ $j -lt $((i + 50)) ] && [ $j -le $scale_n ]; do
			be=/local/domain/0/backend/vbd/$sgst/$j
			fe=/local/domain/$sgst/device/vbd/$j
			case $scale_op in
			attach)
				set -- "$@" "$be/frontend" "$fe" "$be/params" "$TEST_DIR/scale.img" \
					"$be/script" blkbackd "$be/frontend-id" "$sgst" "$be/online" 1 \
					"$be/state" 1 "$be/dev" "s$j" "$be/mode" r \
					"$be/hotplug-status" connected "$fe/state" 1 "$fe/backend" "$be" ;;
			close)
				set -- "$@" "$be/online" 0 "$be/state" 5 ;;
			esac
			j=$((j + 1))
		done
		xenstore-write "$@" || fail "xenstore-write"
		i=$j
	done
}
rss0=$(rss_kb)
info "scale: $scale_n vbds attached"
t0=$(date +%s%N)
scale_op=attach scale_write
wait_for 300 sh -c "[ \$(blkback-ctl list --json | jq '[.vbds[] | select(.backend_state == \"InitWait\" and .target != \"\")] | length') -eq $scale_n ]" ||
	fail "scale: not all $scale_n vbds reached InitWait with storage open"
t1=$(date +%s%N)
rss1=$(rss_kb)
# blkback-ctl with all of them attached (timed here, not in make check:
# tests/integration/blkback-ctl-scale.sh checks what they print).
tl0=$(date +%s%N)
blkback-ctl list >/dev/null || fail "blkback-ctl list"
tl1=$(date +%s%N)
blkback-ctl list --json >/dev/null || fail "blkback-ctl list --json"
tl2=$(date +%s%N)
blkback-ctl stats --prometheus >/dev/null || fail "blkback-ctl stats"
tl3=$(date +%s%N)
info "scale: $scale_n vbds closed"
scale_op=close scale_write
wait_for 300 sh -c "[ \$(blkback-ctl list --json | jq '[.vbds[] | select(.backend_state == \"Closed\")] | length') -eq $scale_n ]" ||
	fail "scale: not all $scale_n vbds reached Closed"
t2=$(date +%s%N)
xenstore-rm "/local/domain/0/backend/vbd/$sgst" "/local/domain/$sgst/device/vbd" || fail "xenstore-rm"
wait_for 300 sh -c "[ \$(blkback-ctl list --json | jq '.vbds | length') -eq 0 ]" ||
	fail "scale: vbds still listed after their dirs went"
t3=$(date +%s%N)
scale_json=$(jq -nc --argjson n "$scale_n" --argjson a $(( (t1 - t0) / 1000000 )) \
	--argjson c $(( (t2 - tl3) / 1000000 )) --argjson r $(( (t3 - t2) / 1000000 )) \
	--argjson rss0 "$rss0" --argjson rss1 "$rss1" \
	--argjson l $(( (tl1 - tl0) / 1000000 )) --argjson lj $(( (tl2 - tl1) / 1000000 )) \
	--argjson st $(( (tl3 - tl2) / 1000000 )) \
	'{vbds: $n, attach_ms: $a, close_ms: $c, release_ms: $r, list_ms: $l, list_json_ms: $lj,
	  stats_ms: $st, rss_before_kb: $rss0,
	  rss_after_kb: $rss1, rss_per_idle_vbd_kb: (($rss1 - $rss0) / $n * 10 | round / 10)}')

jq -s --arg file "$file" --argjson size_mb "$size_mb" --argjson secs "$secs" \
	--argjson indirect "$indirect" --arg bf "$bf_cmd" --arg fio "$fio_cmd" \
	--slurpfile cg "$cg_rows" --argjson scale "$scale_json" \
	'{file: $file, size_mb: $size_mb, seconds: $secs, max_indirect_segments: $indirect,
	  commands: {blkfront_sim: $bf, fio: $fio}, rows: ., instructions: $cg,
	  scale: $scale}' "$rows" >"$json_out" ||
	fail "cannot write $json_out"

echo
jq -r '["case", "mode", "blkbackd IOPS", "MiB/s", "p99 us", "fio IOPS", "MiB/s",
	 "p99 us", "ratio", "sys/req", "wake/req"],
	(.rows[] | [.case, .mode,
	  (.blkbackd.iops | floor), (.blkbackd.mib_s * 10 | round / 10),
	  (.blkbackd.lat_p99_us | round),
	  (if .fio then (.fio.iops | floor) else "-" end),
	  (if .fio then (.fio.mib_s * 10 | round / 10) else "-" end),
	  (if .fio then (.fio.lat_p99_us | round) else "-" end),
	  (if .ratio then (.ratio * 100 | round / 100) else "-" end),
	  (if .blkbackd.syscalls_per_req then (.blkbackd.syscalls_per_req * 100 | round / 100)
	   else "-" end),
	  (if .blkbackd.wakeups_per_req then (.blkbackd.wakeups_per_req * 100 | round / 100)
	   else "-" end)])
	| @tsv' "$json_out" |
	awk -F '\t' '{ printf "%-34s %-12s %13s %8s %7s %9s %8s %7s %6s %8s %8s\n",
		$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }'
echo
echo "ratio = blkbackd IOPS / fio IOPS (null engine rows: / the direct fio row)"
echo "sys/req, wake/req = blkbackd's system calls and context switches per request, perf"
echo
jq -r 'if (.instructions | length) > 0 then
	"instructions per request, null engine, callgrind (runs of \(.instructions[0].ops[0]) and \(.instructions[0].ops[1]) requests):",
	(.instructions[] | "  \(.case): \(.ir_per_request) in all, \(.copy_ir_per_request) in memcpy/memmove, \(.ir_per_request_without_copy) without the copy")
	else "instructions per request: not measured (no valgrind)" end' "$json_out"
jq -r '.scale | "scale: \(.vbds) vbds on one daemon: attach (claim, InitWait, storage open) \(.attach_ms) ms, close \(.close_ms) ms, release \(.release_ms) ms; blkback-ctl list \(.list_ms) ms, list --json \(.list_json_ms) ms, stats --prometheus \(.stats_ms) ms; RSS \(.rss_before_kb) -> \(.rss_after_kb) KiB, \(.rss_per_idle_vbd_kb) KiB per idle vbd"' "$json_out"
echo "JSON: $json_out"
exit 0
