#!/bin/sh
# Closing: SIGTERM mid-run closes the device properly (frontend and backend
# Closed, nothing left mapped) and a new run reconnects; the --state map
# carries across runs, and a corrupted sector on disk makes the read-back
# fail (the verification can fail); a detach with I/O in flight ends the
# run with status 3 and every acknowledged write is there after re-attach;
# a run past its --time-limit exits 4 and says so.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkfront-lib.sh"
test_timeout 180
bf_require
command -v xenstore-read >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 16M "$TEST_DIR/disk.img"
dom=$(bf_guest g1)
bf_attach "$dom" xvda "$TEST_DIR/disk.img"
fe=/local/domain/$dom/device/vbd/51712
be=$(xenstore-read "$fe/backend")
st="$TEST_DIR/close.state"

info "SIGTERM mid-run: clean close, report, exit 0"
blkfront-sim --json --domain "$dom" --vdev xvda --workload randwrite --qd 32 \
	--seconds 60 --verify --state "$st" --size 4M \
	>"$TEST_DIR/term.json" 2>"$TEST_DIR/term.log" &
pid=$!
bg_track $pid
wait_for 10 xs_is "$fe/state" 4 || fail "frontend never connected"
sleep 1
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$TEST_DIR/term.log" >&2; fail "SIGTERM run exited $rc"; }
bf_expect term write '>' 100
bf_expect term unanswered == 0
xs_is "$fe/state" 6 || fail "frontend state is $(xenstore-read "$fe/state"), not Closed"
s=$(xenstore-read "$be/state")
[ "$s" = 6 ] || [ "$s" = 2 ] || fail "backend state $s after the frontend closed"

info "reconnect after Closed; the saved map verifies the SIGTERM run's writes"
bf_run rb1 0 --domain "$dom" --vdev xvda --workload readback --verify --state "$st" \
	--size 4M
bf_verified rb1
bf_expect rb1 verified_sectors '>' 1000

info "a corrupted sector fails the read-back"
dd if=/dev/zero of="$TEST_DIR/disk.img" bs=4096 count=16 conv=notrunc 2>/dev/null
cp "$st" "$st.saved"
bf_run rb2 1 --domain "$dom" --vdev xvda --workload readback --verify --state "$st" \
	--size 4M
bf_expect rb2 mismatches '>' 0
grep -q 'verify: sector' "$TEST_DIR/rb2.log" || fail "mismatch not described"

info "detach with I/O in flight"
cp "$st.saved" "$st"
bf_run heal 0 --domain "$dom" --vdev xvda --workload seqwrite --bs 4k --ops 16 \
	--verify --state "$st" --size 4M --no-readback
blkfront-sim --json --domain "$dom" --vdev xvda --workload randwrite --qd 32 \
	--seconds 60 --verify --state "$st" --size 4M \
	>"$TEST_DIR/det.json" 2>"$TEST_DIR/det.log" &
pid=$!
bg_track $pid
wait_for 10 xs_is "$fe/state" 4 || fail "frontend never connected"
sleep 1
xensim block-detach "$dom" xvda >>"$TEST_DIR/xensim.log" 2>&1 ||
	fail "block-detach with I/O in flight failed: $(tail -n 3 "$TEST_DIR/xensim.log")"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 3 ] || { cat "$TEST_DIR/det.json" "$TEST_DIR/det.log" >&2;
	fail "detached run exited $rc, expected 3 (closed by the backend)"; }
[ "$(bf_str det result)" = closed ] || fail "detached run's result is not 'closed'"
bf_expect det write '>' 100
bf_expect det mismatches == 0

info "re-attach: every acknowledged write is on disk"
bf_attach "$dom" xvda "$TEST_DIR/disk.img"
bf_run rb3 0 --domain "$dom" --vdev xvda --workload readback --verify --state "$st" \
	--size 4M
bf_verified rb3
bf_expect rb3 verified_sectors '>' 1000

info "--time-limit 0 overrides BLKFRONT_SIM_TIME_LIMIT"
BLKFRONT_SIM_TIME_LIMIT=0.5 bf_run tl0 0 --domain "$dom" --vdev xvda \
	--workload randread --qd 4 --seconds 2 --size 4M --time-limit 0
bf_ok tl0

info "BLKFRONT_SIM_TIME_LIMIT: a run of 60 s gives up after 1 s, exit 4, says why"
rc=0
BLKFRONT_SIM_TIME_LIMIT=1 blkfront-sim --domain "$dom" --vdev xvda \
	--workload randread --qd 4 --seconds 60 --size 4M >"$TEST_DIR/tl.log" 2>&1 || rc=$?
[ "$rc" -eq 4 ] || { cat "$TEST_DIR/tl.log" >&2; fail "time-limited run exited $rc, expected 4"; }
grep -q 'time limit of 1 s passed' "$TEST_DIR/tl.log" ||
	fail "no time-limit message: $(tail -n 3 "$TEST_DIR/tl.log")"
exit 0
