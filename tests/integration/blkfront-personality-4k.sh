#!/bin/sh
# The 4K rule: the Windows PV drivers write feature-large-sector-size=1 and
# read sectors and every ring field in sector-size units, where blkbackd
# counts 512-byte units. Against a 4096-byte vbd the windows personality
# must be refused before Connected, with the reason in the error node: it
# never sees a size (it would read one eight times too large) and writes
# nothing. A Linux frontend on the same vbd is served, and the log says
# why the vbd has 4096-byte sectors.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd --sector-size 4096
truncate -s 16M "$TEST_DIR/disk.img"
g=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk.img"
be=$(be_path "$g" 51712)
sum0=$(md5sum <"$TEST_DIR/disk.img")

info "windows against sector-size 4096: refused before Connected"
rc=0
bf g1 xvda --personality windows --timeout 3 --workload randwrite --bs 4k --ops 50 --verify ||
	rc=$?
[ $rc = 2 ] || fail "windows exited $rc, wanted 2 (no connection): $(tail -5 "$TEST_DIR/bf.log")"
grep -q "disk of .* bytes (sectors x sector-size" "$TEST_DIR/bf.log" &&
	fail "windows was given a size: $(grep 'disk of' "$TEST_DIR/bf.log")"
grep -q "backend Connected" "$TEST_DIR/blkbackd.log" &&
	fail "the vbd was connected to the windows frontend"
grep -q "feature-large-sector-size.*4096-byte sectors.*8 times too large" "$TEST_DIR/blkbackd.log" ||
	fail "no clear refusal in the log"
[ "$(md5sum <"$TEST_DIR/disk.img")" = "$sum0" ] || fail "the refused frontend changed the disk"

info "the error node says why while the frontend waits"
xenstore-write "$(fe_path "$g" 51712)/state" 1
expect_state "$g" 51712 2 5 "InitWait again"
bf_bg g1 xvda --personality windows --timeout 20 --workload randread --ops 10
win=$!
wait_for $((5 * SLOW)) xenstore-exists "$be/error" || fail "no error node"
xenstore-read "$be/error" | grep -q "feature-large-sector-size" ||
	fail "error node: $(xenstore-read "$be/error")"
be_state_is "$g" 51712 2 || fail "backend state $(xenstore-read "$be/state"), wanted InitWait"
kill -TERM $win
wait $win 2>/dev/null || true

info "a Linux frontend on the same vbd is served, and the log says why 4096"
xenstore-write "$(fe_path "$g" 51712)/state" 6
bf g1 xvda --workload randrw --bs 4k --qd 8 --ops 400 --verify ||
	fail "Linux on the 4096-byte vbd: $(tail -5 "$TEST_DIR/bf.log")"
xenstore-exists "$be/error" && fail "error node left after a good connect: $(xenstore-read "$be/error")"
grep -q "publishing sector-size 4096 (--sector-size 4096)" "$TEST_DIR/blkbackd.log" ||
	fail "no warning saying why the sector size is 4096"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
