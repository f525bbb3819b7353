#!/bin/sh
# Attach/detach churn: CHURN_CYCLES cycles (default 100; make check-churn
# runs 1000) of four vbds on two guests at once. In each cycle two of them
# run a short verified workload and close; the other two are detached by
# the toolstack (online=0, state=5, as xl block-detach) with I/O in flight;
# then the toolstack removes every dir. Afterwards blkbackd's open fds,
# mappings and threads are back at their baseline and its RSS within
# 2 MiB of it (allocator slack); the numbers are printed.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
cycles=${CHURN_CYCLES:-100}
# Under valgrind a cycle takes seconds: fewer, unless asked.
[ -z "${BLKBACK_VALGRIND:-}" ] || cycles=${CHURN_CYCLES:-10}
test_timeout $((120 + cycles * 3))
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

S=/etc/xen/scripts/blkbackd
start_xensimd
# glibc keeps the stacks of exited threads for reuse (up to 40 MiB): one
# showing up after the baseline is a cache, not a leak, so this blkbackd
# runs without that cache and every ring thread's stack must go. A thread
# that mallocs may also get an arena of its own (a 64 MiB reservation
# kept for reuse): one arena here, so that cache does not count either.
GLIBC_TUNABLES=glibc.pthread.stack_cache_size=0:glibc.malloc.arena_max=1
export GLIBC_TUNABLES
start_blkbackd
unset GLIBC_TUNABLES
g1=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
for i in 1 2 3 4; do
	truncate -s 8M "$TEST_DIR/d$i.img"
done

# snapshot: fds maps threads rss_kb, one line.
snapshot() {
	echo "$(blkbackd_fds) $(blkbackd_maps) $(blkbackd_threads) $(blkbackd_rss_kb)"
}

# One warm-up cycle first: the allocator's arenas, the io engine's first
# use and the like are paid once, not per cycle.
cycle() {
	local c=$1 dom dev img i pids="" rc
	for i in 1 2 3 4; do
		dom=$g1
		[ $i -le 2 ] || dom=$g2
		dev=$((51712 + i * 16))
		# As libxl, but without the hotplug script's 0.7 s: the dirs,
		# their permissions and the script's hotplug-status.
		vbd_write "$dom" "$dev" "$TEST_DIR/d$i.img" $S
		xenstore-write "$(be_path "$dom" "$dev")/hotplug-status" connected
		xenstore-chmod -r "$(be_path "$dom" "$dev")" n0 "r$dom"
		xenstore-chmod -r "$(fe_path "$dom" "$dev")" "n$dom" r0
	done
	# Two that finish their own verified I/O and close.
	for i in 1 2; do
		blkfront-sim --domain "$g1" --vdev $((51712 + i * 16)) --workload randrw \
			--qd 8 --ops 64 --verify --seed "$c" >>"$TEST_DIR/short.log" 2>&1 &
		pids="$pids $!"
	done
	# Two that are still busy when the toolstack detaches them.
	for i in 3 4; do
		blkfront-sim --domain "$g2" --vdev $((51712 + i * 16)) --workload randrw \
			--qd 32 --seconds 30 >>"$TEST_DIR/long.log" 2>&1 &
		eval "long$i=\$!"
	done
	for i in 3 4; do
		dev=$((51712 + i * 16))
		wait_for 10 be_state_is "$g2" "$dev" 4 || fail "cycle $c: vbd $dev not connected"
	done
	# Let them put I/O in flight, then detach both in one go.
	sleep 0.05
	for i in 3 4; do
		dev=$((51712 + i * 16))
		xenstore-write "$(be_path "$g2" "$dev")/online" 0 "$(be_path "$g2" "$dev")/state" 5
	done
	for i in 3 4; do
		dev=$((51712 + i * 16))
		expect_state "$g2" "$dev" 6 10 "cycle $c: detach of $dev with I/O in flight"
		eval "wait \$long$i" && rc=0 || rc=$?
		# 3: the backend closed the device under the workload.
		[ $rc -eq 3 ] || fail "cycle $c: busy frontend $dev exited $rc: $(tail -3 "$TEST_DIR/long.log")"
	done
	for p in $pids; do
		wait "$p" || fail "cycle $c: a short verified workload failed: $(tail -3 "$TEST_DIR/short.log")"
	done
	for i in 1 2 3 4; do
		dom=$g1
		[ $i -le 2 ] || dom=$g2
		dev=$((51712 + i * 16))
		xenstore-rm "$(be_path "$dom" "$dev")"
		xenstore-rm "$(fe_path "$dom" "$dev")"
	done
	released=$((released + 4))
	wait_for 10 sh -c "[ \$(grep -c ': released' '$TEST_DIR/blkbackd.log') -ge $released ]" ||
		fail "cycle $c: not every vbd was released"
}

released=0
cycle 0
threads_settle
cp "/proc/$BLKBACKD_PID/maps" "$TEST_DIR/maps0"
base=$(snapshot)
t0=$(date +%s)
c=1
while [ $c -le "$cycles" ]; do
	cycle $c
	[ $((c % 100)) -ne 0 ] || info "  after $c cycles: fds maps threads RSS: $(snapshot)"
	c=$((c + 1))
done
t1=$(date +%s)
# Released is logged before the last close; give it a moment.
wait_for 5 fds_at_most "${base%% *}" || true
threads_settle
after=$(snapshot)
# What changed, for the log of a failure.
diff "$TEST_DIR/maps0" "/proc/$BLKBACKD_PID/maps" >&2 || true
set -- $base
f0=$1 m0=$2 th0=$3 r0=$4
set -- $after
info "$cycles cycles x 4 vbds in $((t1 - t0)) s: fds $f0 -> $1, maps $m0 -> $2, threads $th0 -> $3, RSS $r0 -> $4 KiB"
[ "$1" -eq "$f0" ] || fail "fds $f0 -> $1"
[ "$3" -eq "$th0" ] || fail "threads $th0 -> $3"
if plain_run; then
	[ "$2" -le "$m0" ] || fail "mappings $m0 -> $2"
	[ "$4" -le $((r0 + 2048)) ] || fail "RSS $r0 -> $4 KiB"
fi
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
