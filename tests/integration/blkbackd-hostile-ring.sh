#!/bin/sh
# Hostile guests on the shared ring (PROTOCOL.md §5): T1/T20 a thread
# rewriting slots, indirect and data pages while blkbackd reads them; T2
# producer overflow, going backwards and wrapping at 2^32; T3 attach with
# non-zero and with stale indices; T9 read-only, revoked, other-domain and
# repeated grants; T10 response slots byte for byte; T11 an event storm
# with blkbackd's CPU measured; T18 a full ring of one id. Every case
# runs beside a verified workload on another guest's vbd, and ends with
# blkbackd alive, its fds back at the baseline, and the hostile vbd
# serving a verified workload again.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 300
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 16M "$TEST_DIR/hostile.img"
truncate -s 16M "$TEST_DIR/beside.img"
g=$(sim_guest g1) || fail "xensim create g1"
sim_guest g2 >/dev/null || fail "xensim create g2"
sim_attach g1 xvda "$TEST_DIR/hostile.img"
sim_attach g2 xvda "$TEST_DIR/beside.img"
be=$(be_path "$g" 51712)
fds0=$(blkbackd_fds)

# case WHAT: starts a case: the workload beside it, a clean error node.
case_start() {
	info "$1"
	CASE=$1
	xenstore-rm "$be/error" 2>/dev/null || true
	beside_start g2 xvda 3
}

# case_end [closed]: the beside workload passed, blkbackd lives, its fds
# come back, and the hostile vbd serves verified I/O again (after a
# reconnect when the backend closed it).
case_end() {
	beside_check "$CASE"
	kill -0 "$BLKBACKD_PID" 2>/dev/null || fail "$CASE: blkbackd died"
	wait_for 5 fds_at_most "$fds0" ||
		fail "$CASE: blkbackd holds $(blkbackd_fds) fds, $fds0 before"
	fe_restart "$g" 51712
	bf g1 xvda --workload randrw --qd 16 --ops 300 --verify ||
		fail "$CASE: the vbd does not serve verified I/O afterwards"
}

# expect_halt WHAT: the vbd was disconnected with an error node naming the
# halt, and one log line said why.
expect_halt() {
	wait_for $((2 * SLOW)) xenstore-exists "$be/error" || fail "$1: no error node"
	xenstore-read "$be/error" | grep -q 'halted' ||
		fail "$1: error node is '$(xenstore-read "$be/error")'"
	[ "$(grep -c "$2" "$TEST_DIR/blkbackd.log")" -eq "$3" ] ||
		fail "$1: wanted $3 log lines with '$2', have $(grep -c "$2" "$TEST_DIR/blkbackd.log")"
}

for abi in x86_64 x86_32; do
	case_start "T1/T20: slots, indirect and data pages rewritten while read ($abi)"
	bf g1 xvda --abi $abi --hostile rewrite --seconds 2 ||
		fail "$CASE: $(grep -v '^#' "$TEST_DIR/bf.log" | tail -3)"
	grep "^rewrite:" "$TEST_DIR/bf.log" | tail -1 | sed 's/^/# /'
	# Rewritten writes put (stamped) data anywhere on this disk: the
	# guest's own doing, which a later verify would take for corruption.
	dd if=/dev/zero of="$TEST_DIR/hostile.img" bs=1M count=16 conv=notrunc 2>/dev/null
	case_end

	case_start "T10: response slots carry only the response fields ($abi)"
	bf g1 xvda --abi $abi --ring-order 1 --hostile rsp-check --seconds 1 ||
		fail "$CASE: $(tail -3 "$TEST_DIR/bf.log")"
	case_end
done

case_start "T2: producer index more than a ring ahead"
bf g1 xvda --hostile prod-overflow || fail "$CASE: $(tail -3 "$TEST_DIR/bf.log")"
expect_halt "$CASE" "error: .*halted: producer index" 1
case_end

case_start "T2: producer index going backwards"
bf g1 xvda --hostile prod-backwards || fail "$CASE: $(tail -3 "$TEST_DIR/bf.log")"
expect_halt "$CASE" "error: .*halted: producer index" 2
case_end

for abi in x86_64 x86_32; do
	case_start "T2/T3: a ring attached at 2^32 - 16 wraps under a verified workload ($abi)"
	bf g1 xvda --abi $abi --ring-start 4294967280 --workload randrw --qd 32 \
		--ops 2000 --verify || fail "$CASE: $(tail -3 "$TEST_DIR/bf.log")"
	case_end
done

case_start "T3: stale indices at attach (req_prod 90 ahead of rsp_prod)"
rc=0
bf g1 xvda --ring-start 100:10 --ops 10 --timeout $((3 * SLOW)) || rc=$?
[ $rc -ne 0 ] || fail "$CASE: the backend connected a ring with stale indices"
# Refused, and not tried again in a loop. A second try is allowed: the
# watch event of the frontend's earlier state write (Initialising) can
# arrive after the refusal under load and counts as a new write.
n=$(grep -c 'req_prod 100 rsp_prod 10 are inconsistent' "$TEST_DIR/blkbackd.log")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] ||
	fail "$CASE: $n log lines, want 1 or 2 (the connect is refused, not retried in a loop)"
