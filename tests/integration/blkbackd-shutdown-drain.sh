#!/bin/sh
# SIGTERM with reads in flight on several vbds: every ring is stopped at
# once and the daemon waits for all of them together, so its exit takes
# about one request's time, not one per vbd. Four vbds, each on an NBD
# export whose reads take 2 s (nbdkit's delay filter), each with a guest
# reading at queue depth 4: blkbackd must be gone within 4 s of SIGTERM,
# where draining one vbd after the other took 2 s or more per vbd.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v nbdkit >/dev/null || skip "nbdkit not installed"

BOUND_S=4
start_xensimd
start_blkbackd
for n in 1 2 3 4; do
	truncate -s 16M "$TEST_DIR/d$n.img"
	start_nbdkit "d$n" --filter=delay file "$TEST_DIR/d$n.img" delay-read=2
	g=$(sim_guest "g$n") || fail "xensim create g$n"
	vbd_write "$g" 51712 "$NBD_URI" blkbackd r
	xenstore-chmod -r "$(be_path "$g" 51712)" n0 "r$g"
	xenstore-chmod -r "$(fe_path "$g" 51712)" "n$g" r0
	xenstore-write "$(be_path "$g" 51712)/hotplug-status" connected
	# It fails once blkbackd is gone; only its requests in flight matter.
	blkfront-sim --domain "g$n" --vdev 51712 --workload randread --qd 4 --seconds 60 \
		--timeout 30 >>"$TEST_DIR/guests.log" 2>&1 &
	bg_track $!
	eval "g$n=$g"
done
for n in 1 2 3 4; do
	eval "g=\$g$n"
	expect_state "$g" 51712 4 $((20 * SLOW)) "guest $n connects"
done
# Reads in flight on every ring (each takes 2 s at the server).
sleep 3
t0=$(date +%s%N)
kill -TERM "$BLKBACKD_PID"
wait_for $((30 * SLOW)) sh -c "! kill -0 $BLKBACKD_PID" || fail "blkbackd did not exit within 30 s"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
info "exit $ms ms after SIGTERM with 4 vbds reading; $(uptime)"
grep -q "in-flight I/O did not finish" "$TEST_DIR/blkbackd.log" &&
	fail "a vbd's reads did not finish within the drain bound"
! plain_run || [ "$ms" -le $((BOUND_S * 1000)) ] ||
	fail "blkbackd took $ms ms to exit, bound $((BOUND_S * 1000)) ms"
exit 0
