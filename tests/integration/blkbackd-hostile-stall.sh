#!/bin/sh
# T16, storage that never completes: a disk on an NBD export whose server
# (the real nbdkit, with its pause filter) stops answering. A full ring of
# requests waits on it; blkbackd must not spin, must keep answering its
# control socket and serving another guest's vbd, and must never tear the
# ring down under those requests: a detach, graceful or forced, leaves the
# vbd Closing until the storage answers, then finishes. Resumed storage
# completes every request with its data verified; a server that dies
# instead fails them with error responses, none left unanswered.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v socat >/dev/null || skip "socat not installed"
command -v jq >/dev/null || skip "jq not installed"
export XENSIM_SCRIPT_DIR="$top_srcdir/hotplug"

start_xensimd
# Requests on a lost connection wait 2 s for it to come back (case 4).
start_blkbackd --nbd-reconnect=2
truncate -s 64M "$TEST_DIR/disk.img"
truncate -s 32M "$TEST_DIR/beside.img"
pause="$TEST_DIR/pause.sock"
start_nbdkit stall --filter=pause file "$TEST_DIR/disk.img" pause-control="$pause"
g1=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g2 xvda "$TEST_DIR/beside.img"
be=$(be_path "$g1" 51712)

# inflight DOMID DEVID: requests blkbackd holds for the vbd now.
inflight() {
	blkback-ctl show "$1" "$2" --json | jq -e .vbd.inflight
}
inflight_is() { [ "$(inflight "$1" "$2" 2>/dev/null)" = "$3" ]; }
storage_errors() {
	blkback-ctl stats --json |
		jq --argjson d "$1" '[.vbds[] | select(.domid == $d) | .total.errors.storage] | add // 0'
}

# stalled_start: a full ring (32) of verified random I/O on g1's export,
# which is paused first; returns once all 32 wait on the storage.
stalled_start() {
	nbd_pause "$pause" p || fail "the pause filter did not pause"
	blkfront-sim --domain g1 --vdev xvda --workload randrw --bs 4k --qd 32 --seconds 1 \
		--timeout 120 --verify --state "$TEST_DIR/verify.state" --json \
		>"$TEST_DIR/stalled.json" 2>>"$TEST_DIR/bf.log" &
	STALLED_PID=$!
	bg_track "$STALLED_PID"
	wait_for $((10 * SLOW)) inflight_is "$g1" 51712 32 ||
		fail "the ring did not fill: $(inflight "$g1" 51712) in flight"
}

fds0=$(blkbackd_fds)
sim_attach g1 xvda "$NBD_URI"

info "case 1: a full ring waits on paused storage, then it resumes"
stalled_start
t0=$(blkbackd_cpu_ticks)
sleep 2
t1=$(blkbackd_cpu_ticks)
info "blkbackd used $((t1 - t0)) clock ticks in 2 s with 32 requests stalled"
if plain_run && [ $((t1 - t0)) -gt 20 ]; then
	fail "blkbackd spins on stalled storage: $((t1 - t0)) ticks in 2 s (bound 20, 10% of a core)"
fi
blkback-ctl list >/dev/null || fail "the control socket does not answer while storage stalls"
inflight_is "$g1" 51712 32 || fail "requests answered while the storage is paused"
beside_start g2 xvda 4
beside_check "stalled storage on another vbd"
inflight_is "$g1" 51712 32 || fail "requests answered while the storage is paused"
nbd_pause "$pause" r || fail "the pause filter did not resume"
wait "$STALLED_PID" || fail "the stalled workload failed after resume: $(cat "$TEST_DIR/stalled.json")"
[ "$(jq .errors "$TEST_DIR/stalled.json")" = 0 ] || fail "errors after resume"
[ "$(jq .mismatches "$TEST_DIR/stalled.json")" = 0 ] || fail "mismatches after resume"
expect_state "$g1" 51712 6 5 "close after the stalled workload"
fe_restart "$g1" 51712

info "case 2: a toolstack detach waits for stalled requests"
stalled_start
rc=0
xensim block-detach g1 xvda --timeout 3 2>"$TEST_DIR/detach.err" || rc=$?
[ $rc -ne 0 ] || fail "block-detach reported success with 32 requests stalled"
grep -q 'did not reach Closed' "$TEST_DIR/detach.err" || fail "detach: $(cat "$TEST_DIR/detach.err")"
be_state_is "$g1" 51712 5 || fail "backend state $(xenstore-read "$be/state") while I/O stalls, wanted Closing (5)"
inflight_is "$g1" 51712 32 || fail "the stalled requests were dropped by the detach"
errs0=$(storage_errors "$g1")
nbd_pause "$pause" r || fail "the pause filter did not resume"
expect_state "$g1" 51712 6 $((10 * SLOW)) "Closed once the storage answered"
inflight_is "$g1" 51712 0 || fail "in flight after Closed: $(inflight "$g1" 51712)"
[ "$(storage_errors "$g1")" = "$errs0" ] || fail "stalled requests answered with storage errors"
wait "$STALLED_PID" || true	# it gave up waiting for the closing backend
xensim block-detach g1 xvda || fail "the second block-detach failed"
wait_for $((5 * SLOW)) fds_at_most $fds0 ||
	fail "fds after the detach: $(blkbackd_fds), $fds0 before the attach"

info "case 3: a forced detach removes the dirs under stalled requests"
sim_attach g1 xvda "$NBD_URI"
stalled_start
rc=0
xensim block-detach g1 xvda --force --timeout 2 2>"$TEST_DIR/detach.err" || rc=$?
[ $rc -ne 0 ] || fail "forced block-detach reported success with I/O stalled"
xenstore-exists "$be" && fail "the forced detach left $be"
sleep 1
kill -0 "$BLKBACKD_PID" || fail "blkbackd died when the dir went away under stalled I/O"
blkback-ctl stats --json | jq -e --argjson d "$g1" '[.vbds[] | select(.domid == $d)] | length == 1' >/dev/null ||
	fail "the vbd (32 requests in flight) was released before they finished"
nbd_pause "$pause" r || fail "the pause filter did not resume"
wait_for $((10 * SLOW)) sh -c "! blkback-ctl list | awk '\$2 == $g1' | grep -q ." ||
	fail "the vbd was not released after its requests finished"
wait "$STALLED_PID" || true
wait_for $((5 * SLOW)) fds_at_most $fds0 ||
	fail "fds after the forced detach: $(blkbackd_fds), $fds0 before the attach"

info "case 4: the server dies with requests stalled"
sim_attach g1 xvda "$NBD_URI"
stalled_start
kill -KILL "$NBDKIT_PID"
rc=0
wait "$STALLED_PID" || rc=$?
s="$TEST_DIR/stalled.json"
info "after the kill: $(jq -c '{errors, mismatches, unanswered}' "$s")"
[ "$(jq .errors "$s")" -ge 32 ] || fail "the stalled requests were not failed"
[ "$(jq .unanswered "$s")" = 0 ] || fail "requests left unanswered when the server died"
[ "$(jq .mismatches "$s")" = 0 ] || fail "mismatches"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died with its server"
xensim block-detach g1 xvda || fail "detach after the server died"
wait_for $((5 * SLOW)) fds_at_most $fds0 ||
	fail "fds after the last detach: $(blkbackd_fds), $fds0 before the attach"
info "ok"
