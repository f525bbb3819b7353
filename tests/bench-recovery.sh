#!/bin/sh
# make bench, recovery part: how long a guest waits when blkbackd is
# killed. 16 vbds (4 guests x 4 disks) run random read/write workloads;
# blkbackd is killed with SIGKILL and started again, ROUNDS times. Per
# round: process start -> the last of the 16 vbds resumed (from blkbackd's
# own log timestamps) and process start -> every vbd has answered a
# request again (blkback-ctl polled every few ms, so a few ms coarse).
# Prints the median and worst of each and writes BUILDDIR/bench-recovery.json.
# Usage: bench-recovery.sh BUILDDIR. Environment: RECOVERY_ROUNDS (5).
set -eu

build=${1:?usage: bench-recovery.sh BUILDDIR}
top_builddir=$(cd "$build" && pwd)
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
export top_builddir top_srcdir
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 300

rounds=${RECOVERY_ROUNDS:-5}
json_out="$top_builddir/bench-recovery.json"
command -v jq >/dev/null || fail "jq not found (build-aux/install-deps installs it)"

start_xensimd
start_blkbackd
fronts=""
for g in 1 2 3 4; do
	sim_guest "r$g" >/dev/null || fail "xensim create r$g"
	for v in xvda xvdb xvdc xvdd; do
		truncate -s 64M "$TEST_DIR/r$g-$v.img"
		sim_attach "r$g" "$v" "$TEST_DIR/r$g-$v.img" >/dev/null
		blkfront-sim --domain "r$g" --vdev "$v" --workload randrw --qd 16 \
			--seconds $((rounds * 3 + 10)) --timeout 30 --verify \
			>>"$TEST_DIR/bf-r$g-$v.log" 2>&1 &
		fronts="$fronts $!"
	done
done
sleep 1

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# answered_all: each of the 16 vbds has answered a request since this
# process started (its running rings' counters start at zero).
answered_all() {
	blkback-ctl stats --json 2>/dev/null | jq -e '[.vbds[] |
		[.ring_list[].requests | add] | add // 0] | length == 16 and all(. > 0)' >/dev/null
}

: >"$TEST_DIR/rounds.jsonl"
i=0
while [ $i -lt "$rounds" ]; do
	i=$((i + 1))
	sleep 1
	kill -KILL "$BLKBACKD_PID"
	wait "$BLKBACKD_PID" 2>/dev/null || true
	mark=$(wc -l <"$TEST_DIR/blkbackd.log")
	t0=$(now_ms)
	start_blkbackd
	wait_for 10 answered_all || fail "round $i: not every vbd answered after the restart"
	t_answer=$(now_ms)
	tail -n +$((mark + 1)) "$TEST_DIR/blkbackd.log" >"$TEST_DIR/round.log"
	n=$(grep -c 'recovered after a restart' "$TEST_DIR/round.log" || true)
	[ "$n" -eq 16 ] || fail "round $i: $n of 16 vbds recovered"
	# Log lines start with an ISO 8601 time with milliseconds.
	t_resumed=$(date -d "$(grep 'recovered after a restart' "$TEST_DIR/round.log" | tail -1 |
		cut -d' ' -f1)" +%s%3N)
	reissued=$(sed -n 's/.*recovered after a restart: \([0-9]*\) request.*/\1/p' \
		"$TEST_DIR/round.log" | awk '{ s += $1 } END { print s + 0 }')
	jq -nc --argjson r "$i" --argjson resumed $((t_resumed - t0)) \
		--argjson answered $((t_answer - t0)) --argjson reissued "$reissued" \
		'{round: $r, start_to_all_resumed_ms: $resumed, start_to_all_answered_ms: $answered,
		  requests_reissued: $reissued}' >>"$TEST_DIR/rounds.jsonl"
	info "round $i: all 16 resumed $((t_resumed - t0)) ms, all answered by $((t_answer - t0)) ms after start, $reissued requests issued again"
done

for f in $fronts; do
	rc=0
	wait "$f" || rc=$?
	[ $rc -eq 0 ] || fail "a frontend failed across the restarts (exit $rc): $(grep -h 'errors:' "$TEST_DIR"/bf-*.log | sort | uniq -c)"
done

jq -s '{vbds: 16, rounds: .,
	resumed_ms: (map(.start_to_all_resumed_ms) | sort | {median: .[length / 2 | floor], max: max}),
	answered_ms: (map(.start_to_all_answered_ms) | sort | {median: .[length / 2 | floor], max: max}),
	target_ms: 200}' "$TEST_DIR/rounds.jsonl" >"$json_out"
jq -r '"recovery, 16 vbds under load, \(.rounds | length) kill -9 rounds:",
	"  process start -> all 16 vbds resumed:        median \(.resumed_ms.median) ms, worst \(.resumed_ms.max) ms",
	"  process start -> every vbd answered again:   median \(.answered_ms.median) ms, worst \(.answered_ms.max) ms (target <= 200)",
	"  every guest finished its verified workload with no error"' "$json_out"
echo "JSON: $json_out"
exit 0
