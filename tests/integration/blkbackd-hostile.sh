#!/bin/sh
# Hostile single requests through blkfront-sim's raw mode (PROTOCOL.md §5
# T4-T9): each gets the right status, the vbd keeps working, blkbackd lives,
# and another guest's verified workload runs through them undisturbed.
# Every raw run is a full connect/close cycle, so this also exercises
# reconnect after Closed many times.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 8M "$TEST_DIR/disk.img"
truncate -s 8M "$TEST_DIR/ro.img"
g=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk.img"
sim_attach g1 xvdb "$TEST_DIR/ro.img" r
end=$((8 * 2048))
# Another guest's vbd serves a verified workload all along.
truncate -s 8M "$TEST_DIR/beside.img"
sim_guest g2 >/dev/null || fail "xensim create g2"
sim_attach g2 xvda "$TEST_DIR/beside.img"
beside_start g2 xvda 8

# raw VDEV STATUS WHAT ARGS...
raw() {
	local vdev=$1 want=$2 what=$3
	shift 3
	case $vdev in xvda) fe_restart "$g" 51712 ;; xvdb) fe_restart "$g" 51728 ;; esac
	bf g1 "$vdev" --raw "$@" --expect-status "$want" ||
		fail "$what: wanted status $want: $(tail -3 "$TEST_DIR/bf.log")"
}

raw xvda 0 "good read" --op 0 --sector 0 --seg new:0:7
raw xvda 0 "good write" --op 1 --sector 8 --seg new:0:7
raw xvda 0 "flush without data" --op 3
raw xvda 0 "barrier without data" --op 2
raw xvda -1 "read with 0 segments" --op 0 --sector 0 --nr-segments 0
raw xvda -1 "read with 12 segments" --op 0 --sector 0 --nr-segments 12 --seg-auto
raw xvda -1 "read with 255 segments" --op 0 --sector 0 --nr-segments 255 --seg-auto
raw xvda -1 "first_sect > last_sect" --op 0 --sector 0 --seg new:5:2
raw xvda -1 "last_sect 8" --op 0 --sector 0 --seg new:0:8
raw xvda -1 "past the end" --op 0 --sector $end --seg new:0:0
raw xvda -1 "straddling the end" --op 0 --sector $((end - 4)) --seg new:0:7
raw xvda -1 "sector wraps" --op 0 --sector 18446744073709551615 --seg new:0:7
raw xvda -2 "reserved op 4" --op 4 --seg new:0:7
raw xvda -2 "unknown op 200" --op 200 --seg new:0:7
raw xvda -1 "indirect_op is not READ or WRITE" --op 6 --indirect-op 3 --nr-segments 1 --seg new:0:7
raw xvda -1 "bad grant ref" --op 0 --sector 0 --seg 99999:0:7
raw xvda -1 "discard past the end" --op 5 --sector 0 --discard-sectors $((end + 8))
raw xvda -1 "discard wraps" --op 5 --sector 8 --discard-sectors 18446744073709551615
raw xvdb -1 "write to a read-only disk" --op 1 --sector 0 --seg new:0:7
raw xvdb 0 "read from a read-only disk" --op 0 --sector 0 --seg new:0:7

info "the vbd still serves verified I/O"
fe_restart "$g" 51712
bf g1 xvda --workload randrw --qd 16 --ops 500 --verify || fail "workload after hostile requests"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
beside_check "hostile raw requests"
grep -q 'refused op' "$TEST_DIR/blkbackd.log" || fail "refusals not logged"
exit 0
