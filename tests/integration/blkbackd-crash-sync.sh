#!/bin/sh
# T17, flush and barrier ordering across a crash: verified write workloads
# with flushes on one vbd and barriers on another, while blkbackd is
# killed (SIGKILL) at the crash points around a flush or barrier
# (BLKBACKD_CRASH_AT=sync-consumed|sync-responded|sync-pushed: recorded
# but not issued, answered but not published, published but not retired)
# and restarted from its journals. The guests must see a pause only: no
# error, no unknown or duplicate answer, no barrier answered while a write
# issued before it is not, no write answered before a barrier issued
# before it (blkfront-sim checks both on every answer). Afterwards a new
# blkbackd on a new attach reads back every write the guests saw
# acknowledged, those before each acknowledged flush among them.
#
# What a kill -9 can show: ordering, and that no acknowledged write is
# lost by the process or its recovery. What it cannot: durability. The
# page cache outlives the process, so a write that reached it is "in the
# file" after the restart whether or not a flush made it stable; only a
# power cut or a VM snapshot would tell. So the last part shows the
# flush's side directly: with the thread engine under strace, every
# fdatasync is held 300 ms before it returns, and a flush, a flush with
# data and a barrier must each take at least that long to be answered,
# which they can only do if their answer waits for fdatasync to return.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 180
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

ROUNDS=6
start_xensimd
start_blkbackd
truncate -s 32M "$TEST_DIR/f.img" "$TEST_DIR/b.img"
g1=$(sim_guest g1) || fail "xensim create g1"
sim_attach g1 xvda "$TEST_DIR/f.img"
sim_attach g1 xvdb "$TEST_DIR/b.img"

blkfront-sim --domain g1 --vdev xvda --workload randwrite --qd 32 --flush-every 8 \
	--seconds $((ROUNDS * 2 + 4)) --timeout 30 --verify --seed 11 \
	--state "$TEST_DIR/f.state" >"$TEST_DIR/ff.log" 2>&1 &
ff=$!
bg_track $ff
blkfront-sim --domain g1 --vdev xvdb --workload randwrite --qd 32 --barrier-every 8 \
	--seconds $((ROUNDS * 2 + 4)) --timeout 30 --verify --seed 12 \
	--state "$TEST_DIR/b.state" >"$TEST_DIR/fb.log" 2>&1 &
fb=$!
bg_track $fb
expect_state "$g1" 51712 4 10 "xvda connect"
expect_state "$g1" 51728 4 10 "xvdb connect"

# restart [ENV...]: a new blkbackd, after the old one is dead.
restart() {
	rm -f "$TEST_DIR/blkbackd.pid"
	env "$@" blkbackd -d -v --platform=sim --dir "$XENSIM_DIR" \
		-p "$TEST_DIR/blkbackd.pid" >>"$TEST_DIR/blkbackd.log" 2>&1 &
	BLKBACKD_PID=$!
	_pids="$BLKBACKD_PID $_pids"
}

i=0
while [ $i -lt $ROUNDS ]; do
	case $((i % 3)) in
	0) point=sync-consumed ;; 1) point=sync-responded ;; 2) point=sync-pushed ;;
	esac
	i=$((i + 1))
	n=$(( $(od -An -N2 -tu2 /dev/urandom) % 40 + 5 ))
	info "round $i: the next blkbackd dies at '$point' number $n"
	sleep 0.3
	kill -KILL "$BLKBACKD_PID"
	wait_dead "$BLKBACKD_PID"
	restart BLKBACKD_CRASH_AT="$point:$n"
	wait_dead "$BLKBACKD_PID"
	# 137: SIGKILL, raised at the crash point, not some other end.
	[ "$dead_rc" -eq 137 ] || fail "round $i: blkbackd ended with $dead_rc, not at '$point'"
	restart
	wait_for 10 test -s "$TEST_DIR/blkbackd.pid" || fail "round $i: blkbackd did not start"
	for f in $ff $fb; do
		kill -0 "$f" 2>/dev/null ||
			fail "round $i: a frontend ended early: $(tail -3 "$TEST_DIR/ff.log" "$TEST_DIR/fb.log")"
	done
done

for f in ff fb; do
	eval pid=\$$f
	rc=0
	wait "$pid" || rc=$?
	[ $rc -eq 0 ] || fail "$f: exit $rc: $(tail -12 "$TEST_DIR/$f.log")"
	grep -q 'errors: *0 unexpected, 0 expected, 0 mismatches, 0 unanswered' "$TEST_DIR/$f.log" ||
		fail "$f saw errors: $(grep 'errors:' "$TEST_DIR/$f.log")"
	grep -q 'result: *ok' "$TEST_DIR/$f.log" || fail "$f: $(grep result: "$TEST_DIR/$f.log")"
