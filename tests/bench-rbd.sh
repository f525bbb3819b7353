#!/bin/sh
# make bench-rbd (part of make bench): blkbackd serving a simulated guest
# from a Ceph RBD image on the one-node test cluster (tests/ceph-lib.sh),
# next to fio's rbd engine on the same image with the same block sizes and
# queue depths; prints the rows with their ratios and writes
# BUILDDIR/bench-rbd.json. Both sides go through librbd on one loopback
# cluster: the ratio is what the blkif path costs on top of librbd.
# Usage: bench-rbd.sh BUILDDIR. Environment: BENCH_SECONDS (per case,
# default 5). Skips (exit 77) where the cluster cannot start.
set -eu

build=${1:?usage: bench-rbd.sh BUILDDIR}
top_builddir=$(cd "$build" && pwd)
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
export top_builddir top_srcdir
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/ceph-lib.sh"

secs=${BENCH_SECONDS:-5}
case $secs in ''|*[!0-9]*|0) fail "BENCH_SECONDS must be a positive integer" ;; esac
json_out="$top_builddir/bench-rbd.json"
for p in fio jq xenstore-read; do
	command -v $p >/dev/null || fail "$p not found (build-aux/install-deps installs it)"
done
fio --enghelp 2>/dev/null | grep -qw rbd || skip "fio has no rbd engine"
grep -q "define HAVE_RBD 1" "$top_builddir/config.h" ||
	skip "blkbackd is built without librbd (configure found no librbd-dev)"
test_timeout $((secs * 20 + 300))

ceph_start
rbd_cmd create rbd/bench --size 1G || fail "rbd create"
# Written in full once, so that reads on both sides hit data.
rbd_cmd bench --io-type write --io-pattern seq --io-size 4M --io-total 1G rbd/bench \
	>/dev/null 2>&1 || fail "filling the image"

start_xensimd
start_blkbackd
guest=$(xensim create bench) || fail "xensim create"
XENSIM_SCRIPT_DIR="$top_srcdir/hotplug" xensim block-attach bench \
	"vdev=xvda, access=rw, script=blkbackd, target=rbd:rbd/bench:conf=$CEPH_CONF" >/dev/null ||
	fail "block-attach failed"

cat <<EOF
blkbackd-via-simulator on rbd:rbd/bench vs fio's rbd engine on the same image, $secs s per case.
  cluster:  one mon, one mgr, one bluestore OSD on 127.0.0.1 (tests/ceph-lib.sh), image of 1 GiB
  guest:    blkfront-sim --domain bench --vdev xvda --workload W --bs BS --qd QD --seconds $secs --json
  fio:      fio --ioengine=rbd --clientname=admin --pool=rbd --rbdname=bench --rw=RW --bs=BS
            --iodepth=QD --time_based --runtime=$secs (rbd cache off in the cluster's conf, as blkbackd has it)
EOF

rows="$TEST_DIR/rows.jsonl"
: >"$rows"
run_bf() {
	local out="$TEST_DIR/bf.json"
	blkfront-sim --domain bench --vdev xvda --seconds "$secs" --json "$@" >"$out" \
		2>>"$TEST_DIR/bf.log" || fail "blkfront-sim $* failed: $(tail -3 "$TEST_DIR/bf.log")"
	jq -e '.result == "ok" and .errors == 0' "$out" >/dev/null || fail "blkfront-sim $*: $(cat "$out")"
	jq -c '{iops, mib_s, lat_p50_us: .lat_us.p50, lat_p99_us: .lat_us.p99}' "$out"
}
run_fio() {
	local out="$TEST_DIR/fio.json" dir=read
	case $1 in *write*) dir=write ;; esac
	fio --name=bench --ioengine=rbd --clientname=admin --pool=rbd \
		--rbdname=bench --time_based --runtime="$secs" --group_reporting \
		--output-format=json "$@" >"$out" 2>"$TEST_DIR/fio.err" ||
		fail "fio $* failed: $(tail -3 "$TEST_DIR/fio.err")"
	jq -e ".jobs[0].error == 0 and .jobs[0].$dir.io_bytes > 0" "$out" >/dev/null ||
		fail "fio $* did no I/O: $(head -c 400 "$out")"
	jq -c ".jobs[0].$dir | {iops, mib_s: (.bw_bytes / 1048576),
		lat_p50_us: (.clat_ns.percentile[\"50.000000\"] / 1000),
		lat_p99_us: (.clat_ns.percentile[\"99.000000\"] / 1000)}" "$out"
}
row() {
	local b f
	info "$1"
	# shellcheck disable=SC2086
	b=$(run_bf $2)
	# shellcheck disable=SC2086
	f=$(run_fio $3)
	jq -nc --arg case "$1" --argjson b "$b" --argjson f "$f" \
		'{case: $case, blkbackd: $b, fio: $f,
		  ratio: (if $f.iops == 0 then null else $b.iops / $f.iops end)}' >>"$rows"
}

row "4k rand read qd32" "--workload randread --bs 4k --qd 32" "--rw=randread --bs=4k --iodepth=32"
row "4k rand write qd32" "--workload randwrite --bs 4k --qd 32" "--rw=randwrite --bs=4k --iodepth=32"
row "4k rand read qd1" "--workload randread --bs 4k --qd 1" "--rw=randread --bs=4k --iodepth=1"
row "128k seq write qd8" "--workload seqwrite --bs 128k --qd 8 --indirect" \
	"--rw=write --bs=128k --iodepth=8"
row "128k seq read qd8" "--workload seqread --bs 128k --qd 8 --indirect" \
	"--rw=read --bs=128k --iodepth=8"

jq -s '.' "$rows" >"$json_out"
printf '%-22s %12s %12s %8s\n' case blkbackd_iops fio_rbd_iops ratio
jq -r '.[] | [.case, (.blkbackd.iops | floor), (.fio.iops | floor), (.ratio * 100 | floor / 100)] | @tsv' \
	"$json_out" | while IFS="$(printf '\t')" read -r c b f r; do
	printf '%-22s %12s %12s %8s\n' "$c" "$b" "$f" "$r"
done
info "uptime: $(uptime)"
info "written $json_out"
