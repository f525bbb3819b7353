#!/bin/sh
# kill -9 of blkbackd under verified workloads on three vbds (multi-page
# rings, two queues, indirect requests, persistent grants, both ABIs,
# flushes and barriers), again and again: at random moments, and at the
# exact points recovery finds hardest (BLKBACKD_CRASH_AT: a request
# consumed but not issued, a response written but not published, published
# but not retired). Each
# time a new blkbackd resumes the rings from their journals. The guests
# must see a pause only: blkfront-sim ends with zero errors, zero verify
# mismatches, zero unknown or duplicate response ids, and a full read-back.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

ROUNDS=${CRASH_ROUNDS:-12}
SECONDS_RUN=$((ROUNDS * 2 + 6))

start_xensimd
start_blkbackd
truncate -s 64M "$TEST_DIR/a.img" "$TEST_DIR/b.img" "$TEST_DIR/c.img"
g1=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g1 xvda "$TEST_DIR/a.img"
sim_attach g1 xvdb "$TEST_DIR/b.img"
sim_attach g2 xvda "$TEST_DIR/c.img"

# Per-frontend logs: each is checked on its own.
blkfront-sim --domain g1 --vdev xvda --ring-order 2 --persistent --workload randrw --qd 64 \
	--flush-every 16 --seconds "$SECONDS_RUN" --timeout 30 --verify --seed 1 \
	>"$TEST_DIR/f1.log" 2>&1 &
f1=$!
bg_track $f1
blkfront-sim --domain g1 --vdev xvdb --ring-order 4 --queues 2 --indirect --bs 64k \
	--workload randrw --qd 48 --seconds "$SECONDS_RUN" --timeout 30 \
	--verify --seed 2 >"$TEST_DIR/f2.log" 2>&1 &
f2=$!
bg_track $f2
blkfront-sim --domain g2 --vdev xvda --abi x86_32 --workload randwrite --qd 32 \
	--barrier-every 20 --discard-every 40 --seconds "$SECONDS_RUN" --timeout 30 \
	--verify --seed 3 >"$TEST_DIR/f3.log" 2>&1 &
f3=$!
bg_track $f3
expect_state "$g1" 51712 4 10 "g1 xvda connect"
expect_state "$g1" 51728 4 10 "g1 xvdb connect"
expect_state "$g2" 51712 4 10 "g2 xvda connect"

# restart [ENV...]: a new blkbackd, after the old one is dead.
restart() {
	env "$@" blkbackd -d -v --platform=sim --dir "$XENSIM_DIR" \
		-p "$TEST_DIR/blkbackd.pid" >>"$TEST_DIR/blkbackd.log" 2>&1 &
	BLKBACKD_PID=$!
	_pids="$BLKBACKD_PID $_pids"
}


random_ms() { echo $(( $(od -An -N2 -tu2 /dev/urandom) % $1 + $2 )); }

i=0
while [ $i -lt "$ROUNDS" ]; do
	i=$((i + 1))
	old=$BLKBACKD_PID
	case $((i % 4)) in
	1)
		ms=$(random_ms 700 150)
		info "round $i: kill -9 after $ms ms"
		sleep "$(printf '0.%03d' "$ms")"
		kill -KILL "$old"
		wait_dead "$old"
		restart
		;;
	2|3|0)
		case $((i % 4)) in 2) point=consumed ;; 3) point=responded ;; 0) point=pushed ;; esac
		n=$(random_ms 3000 200)
		info "round $i: the next blkbackd dies at '$point' number $n"
		kill -KILL "$old"
		wait_dead "$old"
		restart BLKBACKD_CRASH_AT="$point:$n"
		crasher=$BLKBACKD_PID
		wait_dead "$crasher"
		# 137: SIGKILL, raised at the crash point, not some other end.
		[ "$dead_rc" -eq 137 ] || fail "round $i: blkbackd ended with $dead_rc, not at '$point'"
		restart
		;;
	esac
	# The new process is serving: every vbd's ring recovered.
	wait_for 10 test -s "$TEST_DIR/blkbackd.pid" || fail "round $i: blkbackd did not start"
	for f in $f1 $f2 $f3; do
		kill -0 "$f" 2>/dev/null || fail "round $i: a frontend ended early: $(tail -3 "$TEST_DIR"/f*.log)"
	done
done

for f in 1 2 3; do
	eval pid=\$f$f
	rc=0
	wait "$pid" || rc=$?
	[ $rc -eq 0 ] || fail "frontend $f exit $rc: $(tail -12 "$TEST_DIR/f$f.log")"
	grep -q 'errors: *0 unexpected, 0 expected, 0 mismatches, 0 unanswered' "$TEST_DIR/f$f.log" ||
		fail "frontend $f saw errors: $(grep 'errors:' "$TEST_DIR/f$f.log")"
	grep -q 'result: *ok' "$TEST_DIR/f$f.log" || fail "frontend $f: $(grep result: "$TEST_DIR/f$f.log")"
done

# Every restart recovered every vbd, and recoveries had work to redo.
recovered=$(grep -c 'recovered after a restart' "$TEST_DIR/blkbackd.log" || true)
[ "$recovered" -ge $((ROUNDS * 2)) ] ||
	fail "only $recovered vbd recoveries logged over $ROUNDS rounds"
grep -q 'recovered: .* [1-9][0-9]* requests\? to issue again' "$TEST_DIR/blkbackd.log" ||
	fail "no recovery ever had a request to issue again"
grep -q 'recovered: .* [1-9][0-9]* responses\? published again' "$TEST_DIR/blkbackd.log" ||
	fail "no recovery ever published a response again"
info "$recovered vbd recoveries; $(grep -c 'recovered: ' "$TEST_DIR/blkbackd.log") ring recoveries"

# blkback-ctl show reports them.
blkback-ctl show "$g1" xvda >"$TEST_DIR/show.txt" || fail "blkback-ctl show"
grep -q 'recoveries: [1-9]' "$TEST_DIR/show.txt" || fail "show: $(grep recoveries "$TEST_DIR/show.txt")"

# Detach all: the journals go with the rings.
xensim block-detach g1 xvda || fail "detach g1 xvda"
xensim block-detach g1 xvdb || fail "detach g1 xvdb"
xensim block-detach g2 xvda || fail "detach g2 xvda"
wait_for 5 sh -c "! ls '$XENSIM_DIR/journal/' | grep -q journal" ||
	fail "journals left after detach: $(ls "$XENSIM_DIR/journal")"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
