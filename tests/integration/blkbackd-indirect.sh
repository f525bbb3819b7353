#!/bin/sh
# INDIRECT requests (feature-max-indirect-segments): verified 64k, 128k
# and 1m workloads in both ABIs, more 1 MiB requests in flight than the
# ring's indirect buffer pool holds (64 MiB / 4 MiB = 16 at 1024 segments), every malformed indirect header or
# segment page answered with its status, and the option that changes or
# disables the feature.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 300
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 64M "$TEST_DIR/disk.img"
truncate -s 8M "$TEST_DIR/ro.img"
g=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk.img"
sim_attach g1 xvdb "$TEST_DIR/ro.img" r
be=$(be_path "$g" 51712)
xs_is "$be/feature-max-indirect-segments" 256 ||
	fail "feature-max-indirect-segments is not the default 256"
state="--state $TEST_DIR/xvda.state"

# work ARGS...: a verified workload on xvda after a reconnect.
work() {
	be_state_is "$g" 51712 6 && fe_restart "$g" 51712
	bf g1 xvda --verify $state "$@" ||
		fail "workload $*: $(tail -5 "$TEST_DIR/bf.log")"
}

for abi in x86_64 x86_32; do
	for bs in 64k 128k 1m; do
		info "verified randrw --indirect, $abi, bs $bs"
		work --abi $abi --workload randrw --indirect --bs $bs --qd 8 --ops 200
	done
done
info "indirect and direct requests mixed on one ring"
work --workload randrw --bs 20k --qd 16 --ops 400 --flush-every 13 --barrier-every 29

# raw VDEV STATUS WHAT ARGS...: one crafted request on a fresh connection.
raw() {
	local vdev=$1 want=$2 what=$3
	shift 3
	case $vdev in xvda) fe_restart "$g" 51712 ;; xvdb) fe_restart "$g" 51728 ;; esac
	: >"$TEST_DIR/raw.log"
	blkfront-sim --domain g1 --vdev "$vdev" --raw "$@" --expect-status "$want" \
		>"$TEST_DIR/raw.log" 2>&1 ||
		fail "$what: wanted status $want: $(tail -3 "$TEST_DIR/raw.log")"
	cat "$TEST_DIR/raw.log" >>"$TEST_DIR/bf.log"
}
# refused_for REASON: blkbackd's latest refusal gives REASON.
refused_for() {
	grep 'refused op' "$TEST_DIR/blkbackd.log" | tail -1 | grep -q "$1" ||
		fail "last refusal is not for '$1': $(grep 'refused op' "$TEST_DIR/blkbackd.log" | tail -1)"
}
# segs N SPEC: N times --seg SPEC.
segs() {
	local i=0
	while [ $i -lt "$1" ]; do
		printf -- '--seg %s ' "$2"
		i=$((i + 1))
	done
}

raw xvda 0 "indirect read, 1 segment" --op 6 --indirect-op 0 --nr-segments 1 --seg-auto
grep -q '^response: .* op=0 status=0 ' "$TEST_DIR/raw.log" ||
	fail "an indirect read is not answered with operation READ (as Linux blkback does)"
raw xvda 0 "indirect write, 256 segments" --op 6 --indirect-op 1 --sector 2048 \
	--nr-segments 256 --seg-auto
grep -q '^response: .* op=1 status=0 ' "$TEST_DIR/raw.log" ||
	fail "an indirect write is not answered with operation WRITE"
raw xvda -1 "indirect, 0 segments" --op 6 --indirect-op 0 --nr-segments 0 --indirect-pages 1
refused_for 'bad indirect segment count'
raw xvda -1 "indirect, 257 segments (max 256)" --op 6 --indirect-op 0 --nr-segments 257 --seg-auto
raw xvda -1 "indirect_op WRITE_BARRIER" --op 6 --indirect-op 2 --nr-segments 1 --seg-auto
raw xvda -1 "indirect_op FLUSH" --op 6 --indirect-op 3 --nr-segments 1 --seg-auto
raw xvda -1 "indirect_op INDIRECT" --op 6 --indirect-op 6 --nr-segments 1 --seg-auto
grep -q '^response: .* op=6 status=-1 ' "$TEST_DIR/raw.log" ||
	fail "a bad indirect_op is not echoed in the response"
raw xvda -1 "indirect page gref not granted" --op 6 --indirect-op 0 --nr-segments 1 \
	--indirect-pages 0 --indirect-gref 99999
