#!/bin/sh
# T22 with queues: an NBD export whose handshake takes 4 s (nbdkit's delay
# filter, delay-open), served to a guest with 4 and then 16 queues that
# reconnects in a loop. Every ring makes its own NBD connection at every
# connect, so handshakes on the main thread would hold it 4 s per ring.
# Throughout, blkback-ctl status answers within 1 s and another domain's
# new disk reaches InitWait within 2 s; each connect of the slow vbd
# passes its verified workload, and a verified workload on another guest
# does not notice.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 400
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v nbdkit >/dev/null || skip "nbdkit not installed"

CONNECTS=3

start_xensimd
start_blkbackd --max-queues 16
truncate -s 16M "$TEST_DIR/beside.img" "$TEST_DIR/slow.img"
g=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g2 xvda "$TEST_DIR/beside.img"
start_nbdkit slow --filter=delay file "$TEST_DIR/slow.img" delay-open=4
next_dev=51728

# responsive WHAT: the control socket answers within 1 s and a new disk
# of another domain reaches InitWait within 2 s.
responsive() {
	timeout 1 blkback-ctl status >/dev/null ||
		fail "$1: blkback-ctl status did not answer within 1 s"
	truncate -s 1M "$TEST_DIR/other-$next_dev.img"
	vbd_write "$g2" "$next_dev" "$TEST_DIR/other-$next_dev.img" blkbackd
	expect_state "$g2" "$next_dev" 2 2 "$1: another domain's disk"
	xenstore-rm "$(be_path "$g2" "$next_dev")" "$(fe_path "$g2" "$next_dev")"
	next_dev=$((next_dev + 16))
}

# guest_loop DEVID QUEUES: connect, verified I/O, close, CONNECTS times;
# leaves "ok" in $TEST_DIR/guest.result when every round passed.
guest_loop() {
	local i
	rm -f "$TEST_DIR/guest.result"
	for i in $(seq "$CONNECTS"); do
		blkfront-sim --domain g1 --vdev "$1" --queues "$2" --workload randrw \
			--qd $((2 * $2)) --ops 200 --verify --timeout 60 \
			>>"$TEST_DIR/guest.log" 2>&1 || return 1
	done
	echo ok >"$TEST_DIR/guest.result"
}

dev=51712
for nq in 4 16; do
	CASE="T22: an NBD export with a 4 s handshake, $nq queues, reconnecting"
	info "$CASE"
	# As a toolstack would (not the hotplug script: its check of the
	# export is another handshake, the control socket's business).
	vbd_write "$g" $dev "$NBD_URI" blkbackd w
	xenstore-chmod -r "$(be_path "$g" $dev)" n0 "r$g"
	xenstore-chmod -r "$(fe_path "$g" $dev)" "n$g" r0
	xenstore-write "$(be_path "$g" $dev)/hotplug-status" connected
	before=$(grep -c "d$g/$dev: backend Connected ($nq rings" "$TEST_DIR/blkbackd.log" || true)
	beside_start g2 xvda 15
	t0=$(date +%s)
	guest_loop $dev $nq &
	guest=$!
	bg_track $guest
	checks=0
	while kill -0 $guest 2>/dev/null; do
		responsive "$CASE"
		checks=$((checks + 1))
		sleep 0.5
	done
	wait $guest || true
	[ -f "$TEST_DIR/guest.result" ] ||
		fail "$CASE: the guest's connects failed: $(tail -3 "$TEST_DIR/guest.log")"
	connects=$(grep -c "d$g/$dev: backend Connected ($nq rings" "$TEST_DIR/blkbackd.log" || true)
	[ $((connects - before)) -eq "$CONNECTS" ] ||
		fail "$CASE: $((connects - before)) connects with $nq rings, wanted $CONNECTS"
	info "  $CONNECTS connects in $(( $(date +%s) - t0 )) s, $checks checks; $(uptime)"
	beside_check "$CASE"
	xenstore-rm "$(be_path "$g" $dev)" "$(fe_path "$g" $dev)"
	dev=$((dev + 16))
done

kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
