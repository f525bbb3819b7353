#!/bin/sh
# 4096-byte logical sectors (blkbackd --sector-size 4096 on a file):
# sector-size is published as 4096, sectors stay in 512-byte units,
# verified 4 KiB and larger I/O works. And T19 (PROTOCOL.md §5): a guest
# that does not write feature-large-sector-size and sends what a 512-byte
# disk would take (sectors, segments, discards, indirect segments not
# 4 KiB aligned) gets BLKIF_RSP_ERROR for each, one log line each, nothing
# reaches the disk, the vbd keeps serving, blkbackd lives, its fds come
# back when the vbd goes, and another guest's verified workload runs
# through all of it undisturbed.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 180
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd --sector-size 4096
# Another guest's vbd serves a verified workload all along (4 KiB
# requests fit its 4096-byte sectors too).
truncate -s 8M "$TEST_DIR/beside.img"
sim_guest g2 >/dev/null || fail "xensim create g2"
sim_attach g2 xvda "$TEST_DIR/beside.img"
base_fds=$(blkbackd_fds)
beside_start g2 xvda $((60 * SLOW))

truncate -s 16M "$TEST_DIR/disk.img"
g=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk.img"
bf g1 xvda --workload randrw --bs 4k --qd 16 --ops 1000 --verify --flush-every 30 \
	--state "$TEST_DIR/4k.state" || fail "4k workload: $(tail -5 "$TEST_DIR/bf.log")"
be=$(be_path "$g" 51712)
xs_is "$be/sector-size" 4096 || fail "sector-size is $(xenstore-read "$be/sector-size")"
xs_is "$be/sectors" $((16 * 2048)) || fail "sectors must stay in 512-byte units"
xenstore-exists "$(fe_path "$g" 51712)/feature-large-sector-size" &&
	fail "blkfront-sim wrote feature-large-sector-size: this is not T19"
fe_restart "$g" 51712
bf g1 xvda --workload seqwrite --bs 32k --qd 4 --ops 200 --verify \
	--state "$TEST_DIR/4k.state" || fail "32k writes"

# T19: what a frontend that assumes 512-byte sectors sends. The disk must
# not change: a refused write that still reached the file (partly, or by
# a read-modify-write) would.
sum0=$(md5sum <"$TEST_DIR/disk.img")
lines0=$(grep -c 'not aligned to logical sector size' "$TEST_DIR/blkbackd.log" || true)
n=0
t19() {
	local what=$1
	shift
	fe_restart "$g" 51712
	bf g1 xvda --raw "$@" --expect-status -1 ||
		fail "T19 $what: wanted BLKIF_RSP_ERROR: $(tail -3 "$TEST_DIR/bf.log")"
	n=$((n + 1))
}
t19 "read at sector 1" --op 0 --sector 1 --seg new:0:7
t19 "read of 512 bytes" --op 0 --sector 8 --seg new:0:0
t19 "read from first_sect 1" --op 0 --sector 8 --seg new:1:7
t19 "write at sector 3" --op 1 --sector 3 --seg new:0:7
t19 "write of 512 bytes" --op 1 --sector 16 --seg new:0:0
t19 "write of 3.5 KiB" --op 1 --sector 16 --seg new:0:6
t19 "write, second segment misaligned" --op 1 --sector 16 --seg new:0:7 --seg new:4:7
t19 "barrier with misaligned data" --op 2 --sector 5 --seg new:0:7
t19 "flush with misaligned data" --op 3 --sector 24 --seg new:0:3
t19 "indirect write of 2 KiB" --op 6 --indirect-op 1 --sector 32 --nr-segments 1 --seg new:0:3
t19 "indirect read at sector 9" --op 6 --indirect-op 0 --sector 9 --nr-segments 1 --seg new:0:7
t19 "discard at sector 1" --op 5 --sector 1 --discard-sectors 8
t19 "discard of 512 bytes" --op 5 --sector 8 --discard-sectors 1
[ "$(md5sum <"$TEST_DIR/disk.img")" = "$sum0" ] ||
	fail "T19: a refused request changed the disk"
lines=$(grep -c 'not aligned to logical sector size' "$TEST_DIR/blkbackd.log" || true)
[ $((lines - lines0)) -eq $n ] ||
	fail "T19: $n refused requests logged $((lines - lines0)) alignment lines"

info "T19: aligned requests of the same guest still work and read back"
fe_restart "$g" 51712
bf g1 xvda --raw --op 0 --sector 8 --seg new:0:7 --expect-status 0 ||
	fail "aligned read after T19"
fe_restart "$g" 51712
bf g1 xvda --workload readback --verify --state "$TEST_DIR/4k.state" ||
	fail "read-back after T19: $(tail -3 "$TEST_DIR/bf.log")"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
beside_stop "T19 4 KiB sectors without feature-large-sector-size"

info "T19: the vbd releases everything when it goes"
xensim block-detach g1 xvda >>"$TEST_DIR/bf.log" 2>&1 || fail "block-detach g1 xvda"
wait_for $((5 * SLOW)) fds_at_most "$base_fds" ||
	fail "fds after detach: $(blkbackd_fds), before attach: $base_fds"
exit 0
