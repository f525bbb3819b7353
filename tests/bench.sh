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
limit=$((secs * 40 + 300)) me=$$
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
	seq_bs=128k seq_label="128k seq read qd8"
else
	seq_bs=44k seq_label="44k seq read qd8 (no indirect)"
fi
null_ok=1
blkbackd --io-engine=null --help >/dev/null 2>&1 || null_ok=0

bf_cmd="blkfront-sim --domain bench --vdev xvda --workload W --bs BS --qd QD --seconds $secs --json"
fio_cmd="fio --name=bench --filename=$file --size=${size_mb}m --ioengine=io_uring --direct=D --rw=RW --bs=BS --iodepth=QD --time_based --runtime=$secs --output-format=json"
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
  W/RW/BS/QD per row: randread/randread/4k/32, randwrite/randwrite/4k/32, seqread/read/$seq_bs/8
  blkbackd advertises feature-max-indirect-segments=$indirect; ring order 0 (32 entries), x86_64 ABI
EOF

rows="$TEST_DIR/rows.jsonl"
: >"$rows"

# run_bf WORKLOAD BS QD: one blkfront-sim run; its JSON on stdout.
run_bf() {
	local out="$TEST_DIR/bf.json"
	blkfront-sim --domain bench --vdev xvda --workload "$1" --bs "$2" --qd "$3" \
		--seconds "$secs" --json >"$out" 2>>"$TEST_DIR/bf.log" ||
		fail "blkfront-sim $1 $2 qd $3 failed: $(tail -3 "$TEST_DIR/bf.log")"
	jq -e '.result == "ok" and .errors == 0' "$out" >/dev/null ||
		fail "blkfront-sim $1 $2 qd $3: $(cat "$out")"
	jq -c '{iops, mib_s, lat_p50_us: .lat_us.p50, lat_p99_us: .lat_us.p99}' "$out"
}

# run_fio RW BS QD DIRECT: one fio run; its numbers as JSON on stdout.
run_fio() {
	local out="$TEST_DIR/fio.json" dir=read
	case $1 in *write) dir=write ;; esac
	fio --name=bench --filename="$file" --size="${size_mb}m" --ioengine=io_uring \
		--direct="$4" --rw="$1" --bs="$2" --iodepth="$3" --time_based \
		--runtime="$secs" --output-format=json >"$out" 2>"$TEST_DIR/fio.err" ||
		fail "fio $1 $2 qd $3 failed: $(tail -3 "$TEST_DIR/fio.err")"
	jq -e ".jobs[0].error == 0 and .jobs[0].$dir.io_bytes > 0" "$out" >/dev/null ||
		fail "fio $1 $2 qd $3 did no I/O: $(head -c 400 "$out")"
	jq -c ".jobs[0].$dir | {iops, mib_s: (.bw_bytes / 1048576),
		lat_p50_us: (.clat_ns.percentile[\"50.000000\"] / 1000),
		lat_p99_us: (.clat_ns.percentile[\"99.000000\"] / 1000)}" "$out"
}

# row LABEL MODE WORKLOAD FIO_RW BS QD [FIO_DIRECT]: run both sides (fio
# only when FIO_DIRECT is given) and record a row.
row() {
	local label=$1 mode=$2 b f=null
	info "$label, $mode"
	b=$(run_bf "$3" "$5" "$6")
	[ $# -lt 7 ] || f=$(run_fio "$4" "$5" "$6" "$7")
	jq -nc --arg case "$label" --arg mode "$mode" --argjson b "$b" --argjson f "$f" \
		'{case: $case, mode: $mode, blkbackd: $b, fio: $f,
		  ratio: (if $f == null or $f.iops == 0 then null else $b.iops / $f.iops end)}' \
		>>"$rows"
}

row "4k rand read qd32" direct randread randread 4k 32 1
row "4k rand write qd32" direct randwrite randwrite 4k 32 1
row "$seq_label" direct seqread read "$seq_bs" 8 1
detach
attach buffered
row "4k rand read qd32" buffered randread randread 4k 32 0
row "4k rand write qd32" buffered randwrite randwrite 4k 32 0
row "$seq_label" buffered seqread read "$seq_bs" 8 0
detach

# Protocol cost alone: the same guest workloads against a storage engine
# that answers every request at once. Ratios are against the direct fio
# rows above (what the real storage path gives).
if [ $null_ok = 1 ]; then
	stop_pid "$BLKBACKD_PID" || fail "blkbackd did not stop"
	start_blkbackd --io-engine=null
	attach direct
	for r in "4k rand read qd32:randread:4k:32" "$seq_label:seqread:$seq_bs:8"; do
		label=${r%%:*}
		set -- $(echo "${r#*:}" | tr : ' ')
		info "$label, null engine"
		b=$(run_bf "$1" "$2" "$3")
		jq -c --arg case "$label" --argjson b "$b" \
			'select(.case == $case and .mode == "direct") |
			 {case, mode: "null engine", blkbackd: $b, fio: .fio,
			  ratio: ($b.iops / .fio.iops)}' "$rows" >>"$rows.null"
	done
	cat "$rows.null" >>"$rows"
	detach
else
	info "null-engine rows skipped: blkbackd refuses --io-engine=null"
fi

jq -s --arg file "$file" --argjson size_mb "$size_mb" --argjson secs "$secs" \
	--argjson indirect "$indirect" --argjson null_ok "$null_ok" \
	--arg bf "$bf_cmd" --arg fio "$fio_cmd" \
	'{file: $file, size_mb: $size_mb, seconds: $secs,
	  max_indirect_segments: $indirect, null_engine: ($null_ok == 1),
	  commands: {blkfront_sim: $bf, fio: $fio}, rows: .}' "$rows" >"$json_out" ||
	fail "cannot write $json_out"

echo
jq -r '["case", "mode", "blkbackd IOPS", "MiB/s", "p99 us", "fio IOPS", "MiB/s",
	 "p99 us", "ratio"],
	(.rows[] | [.case, .mode,
	  (.blkbackd.iops | floor), (.blkbackd.mib_s * 10 | round / 10),
	  (.blkbackd.lat_p99_us | round),
	  (if .fio then (.fio.iops | floor) else "-" end),
	  (if .fio then (.fio.mib_s * 10 | round / 10) else "-" end),
	  (if .fio then (.fio.lat_p99_us | round) else "-" end),
	  (if .ratio then (.ratio * 100 | round / 100) else "-" end)])
	| @tsv' "$json_out" |
	awk -F '\t' '{ printf "%-32s %-12s %13s %8s %7s %9s %8s %7s %6s\n",
		$1, $2, $3, $4, $5, $6, $7, $8, $9 }'
echo
echo "ratio = blkbackd IOPS / fio IOPS (null engine rows: / the direct fio row)"
echo "JSON: $json_out"
exit 0
