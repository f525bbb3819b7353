#!/bin/sh
# blkbackd's close and reconnect paths before any ring exists, with the
# real xenstore tools playing toolstack and frontend: frontend Closing
# answered with Closing and held until the frontend is Closed (as Linux
# blkback does), frontend Closed, toolstack online=0 + Closing, frontend dir deleted, reconnect
# after Closed, Closing->Connected abuse, and garbage ring keys refused
# with an error node while the state stays InitWait.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 60
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
truncate -s 16M "$TEST_DIR/disk.img"
start_blkbackd
S=/etc/xen/scripts/blkbackd

info "frontend Closing -> backend Closing until the frontend is Closed, then reconnect"
vbd_write 5 1 "$TEST_DIR/disk.img" $S
expect_state 5 1 2 1 "attach"
xenstore-write "$(fe_path 5 1)/state" 5
expect_state 5 1 5 1 "frontend Closing"
sleep 0.5
be_state_is 5 1 5 || fail "backend left Closing before the frontend was Closed"
xenstore-write "$(fe_path 5 1)/state" 6
expect_state 5 1 6 1 "frontend Closed"
sleep 0.3
be_state_is 5 1 6 || fail "frontend Closed moved the backend out of Closed"
xenstore-write "$(fe_path 5 1)/state" 1
expect_state 5 1 2 1 "reconnect after Closed"

info "frontend Closed without Closing"
vbd_write 5 2 "$TEST_DIR/disk.img" $S
expect_state 5 2 2 1 "attach"
xenstore-write "$(fe_path 5 2)/state" 6
expect_state 5 2 6 1 "frontend Closed"

info "toolstack online=0 + state=5 -> Closed, and no reconnect while offline"
vbd_write 5 3 "$TEST_DIR/disk.img" $S
expect_state 5 3 2 1 "attach"
xenstore-write "$(be_path 5 3)/online" 0 "$(be_path 5 3)/state" 5
expect_state 5 3 6 1 "toolstack close"
xenstore-write "$(fe_path 5 3)/state" 1
sleep 0.5
be_state_is 5 3 6 || fail "offline vbd reconnected"

info "frontend dir deleted -> Closed"
vbd_write 5 4 "$TEST_DIR/disk.img" $S
expect_state 5 4 2 1 "attach"
xenstore-rm "$(fe_path 5 4)"
expect_state 5 4 6 1 "frontend dir deleted"

info "toolstack detach of a vbd whose storage never opened"
vbd_write 5 5 "$TEST_DIR/nonexistent.img" $S
expect_state 5 5 2 1 "attach of a missing target"
xenstore-write "$(be_path 5 5)/hotplug-status" connected
wait_for 2 xenstore-exists "$(be_path 5 5)/error" || fail "no error node"
xenstore-write "$(be_path 5 5)/online" 0 "$(be_path 5 5)/state" 5
expect_state 5 5 6 1 "detach of a failed vbd"

info "Closing -> Connected abuse does not reopen the vbd; Closed ends it"
vbd_write 5 6 "$TEST_DIR/disk.img" $S
expect_state 5 6 2 1 "attach"
xenstore-write "$(fe_path 5 6)/state" 5
expect_state 5 6 5 1 "frontend Closing"
xenstore-write "$(be_path 5 6)/hotplug-status" connected "$(fe_path 5 6)/state" 4
sleep 0.5
be_state_is 5 6 5 || fail "a frontend claiming Connected moved a closing vbd"
xenstore-write "$(fe_path 5 6)/state" 6
expect_state 5 6 6 1 "frontend Closed after the abuse"
xenstore-write "$(fe_path 5 6)/state" 4
sleep 0.5
be_state_is 5 6 6 || fail "a frontend claiming Connected reopened a closed vbd"

info "garbage ring keys: error node, InitWait kept"
vbd_write 5 7 "$TEST_DIR/disk.img" $S
expect_state 5 7 2 1 "attach"
fe=$(fe_path 5 7)
be=$(be_path 5 7)
xenstore-write "$be/hotplug-status" connected
for bad in "ring-ref=abc" "ring-ref=99999999999" "ring-page-order=5" \
	   "ring-page-order=-1" "protocol=sparc-abi" "event-channel=x"; do
	key=${bad%%=*} val=${bad#*=}
	xenstore-rm "$be/error" 2>/dev/null || true
	xenstore-write "$fe/ring-ref" 8 "$fe/event-channel" 3 "$fe/protocol" x86_64-abi
	xenstore-rm "$fe/ring-page-order" 2>/dev/null || true
	xenstore-write -- "$fe/$key" "$val" "$fe/state" 3
	wait_for 2 xenstore-exists "$be/error" || fail "no error node for $bad"
	be_state_is 5 7 2 || fail "$bad moved the backend out of InitWait"
	info "  $bad: $(xenstore-read "$be/error")"
	xenstore-write "$fe/state" 1
done
grep -q 'unknown frontend protocol' "$TEST_DIR/blkbackd.log" || fail "unknown protocol not logged"

info "a grant the frontend never made: error node, InitWait kept"
xenstore-rm "$be/error" 2>/dev/null || true
xenstore-write "$fe/ring-ref" 8 "$fe/event-channel" 3 "$fe/protocol" x86_64-abi "$fe/state" 3
wait_for 2 xenstore-exists "$be/error" || fail "no error node for an unmappable ring"
be_state_is 5 7 2 || fail "unmappable ring moved the backend out of InitWait"

info "removal in every state releases"
for d in 1 2 3 4 5 6 7; do
	xenstore-rm "$(be_path 5 $d)"
done
sleep 1
[ "$(grep -c ': released' "$TEST_DIR/blkbackd.log")" -eq 7 ] ||
	fail "expected 7 releases, log has $(grep -c ': released' "$TEST_DIR/blkbackd.log")"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"

info "a restart while Closing is held keeps waiting for the frontend's Closed"
vbd_write 5 8 "$TEST_DIR/disk.img" $S
expect_state 5 8 2 1 "attach"
xenstore-write "$(fe_path 5 8)/state" 5
expect_state 5 8 5 1 "frontend Closing"
first=$BLKBACKD_PID
kill -TERM "$first"
rc=0
wait "$first" || rc=$?
[ $rc -eq 0 ] || fail "blkbackd exit $rc on SIGTERM"
start_blkbackd
sleep 1
be_state_is 5 8 5 || fail "a new blkbackd moved a held Closing to $(xenstore-read "$(be_path 5 8)/state")"
xenstore-write "$(fe_path 5 8)/state" 6
expect_state 5 8 6 2 "frontend Closed after the restart"
xenstore-write "$(fe_path 5 8)/state" 1
expect_state 5 8 2 2 "reconnect after the restart"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
