#!/bin/sh
# blkbackd's xenbus side with the real xenstore tools playing toolstack and
# frontend: InitWait within a second, probe keys, the claim rule, an error
# node for bad params once the hotplug script has run, and release (fds
# back to baseline) on removal.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 60
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
truncate -s 64M "$TEST_DIR/disk.img"
start_blkbackd
base_fds=$(blkbackd_fds)

info "claimed vbd reaches InitWait within 1 s"
vbd_write 5 51712 "$TEST_DIR/disk.img" /etc/xen/scripts/blkbackd
expect_state 5 51712 2 1 "claimed vbd"
xs_is "$(be_path 5 51712)/max-ring-page-order" 4 || fail "max-ring-page-order is not 4"
xenstore-exists "$(be_path 5 51712)/error" && fail "error node on a good vbd"

info "script=block is left alone"
vbd_write 5 51728 "$TEST_DIR/disk.img" /etc/xen/scripts/block
sleep 1.5
be_state_is 5 51728 1 || fail "unclaimed vbd changed state"
xenstore-exists "$(be_path 5 51728)/max-ring-page-order" && fail "unclaimed vbd got features"

info "a different --script-name is honoured only by basename"
vbd_write 5 51744 "$TEST_DIR/disk.img" blkbackd
expect_state 5 51744 2 1 "bare script name"
vbd_write 5 51760 "$TEST_DIR/disk.img" /etc/xen/scripts/blkbackd-old
sleep 1
be_state_is 5 51760 1 || fail "script blkbackd-old was claimed"

info "bad params: InitWait (so xl runs the hotplug script); once the script says connected, an error node, state kept"
vbd_write 6 51712 "$TEST_DIR/missing.img" /etc/xen/scripts/blkbackd
expect_state 6 51712 2 2 "vbd with a missing target"
xenstore-exists "$(be_path 6 51712)/error" && fail "error node before the hotplug script ran"
xenstore-write "$(be_path 6 51712)/hotplug-status" connected
wait_for 2 xenstore-exists "$(be_path 6 51712)/error" || fail "no error node for missing storage"
xenstore-read "$(be_path 6 51712)/error" | grep -q missing.img || fail "error node does not name the storage"
grep -q 'missing.img' "$TEST_DIR/blkbackd.log" || fail "no log line for bad params"
xenstore-write "$(fe_path 6 51712)/state" 3
sleep 0.5
be_state_is 6 51712 2 || fail "a vbd without storage left InitWait"
xenstore-write "$(fe_path 6 51712)/state" 1

info "empty params"
vbd_write 6 51728 "" /etc/xen/scripts/blkbackd
expect_state 6 51728 2 2 "vbd with empty params"
xenstore-write "$(be_path 6 51728)/hotplug-status" connected
wait_for 2 xenstore-exists "$(be_path 6 51728)/error" || fail "no error node for empty params"
be_state_is 6 51728 2 || fail "empty params changed the state"

info "a frontend path outside the frontend domain is refused"
vbd_write 7 51728 "$TEST_DIR/disk.img" /etc/xen/scripts/blkbackd w disk \
	/local/domain/8/device/vbd/51728
wait_for 2 xenstore-exists "$(be_path 7 51728)/error" || fail "no error node for a foreign frontend path"
be_state_is 7 51728 1 || fail "foreign frontend path changed the state"

info "fixing params and poking the vbd retries the open: error cleared, and it connects"
xenstore-write "$(be_path 6 51712)/params" "$TEST_DIR/disk.img"
xenstore-write "$(be_path 6 51712)/hotplug-status" connected
wait_for 2 sh -c "! xenstore-exists '$(be_path 6 51712)/error'" ||
	fail "error node not cleared after the storage opened"

info "removing backend dirs releases everything"
for v in "5 51712" "5 51728" "5 51744" "5 51760" "6 51712" "6 51728" "7 51728"; do
	set -- $v
	xenstore-rm "$(be_path "$1" "$2")"
	xenstore-rm "$(fe_path "$1" "$2")" 2>/dev/null || true
	xenstore-rm "/local/domain/8/device/vbd/$2" 2>/dev/null || true
done
sleep 1
for v in "5 51712" "6 51712" "5 51744"; do
	set -- $v
	xenstore-exists "$(be_path "$1" "$2")" && fail "blkbackd re-created $(be_path "$1" "$2")"
done
[ "$(grep -c 'released' "$TEST_DIR/blkbackd.log")" -ge 3 ] || fail "no release logged"
wait_for 2 fds_at_most "$base_fds" ||
	fail "blkbackd holds $(blkbackd_fds) fds after release, $base_fds before"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
