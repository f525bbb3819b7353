#!/bin/sh
# Live upgrade under load: blkback-ctl upgrade, three times, while two
# guests run verified workloads (one with two queues and a multi-page
# ring). Each time the daemon drains, keeps its journals and execs its own
# binary under the same pid; the new program takes every vbd over. The
# guests see zero errors, zero mismatches, no unknown or duplicate ids;
# fds do not pile up across upgrades; a binary that is gone is refused
# with a clear error and the daemon keeps serving.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

# A copy of the binary we may replace and remove, as a package upgrade does.
cp "$top_builddir/backend/blkbackd" "$TEST_DIR/blkbackd"
start_xensimd
rm -f "$TEST_DIR/blkbackd.pid"
"$TEST_DIR/blkbackd" -d -v --platform=sim --dir "$XENSIM_DIR" -p "$TEST_DIR/blkbackd.pid" \
	>>"$TEST_DIR/blkbackd.log" 2>&1 &
BLKBACKD_PID=$!
_pids="$BLKBACKD_PID $_pids"
wait_for 10 test -s "$TEST_DIR/blkbackd.pid" || fail "blkbackd did not start"

truncate -s 64M "$TEST_DIR/a.img" "$TEST_DIR/b.img"
g1=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g1 xvda "$TEST_DIR/a.img"
sim_attach g2 xvda "$TEST_DIR/b.img"
blkfront-sim --domain g1 --vdev xvda --workload randrw --qd 32 --flush-every 32 \
	--seconds 12 --timeout 20 --verify >"$TEST_DIR/f1.log" 2>&1 &
f1=$!
bg_track $f1
blkfront-sim --domain g2 --vdev xvda --ring-order 2 --queues 2 --workload randwrite \
	--qd 64 --seconds 12 --timeout 20 --verify >"$TEST_DIR/f2.log" 2>&1 &
f2=$!
bg_track $f2
expect_state "$g1" 51712 4 5 "g1 connect"
expect_state "$g2" 51712 4 5 "g2 connect"
sleep 1
base_fds=$(blkbackd_fds)

i=0
while [ $i -lt 3 ]; do
	i=$((i + 1))
	old=$(blkback-ctl status --json | sed -n 's/.*"instance": *"\([0-9a-f]*\)".*/\1/p')
	[ -n "$old" ] || fail "round $i: status has no instance"
	blkback-ctl upgrade --timeout 10 >"$TEST_DIR/upgrade.out" 2>&1 ||
		fail "round $i: upgrade failed: $(cat "$TEST_DIR/upgrade.out")"
	grep -q "^upgraded: blkbackd .*pid $BLKBACKD_PID, instance " "$TEST_DIR/upgrade.out" ||
		fail "round $i: $(cat "$TEST_DIR/upgrade.out")"
	grep -q "instance $old" "$TEST_DIR/upgrade.out" || fail "round $i: old instance not reported"
	new=$(blkback-ctl status --json | sed -n 's/.*"instance": *"\([0-9a-f]*\)".*/\1/p')
	[ "$new" != "$old" ] || fail "round $i: still instance $old"
	info "round $i: $(tail -1 "$TEST_DIR/upgrade.out")"
	kill -0 "$BLKBACKD_PID" || fail "round $i: the pid is gone"
	sleep 1.5
done
[ "$(grep -c 'recovered after a restart' "$TEST_DIR/blkbackd.log")" -ge 6 ] ||
	fail "not every upgrade took both vbds over"
wait_for 3 fds_at_most "$base_fds" ||
	fail "blkbackd holds $(blkbackd_fds) fds after 3 upgrades, $base_fds before"

info "a binary that is gone: refused, and the daemon keeps serving"
rm "$TEST_DIR/blkbackd"
rc=0
blkback-ctl upgrade >"$TEST_DIR/upgrade.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "upgrade without a binary: exit $rc"
grep -q "cannot upgrade: .*No such file" "$TEST_DIR/upgrade.out" || fail "$(cat "$TEST_DIR/upgrade.out")"
blkback-ctl list >/dev/null || fail "the daemon stopped answering"

for n in 1 2; do
	eval pid=\$f$n
	rc=0
	wait "$pid" || rc=$?
	[ $rc -eq 0 ] || fail "frontend $n exit $rc: $(tail -12 "$TEST_DIR/f$n.log")"
	grep -q 'errors: *0 unexpected, 0 expected, 0 mismatches, 0 unanswered' "$TEST_DIR/f$n.log" ||
		fail "frontend $n: $(grep errors: "$TEST_DIR/f$n.log")"
done
xensim block-detach g1 xvda || fail "detach g1"
xensim block-detach g2 xvda || fail "detach g2"
exit 0