refused_for 'bad indirect page grant'
raw xvda -1 "indirect page gref 0" --op 6 --indirect-op 1 --nr-segments 1 \
	--indirect-pages 0 --indirect-gref 0
raw xvda -1 "indirect segment first_sect > last_sect" --op 6 --indirect-op 0 \
	--nr-segments 3 --seg new:0:7 --seg new:0:7 --seg new:5:2
raw xvda -1 "indirect segment last_sect 8" --op 6 --indirect-op 1 --nr-segments 2 \
	--seg new:0:7 --seg new:0:8
raw xvda -1 "indirect segment data gref not granted" --op 6 --indirect-op 1 \
	--nr-segments 2 --seg new:0:7 --seg 99999:0:7
raw xvda -1 "indirect range past the end" --op 6 --indirect-op 0 \
	--sector $((64 * 2048 - 8)) --nr-segments 2 --seg-auto
raw xvdb -1 "indirect write to a read-only disk" --op 6 --indirect-op 1 --nr-segments 1 --seg-auto
raw xvdb 0 "indirect read from a read-only disk" --op 6 --indirect-op 0 --nr-segments 1 --seg-auto

info "the vbd still serves verified indirect I/O"
# The raw writes changed blocks behind the verify state: start a new one.
state="--state $TEST_DIR/xvda-after.state"
work --workload randrw --indirect --bs 128k --qd 8 --ops 200
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
grep -q 'refused op 6' "$TEST_DIR/blkbackd.log" || fail "indirect refusals not logged"

info "--max-indirect-segments 1024: several indirect pages per request"
stop_pid "$BLKBACKD_PID" || fail "blkbackd did not stop"
# -v again: debug lines say how often the indirect pool ran dry.
start_blkbackd -v --max-indirect-segments 1024
raw xvda 0 "indirect read, 600 segments on 2 pages" --op 6 --indirect-op 0 \
	--nr-segments 600 --seg-auto
xs_is "$be/feature-max-indirect-segments" 1024 ||
	fail "feature-max-indirect-segments not republished as 1024"
raw xvda -1 "600 segments, second indirect page missing" --op 6 --indirect-op 0 \
	--nr-segments 600 --indirect-pages 1 --seg-auto
refused_for 'bad indirect page grant'
raw xvda -1 "first_sect > last_sect in the second indirect page" --op 6 --indirect-op 0 \
	--nr-segments 513 $(segs 512 new:0:7) --seg new:5:2
refused_for 'segment first_sect > last_sect'
raw xvda -1 "1025 segments (max 1024)" --op 6 --indirect-op 0 --nr-segments 1025 --seg-auto
refused_for 'bad indirect segment count'
work --ring-order 1 --workload randrw --bs 4m --qd 4 --ops 40
info "1 MiB requests: more in flight than the ring's 16 indirect buffers"
work --ring-order 1 --workload seqwrite --bs 1m --qd 40 --ops 300
work --ring-order 1 --workload randrw --bs 1m --qd 40 --ops 300
grep -q 'thread done .*, [1-9][0-9]* waits for an indirect buffer' "$TEST_DIR/blkbackd.log" ||
	fail "the indirect pool never ran dry: the wait path went untested"

info "--max-indirect-segments 0: not advertised, INDIRECT is an unknown op"
stop_pid "$BLKBACKD_PID" || fail "blkbackd did not stop"
start_blkbackd --max-indirect-segments 0
raw xvda -2 "indirect not advertised" --op 6 --indirect-op 0 --nr-segments 1 --seg-auto
grep -q '^response: .* op=6 status=-2 ' "$TEST_DIR/raw.log" ||
	fail "an unadvertised INDIRECT is not echoed as op 6"
if xenstore-exists "$be/feature-max-indirect-segments"; then
	fail "feature-max-indirect-segments still there with --max-indirect-segments 0"
fi
work --workload randrw --bs 44k --qd 8 --ops 200

info "bad option values are refused"
blkbackd --platform=sim --dir "$XENSIM_DIR" -t --max-indirect-segments 4096 \
	>/dev/null 2>&1 || fail "--max-indirect-segments 4096 refused"
for bad in -1 4097 x ""; do
	if blkbackd --platform=sim --dir "$XENSIM_DIR" -t --max-indirect-segments "$bad" \
		>/dev/null 2>"$TEST_DIR/opt.err"; then
		fail "--max-indirect-segments '$bad' accepted"
	fi
	grep -q 'bad --max-indirect-segments' "$TEST_DIR/opt.err" ||
		fail "--max-indirect-segments '$bad': $(cat "$TEST_DIR/opt.err")"
done
exit 0