done
grep -q 'ops: .*flush [1-9]' "$TEST_DIR/ff.log" || fail "no flush answered: $(grep ops: "$TEST_DIR/ff.log")"
grep -q 'ops: .*barrier [1-9]' "$TEST_DIR/fb.log" || fail "no barrier answered: $(grep ops: "$TEST_DIR/fb.log")"
recovered=$(grep -c 'recovered after a restart' "$TEST_DIR/blkbackd.log" || true)
[ "$recovered" -ge $((ROUNDS * 2)) ] ||
	fail "only $recovered vbd recoveries logged over $ROUNDS rounds"

info "after a last kill -9 and a new attach: every acknowledged write reads back"
xensim block-detach g1 xvda >>"$TEST_DIR/xensim.log" 2>&1 || fail "detach xvda"
xensim block-detach g1 xvdb >>"$TEST_DIR/xensim.log" 2>&1 || fail "detach xvdb"
kill -KILL "$BLKBACKD_PID"
wait_dead "$BLKBACKD_PID"
restart
wait_for 10 test -s "$TEST_DIR/blkbackd.pid" || fail "blkbackd did not start"
sim_attach g1 xvda "$TEST_DIR/f.img"
sim_attach g1 xvdb "$TEST_DIR/b.img"
bf g1 xvda --workload readback --verify --state "$TEST_DIR/f.state" ||
	fail "flush vbd read-back: $(tail -3 "$TEST_DIR/bf.log")"
bf g1 xvdb --workload readback --verify --state "$TEST_DIR/b.state" ||
	fail "barrier vbd read-back: $(tail -3 "$TEST_DIR/bf.log")"
grep -q 'verify: *[1-9][0-9]* sector reads checked' "$TEST_DIR/bf.log" ||
	fail "the read-back checked nothing"

# The strace part needs ptrace, which valgrind takes for itself.
if ! command -v strace >/dev/null || [ -n "${BLKBACK_VALGRIND:-}" ]; then
	info "SKIP of the fdatasync part: strace not installed, or under valgrind"
	exit 0
fi
info "thread engine under strace, fdatasync held 300 ms: answers wait for it"
xensim block-detach g1 xvda >>"$TEST_DIR/xensim.log" 2>&1 || fail "detach xvda"
xensim block-detach g1 xvdb >>"$TEST_DIR/xensim.log" 2>&1 || fail "detach xvdb"
stop_pid "$BLKBACKD_PID" || fail "blkbackd did not stop"
rm -f "$TEST_DIR/blkbackd.pid"
# LeakSanitizer cannot run under ptrace and fails the exit of an ASan
# build; the leak check of this daemon is the other runs' job.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
strace -f -qq -o "$TEST_DIR/strace.out" -e trace=fdatasync,fsync \
	-e inject=fdatasync:delay_exit=300000 \
	blkbackd -d -v --platform=sim --dir "$XENSIM_DIR" --io-engine=thread \
	-p "$TEST_DIR/blkbackd.pid" >>"$TEST_DIR/blkbackd.log" 2>&1 &
strace_pid=$!
bg_track $strace_pid
wait_for $((10 * SLOW)) test -s "$TEST_DIR/blkbackd.pid" || fail "blkbackd under strace did not start"
BLKBACKD_PID=$(cat "$TEST_DIR/blkbackd.pid")
# Not our child (strace's): stop_pid sends SIGTERM and skips the wait.
_pids="$BLKBACKD_PID $_pids"
sim_attach g1 xvda "$TEST_DIR/f.img"
syncs0=$(grep -c 'fdatasync(' "$TEST_DIR/strace.out" || true)
# held WHAT ARGS...: the raw request is answered OKAY, 300 ms or later.
held() {
	local what=$1 us
	shift
	fe_restart "$g1" 51712
	: >"$TEST_DIR/raw.log"
	blkfront-sim --domain g1 --vdev xvda --raw "$@" --expect-status 0 \
		>"$TEST_DIR/raw.log" 2>&1 || fail "$what: $(tail -3 "$TEST_DIR/raw.log")"
	us=$(sed -n 's/^response: .* after \([0-9]*\) us$/\1/p' "$TEST_DIR/raw.log")
	[ -n "$us" ] || fail "$what: no latency in $(cat "$TEST_DIR/raw.log")"
	info "  $what: answered after $us us"
	[ "$us" -ge 300000 ] ||
		fail "$what answered after $us us: before the held fdatasync returned"
}
held "flush" --op 3
held "flush with data" --op 3 --sector 64 --seg new:0:7
held "barrier" --op 2
held "barrier with data" --op 2 --sector 72 --seg new:0:7
syncs=$(( $(grep -c 'fdatasync(' "$TEST_DIR/strace.out" || true) - syncs0 ))
[ "$syncs" -ge 4 ] || fail "$syncs fdatasync calls for 4 flushes and barriers"
info "  $syncs fdatasync calls for 4 flushes and barriers"
stop_pid "$BLKBACKD_PID" || fail "blkbackd under strace did not stop cleanly"
wait "$strace_pid" || fail "strace (and so blkbackd) exited $?"
exit 0
