#!/bin/sh
# blkbackd stopped with SIGTERM under a verified workload and started
# again: the new process takes the connected vbd over (re-maps the ring in
# attach form, rebinds the event channel, never flips the state), and the
# frontend finishes with every answer correct and every read verified; a
# disk grown meanwhile is published by the new process.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 32M "$TEST_DIR/disk.img"
g=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk.img"
bf_bg g1 xvda --workload randrw --qd 32 --seconds 6 --verify
front=$!
expect_state "$g" 51712 4 5 "connect"
sleep 1.5
first=$BLKBACKD_PID
kill -TERM "$first"
rc=0
wait "$first" || rc=$?
[ $rc -eq 0 ] || fail "blkbackd exit $rc on SIGTERM with a connected vbd"
be_state_is "$g" 51712 4 || fail "SIGTERM changed the backend state"
# The disk grows while no blkbackd runs: the one that takes over writes
# nothing else at takeover, but publishes the new size at once, without
# its resize timer (off here), which a closing frontend may never see.
truncate -s 48M "$TEST_DIR/disk.img"
start_blkbackd --resize-interval 0
rc=0
wait $front || rc=$?
[ $rc -eq 0 ] || fail "workload across the restart: exit $rc: $(tail -5 "$TEST_DIR/bf.log")"
grep -q 'taking over a connected vbd' "$TEST_DIR/blkbackd.log" || fail "no takeover logged"
wait_for 5 xs_is "$(be_path "$g" 51712)/sectors" 98304 ||
	fail "growth during the restart not published: sectors $(xenstore-read "$(be_path "$g" 51712)/sectors")"
[ "$(grep -c 'backend InitWait' "$TEST_DIR/blkbackd.log")" -eq 1 ] ||
	fail "the restarted blkbackd flipped the state to InitWait"
xensim block-detach g1 xvda || fail "detach after takeover"
exit 0
