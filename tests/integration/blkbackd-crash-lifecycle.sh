#!/bin/sh
# kill -9 of blkbackd around a vbd's lifecycle rather than its I/O: a
# detach that began while blkbackd was dead completes when it comes back,
# after answering what the dead process had in flight;
# a guest destroyed while blkbackd was dead leaves nothing behind (no vbd,
# no journal, fds at baseline); with recovery-policy fail, exactly what
# was in flight is answered ERROR, and a garbage policy gets an error node;
# kills during attach and during detach converge, and the disk serves a
# verified workload afterwards.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 180
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

# restart: a new blkbackd after the old one is dead and reaped.
restart() {
	rm -f "$TEST_DIR/blkbackd.pid"
	blkbackd -d -v --platform=sim --dir "$XENSIM_DIR" \
		-p "$TEST_DIR/blkbackd.pid" >>"$TEST_DIR/blkbackd.log" 2>&1 &
	BLKBACKD_PID=$!
	_pids="$BLKBACKD_PID $_pids"
	wait_for 10 test -s "$TEST_DIR/blkbackd.pid" || fail "blkbackd did not start"
}

crash() {
	kill -KILL "$BLKBACKD_PID"
	wait "$BLKBACKD_PID" 2>/dev/null || true
}

journals() { ls "$XENSIM_DIR/journal" 2>/dev/null | grep -c '\.journal$' || true; }

start_xensimd
truncate -s 32M "$TEST_DIR/a.img" "$TEST_DIR/b.img"
g1=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
restart
# The baseline is taken with nothing attached yet.
base_fds=$(blkbackd_fds)

info "a detach begun while blkbackd is dead completes when it returns"
sim_attach g1 xvda "$TEST_DIR/a.img"
bf_bg g1 xvda --workload randwrite --qd 32 --seconds 20 --verify --state "$TEST_DIR/a.state"
front=$!
expect_state "$g1" 51712 4 5 "connect"
sleep 0.5
crash
[ "$(journals)" -eq 1 ] || fail "no journal left by the killed blkbackd"
rc=0
xensim block-detach g1 xvda --timeout 10 >"$TEST_DIR/detach.out" 2>&1 &
detach=$!
# blkfront-sim, like a guest whose disk is in use, keeps waiting for
# answers when the backend says Closing (for a second of silence).
sleep 0.3
restart
wait $detach || rc=$?
[ $rc -eq 0 ] || fail "block-detach across the restart: exit $rc: $(cat "$TEST_DIR/detach.out")"
expect_gone() { ! xenstore-exists "$1"; }
expect_gone "$(be_path "$g1" 51712)" || fail "backend dir still there"
rc=0
wait $front || rc=$?
[ $rc -eq 3 ] || fail "frontend across the detach: exit $rc, wanted 3 (closed by the backend)"
# The new process took the rings over to answer what the dead one had in
# flight, and only then closed: nothing is left unanswered.
grep -q '0 unexpected, 0 expected, 0 mismatches, 0 unanswered' "$TEST_DIR/bf.log" ||
	fail "the frontend saw wrong or missing answers: $(grep errors: "$TEST_DIR/bf.log")"
grep -q 'recovered after a restart' "$TEST_DIR/blkbackd.log" ||
	fail "the detaching vbd was not recovered before it closed"
wait_for 3 sh -c "[ \$(ls '$XENSIM_DIR/journal' | grep -c journal) -eq 0 ]" ||
	fail "journal left after the detach completed: $(ls "$XENSIM_DIR/journal")"
info "what was acknowledged before the crash is on disk"
sim_attach g1 xvda "$TEST_DIR/a.img"
bf g1 xvda --workload readback --verify --state "$TEST_DIR/a.state" ||
	fail "read-back after the crash and detach: $(tail -5 "$TEST_DIR/bf.log")"
xensim block-detach g1 xvda || fail "detach after read-back"

info "a guest destroyed while blkbackd is dead leaves nothing behind"
sim_attach g2 xvda "$TEST_DIR/b.img"
bf_bg g2 xvda --workload randrw --qd 16 --seconds 20 --verify
front=$!
expect_state "$g2" 51712 4 5 "connect"
sleep 0.3
crash
kill "$front" 2>/dev/null || true
wait "$front" 2>/dev/null || true
xensim destroy g2 || fail "xensim destroy g2"
restart
wait_for 3 sh -c "[ \$(ls '$XENSIM_DIR/journal' | grep -c journal) -eq 0 ]" ||
	fail "journal of the destroyed guest left: $(ls "$XENSIM_DIR/journal")"
grep -q 'removed 1 journal of vbds no longer served' "$TEST_DIR/blkbackd.log" ||
	fail "the stale journal was not swept at start"