wait_for $((5 * SLOW)) xenstore-exists "$be/error" ||
	fail "$CASE: no error node (backend state $(xenstore-read "$be/state"))"
be_state_is "$g" 51712 4 && fail "$CASE: backend is Connected"
case_end

case_start "T18: a full ring of requests that all carry one id"
bf g1 xvda --ring-order 2 --hostile dup-ids || fail "$CASE: $(tail -3 "$TEST_DIR/bf.log")"
case_end

info "T9: grants"
# raw STATUS WHAT ARGS...: one raw request on the hostile vbd.
raw() {
	local want=$1 what=$2
	shift 2
	case_start "T9: $what"
	fe_restart "$g" 51712
	bf g1 xvda --raw "$@" --expect-status "$want" ||
		fail "$what: wanted status $want: $(tail -3 "$TEST_DIR/bf.log")"
	case_end
}
raw -1 "read into a read-only grant" --op 0 --sector 0 --seg ro:0:7
raw 0 "write from a read-only grant" --op 1 --sector 0 --seg ro:0:7
raw -1 "read into a revoked grant" --op 0 --sector 0 --seg revoked:0:7
raw -1 "write from a revoked grant" --op 1 --sector 0 --seg revoked:0:7
raw -1 "read into a grant made to another domain" --op 0 --sector 0 --seg other:0:7
raw -1 "good grant, then a revoked one" --op 0 --sector 0 --seg new:0:7 --seg revoked:0:7
raw 0 "one grant twice in a request (grant copy: harmless)" --op 0 --sector 0 \
	--seg new:0:7 --seg dup:0:7
grep -q 'bad grant in request' "$TEST_DIR/blkbackd.log" || fail "bad grants not logged"

# cpu_ticks PID: user + system clock ticks PID has used, exited threads
# included (a per-thread sum would lose the beside workload's rings).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# storm_cpu: runs a 4 s event storm on the hostile vbd and prints, over
# its middle 2 s (connect and close left out), blkbackd's CPU and the
# storming frontend's, in per mille of one core.
storm_cpu() {
	local b0 b1 f0 f1 w0 w1 hz pid rc=0
	blkfront-sim --domain g1 --vdev xvda --hostile event-storm --seconds 4 \
		>>"$TEST_DIR/bf.log" 2>&1 &
	pid=$!
	bg_track $pid
	sleep 1
	w0=$(date +%s%N); b0=$(cpu_ticks "$BLKBACKD_PID"); f0=$(cpu_ticks $pid)
	sleep 2
	w1=$(date +%s%N); b1=$(cpu_ticks "$BLKBACKD_PID"); f1=$(cpu_ticks $pid)
	wait $pid || rc=$?
	[ $rc -eq 0 ] || { echo "storm failed: $(tail -3 "$TEST_DIR/bf.log")" >&2; return 1; }
	# per mille of a core: ticks * 1000 / hz / seconds, in microseconds
	hz=$(getconf CLK_TCK)
	w1=$(( (w1 - w0) / 1000 ))
	echo $(( (b1 - b0) * 1000000000 / hz / w1 )) $(( (f1 - f0) * 1000000000 / hz / w1 ))
}

info "T11: event storm on an empty ring, alone"
CASE="T11 alone"
fe_restart "$g" 51712
cpu=$(storm_cpu) || fail "$CASE: the storm failed"
be_pm=${cpu% *} fe_pm=${cpu#* }
info "  $(grep '^event-storm:' "$TEST_DIR/bf.log" | tail -1); CPU of one core: blkbackd $be_pm per mille, the storming guest $fe_pm"
# The bound is blkbackd's CPU against the guest's own in the same 2 s: on
# a loaded host both get less of a core, so an absolute figure measured
# the host as much as blkbackd (25% of a core failed once at 28% under
# make check -j2). Measured on 2 shared cores: throttled (the 1 ms sleep
# after a run of empty kicks, and a bounded event drain, in ring.c)
# blkbackd takes 3-6% of what the guest spends; with an unbounded drain
# 16-21%; without the sleep 65-90%. Below 10% of a core the guest made
# no storm worth judging, which fails too.
if plain_run; then
	[ "$fe_pm" -ge 100 ] || fail "$CASE: the guest ran ${fe_pm} per mille of a core: no storm"
	[ $((be_pm * 100)) -lt $((fe_pm * 10)) ] ||
		fail "$CASE: blkbackd used $be_pm per mille of a core, 10% or more of the guest's $fe_pm"
fi
case_end

case_start "T11: event storm on an empty ring, beside a workload"
cpu=$(storm_cpu) || fail "$CASE: the storm failed"
info "  $(grep '^event-storm:' "$TEST_DIR/bf.log" | tail -1); CPU of one core: blkbackd ${cpu% *} per mille (the workload's share included), the storming guest ${cpu#* }"
case_end

kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