[ "$(blkback-ctl list --json | grep -c '"domid"')" -eq 0 ] || fail "a vbd of the destroyed guest is listed"
wait_for 3 fds_at_most "$base_fds" || fail "blkbackd holds $(blkbackd_fds) fds, $base_fds at start"

info "recovery-policy fail: what was in flight is answered ERROR, nothing issued again"
sim_attach g1 xvdc "$TEST_DIR/a.img"
xenstore-write "$(be_path "$g1" 51744)/recovery-policy" fail
# Written before the frontend connects: the policy is read when rings start.
bf_bg g1 xvdc --workload randwrite --qd 32 --seconds 6 --timeout 20
front=$!
expect_state "$g1" 51744 4 5 "connect"
sleep 0.3
crash
rm -f "$TEST_DIR/blkbackd.pid"
blkbackd -d -v --platform=sim --dir "$XENSIM_DIR" -p "$TEST_DIR/blkbackd.pid" \
	>>"$TEST_DIR/blkbackd.log" 2>&1 &
BLKBACKD_PID=$!
_pids="$BLKBACKD_PID $_pids"
wait_for 10 test -s "$TEST_DIR/blkbackd.pid" || fail "blkbackd did not start"
rc=0
wait $front || rc=$?
failed=$(sed -n 's/.*d'"$g1"'\/51744: recovered after a restart: \([0-9]*\) requests\? failed.*/\1/p' \
	"$TEST_DIR/blkbackd.log" | tail -1)
[ -n "$failed" ] || fail "no recovery with policy fail logged"
seen=$(grep -c 'answered ERROR' "$TEST_DIR/bf.log" || true)
[ "$seen" -eq "$failed" ] ||
	fail "blkbackd failed $failed recovered requests, the frontend saw $seen errors"
[ "$failed" -eq 0 ] || [ $rc -ne 0 ] || fail "the frontend did not report the errors"
grep -q 'not in flight (unknown or duplicate' "$TEST_DIR/bf.log" && fail "a duplicate answer"
blkback-ctl show "$g1" xvdc | grep -q 'policy fail' || fail "show does not say policy fail"
info "a garbage recovery-policy is refused with an error node"
xenstore-write "$(be_path "$g1" 51744)/recovery-policy" sometimes
bf_bg g1 xvdc --workload randread --qd 4 --seconds 1 --timeout 3
front=$!
wait_for 5 xenstore-exists "$(be_path "$g1" 51744)/error" || fail "no error node for a bad policy"
xenstore-read "$(be_path "$g1" 51744)/error" | grep -q 'recovery-policy is "sometimes"' ||
	fail "error node: $(xenstore-read "$(be_path "$g1" 51744)/error")"
kill "$front" 2>/dev/null || true
wait "$front" 2>/dev/null || true
xensim block-detach g1 xvdc --force >/dev/null 2>&1 || true

info "kills during attach and during detach converge"
i=0
while [ $i -lt 6 ]; do
	i=$((i + 1))
	XENSIM_SCRIPT_DIR="$top_srcdir/hotplug" xensim block-attach g1 \
		"vdev=xvdb, access=rw, script=blkbackd, target=$TEST_DIR/a.img" \
		>"$TEST_DIR/attach.out" 2>&1 &
	attach=$!
	sleep "0.0$((i * 15 % 90 + 5))"
	crash
	restart
	wait $attach || true	# either outcome; what follows must work
	if xenstore-exists "$(be_path "$g1" 51728)"; then
		bf g1 xvdb --workload randrw --ops 500 --verify ||
			fail "round $i: a vbd attached across a crash does not serve: $(tail -5 "$TEST_DIR/bf.log")"
		xensim block-detach g1 xvdb >"$TEST_DIR/detach.out" 2>&1 &
		detach=$!
		sleep "0.0$((i * 7 % 50 + 5))"
		crash
		restart
		wait $detach || true
		xenstore-exists "$(be_path "$g1" 51728)" && xensim block-detach g1 xvdb --force
	fi
	! xenstore-exists "$(be_path "$g1" 51728)" || fail "round $i: vbd still there"
done
sim_attach g1 xvdb "$TEST_DIR/a.img"
bf g1 xvdb --workload randrw --seconds 1 --verify || fail "final workload: $(tail -5 "$TEST_DIR/bf.log")"
xensim block-detach g1 xvdb || fail "final detach"
wait_for 3 sh -c "[ \$(ls '$XENSIM_DIR/journal' | grep -c journal) -eq 0 ]" ||
	fail "journals left at the end: $(ls "$XENSIM_DIR/journal")"
wait_for 3 fds_at_most "$base_fds" || fail "blkbackd holds $(blkbackd_fds) fds at the end, $base_fds at start"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
