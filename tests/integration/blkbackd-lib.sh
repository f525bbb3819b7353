# Shared by the blkbackd-*.sh tests (sourced after functions.sh): play the
# toolstack with the real xenstore tools, the way libxl writes a disk.
BE_ROOT=/local/domain/0/backend/vbd

be_path() { echo "$BE_ROOT/$1/$2"; }
fe_path() { echo "/local/domain/$1/device/vbd/$2"; }

# vbd_write DOMID DEVID TARGET SCRIPT [MODE [DEVTYPE [FRONTEND]]]: backend
# and frontend dirs in one transaction (one xenstore-write call), as libxl
# does. FRONTEND overrides the frontend path the backend names.
vbd_write() {
	local dom=$1 dev=$2 target=$3 script=$4 mode=${5:-w} devtype=${6:-disk}
	local be fe
	be=$(be_path "$dom" "$dev")
	fe=${7:-$(fe_path "$dom" "$dev")}
	xenstore-write \
		"$be/frontend" "$fe" "$be/params" "$target" "$be/script" "$script" \
		"$be/frontend-id" "$dom" "$be/online" 1 "$be/removable" 0 \
		"$be/bootable" 1 "$be/state" 1 "$be/dev" xvda "$be/type" phy \
		"$be/mode" "$mode" "$be/device-type" "$devtype" \
		"$be/discard-enable" 1 "$be/specification" xen \
		"$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1 \
		"$fe/virtual-device" "$dev" "$fe/device-type" "$devtype" \
		"$fe/trusted" 1 "$fe/protocol" x86_64-abi
}

# be_state_is DOMID DEVID STATE
be_state_is() { xs_is "$(be_path "$1" "$2")/state" "$3"; }

# expect_state DOMID DEVID STATE SECONDS WHAT
expect_state() {
	wait_for "$4" be_state_is "$1" "$2" "$3" ||
		fail "$5: backend state is '$(xenstore-read "$(be_path "$1" "$2")/state" 2>&1)', wanted $3 within $4 s"
}

# blkbackd_fds: how many fds blkbackd holds now.
blkbackd_fds() { ls "/proc/$BLKBACKD_PID/fd" | wc -l; }

# sim_guest NAME: create a simulated domain, print its id.
sim_guest() { xensim create "$1"; }

# sim_attach DOMAIN VDEV TARGET [ACCESS [DEVTYPE]]: xl-style block-attach
# through the hotplug script in the source tree (script=blkbackd).
sim_attach() {
	local spec="vdev=$2, access=${4:-w}, script=blkbackd"
	[ -z "${5:-}" ] || spec="$spec, devtype=$5"
	spec="$spec, target=$3"	# libxl: target= comes last
	XENSIM_SCRIPT_DIR="$top_srcdir/hotplug" xensim block-attach "$1" "$spec" ||
		fail "block-attach $1 $2 failed"
	# blkbackd opens the storage when it sees the script's hotplug-status,
	# after block-attach returned: wait, so that what a test counts next
	# (fds, say) includes it.
	wait_for $((5 * SLOW)) storage_open "$1" "$2" ||
		fail "blkbackd did not open the storage of $1 $2"
}

# storage_open DOMAIN VDEV: blkback-ctl lists the vbd with its target open.
storage_open() {
	blkback-ctl list 2>/dev/null |
		awk -v d="$1" -v v="$2" '$2 == d && $4 == v && $6 ~ /^(\/|nbd|rbd:|[a-z0-9]+:\/)/ { found = 1 } END { exit !found }'
}

# bf DOMAIN VDEV ARGS...: blkfront-sim, output kept in $TEST_DIR/bf.log.
bf() {
	local dom=$1 vdev=$2
	shift 2
	blkfront-sim --domain "$dom" --vdev "$vdev" "$@" >>"$TEST_DIR/bf.log" 2>&1
}

# bf_bg DOMAIN VDEV ARGS...: blkfront-sim in the background; $! is its
# pid; the EXIT trap stops it if it still runs.
bf_bg() {
	local dom=$1 vdev=$2
	shift 2
	blkfront-sim --domain "$dom" --vdev "$vdev" "$@" >>"$TEST_DIR/bf.log" 2>&1 &
	bg_track $!
}

# fe_restart DOMID DEVID: the frontend starts over (state Initialising)
# and the backend must come back to InitWait from Closed within a second.
fe_restart() {
	xenstore-write "$(fe_path "$1" "$2")/state" 1
	expect_state "$1" "$2" 2 1 "reconnect after Closed"
}

# wait_dead PID: it is gone within 20 s; its wait status in $dead_rc.
wait_dead() {
	wait_for 20 sh -c "! kill -0 $1 2>/dev/null" || fail "blkbackd $1 did not die"
	dead_rc=0
	wait "$1" 2>/dev/null || dead_rc=$?
}

# fds_at_most N: blkbackd holds at most N fds (re-counted on every call,
# so it can be polled with wait_for).
fds_at_most() { [ "$(blkbackd_fds)" -le "$1" ]; }

# ---- verified runs on one remote disk ----
# remote_run WHAT ARGS...: one verified blkfront-sim workload on g1's xvda
# (state in $state), checked "ok", its flushes and barriers added to
# $flushes; then the frontend starts over, so the next run reconnects.
remote_run() {
	local what=$1 n
	shift
	blkfront-sim --domain g1 --vdev xvda --verify --state "$state" --json "$@" \
		>"$TEST_DIR/run.json" 2>>"$TEST_DIR/bf.log" ||
		fail "$what: $(tail -3 "$TEST_DIR/bf.log") $(cat "$TEST_DIR/run.json")"
	grep -q '"result": "ok"' "$TEST_DIR/run.json" || fail "$what: $(cat "$TEST_DIR/run.json")"
	info "$what: $(jq -c '{total_ops, errors, mismatches}' "$TEST_DIR/run.json")"
	n=$(jq '.ops.flush + .ops.barrier' "$TEST_DIR/run.json")
	flushes=$((flushes + n))
	be_state_is "$g1" 51712 6 || expect_state "$g1" 51712 6 5 "$what: close"
	fe_restart "$g1" 51712
}

# ---- NBD exports ----
# start_nbdkit NAME ARGS...: nbdkit in the foreground serving ARGS (plugin,
# filters...) on $TEST_DIR/NAME.sock, logging to $TEST_DIR/nbdkit-NAME.log;
# stopped by the EXIT trap. Sets NBD_URI (the export's URI) and NBDKIT_PID.
# Skips the test where nbdkit is not installed.
start_nbdkit() {
	local name=$1 sock="$TEST_DIR/$1.sock"
	shift
	command -v nbdkit >/dev/null || skip "nbdkit not installed"
	rm -f "$sock"
	nbdkit -f -U "$sock" "$@" >>"$TEST_DIR/nbdkit-$name.log" 2>&1 &
	NBDKIT_PID=$!
	_pids="$NBDKIT_PID $_pids"
	wait_for $((10 * SLOW)) test -S "$sock" || fail "nbdkit $name did not start"
	NBD_URI="nbd+unix:///?socket=$sock"
}

# nbd_pause SOCK p|r: pause or resume the pause filter listening on SOCK;
# returns once it answered (a pause waits for requests already running).
nbd_pause() {
	local want
	want=$(echo "$2" | tr pr PR)
	[ "$(printf %s "$2" | socat -t 30 - "UNIX-CONNECT:$1")" = "$want" ]
}

# ---- hostile tests ----
# beside_start DOMAIN VDEV SECONDS: a verified workload on another vbd for
# the length of a hostile case (log: $TEST_DIR/beside.log); beside_check
# WHAT waits for it and fails the test unless it passed untouched.
beside_start() {
	blkfront-sim --domain "$1" --vdev "$2" --workload randrw --qd 8 \
		--seconds "$3" --verify >>"$TEST_DIR/beside.log" 2>&1 &
	BESIDE_PID=$!
	bg_track $BESIDE_PID
}
# beside_stop WHAT: for a workload started for longer than its case
# needs: it must still run (so it covered the whole case); SIGTERM ends it
# cleanly, and it must have passed.
beside_stop() {
	kill -0 "$BESIDE_PID" 2>/dev/null ||
		fail "$1: the verified workload beside it ended before the case did"
	kill -TERM "$BESIDE_PID"
	beside_check "$1"
}
beside_check() {
	[ -n "${BESIDE_PID:-}" ] || return 0
	wait "$BESIDE_PID" ||
		fail "$1: the verified workload beside it failed: $(tail -3 "$TEST_DIR/beside.log")"
	BESIDE_PID=
}

# blkbackd_cpu_ticks: user + system clock ticks blkbackd has used so far.
blkbackd_cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$BLKBACKD_PID/stat"
}
# blkbackd_rss_kb, blkbackd_threads, blkbackd_maps: its resident set in
# KiB, its thread count, its mappings.
blkbackd_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$BLKBACKD_PID/status"; }
blkbackd_threads() { awk '/^Threads:/ { print $2 }' "/proc/$BLKBACKD_PID/status"; }
blkbackd_maps() { wc -l <"/proc/$BLKBACKD_PID/maps"; }

# threads_settle: returns once blkbackd's thread count has stayed the same
# for half a second (5 s at most). Threads that finish a one-off job (a
# storage open, a control command) are detached and still exit for a
# moment after their result was taken: a count read in that moment is
# not a baseline.
threads_settle() {
	local tries=0 same=0 last now
	last=$(blkbackd_threads)
	while [ $same -lt 5 ] && [ $tries -lt 50 ]; do
		sleep 0.1
		now=$(blkbackd_threads)
		same=$((same + 1))
		[ "$now" = "$last" ] || same=0
		last=$now
		tries=$((tries + 1))
	done
}

# main_trace_start CLASSES: strace of blkbackd's main thread alone (no -f)
# for the syscall classes CLASSES (%file,%desc...) into
# $TEST_DIR/main.strace; returns 1 where it cannot run (no strace, or a
# valgrind run). main_trace_stop ends it and fails the test when it saw
# no system call at all.
main_trace_start() {
	command -v strace >/dev/null && [ -z "${BLKBACK_VALGRIND:-}" ] || return 1
	strace -qq -e trace="$1" -p "$BLKBACKD_PID" -o "$TEST_DIR/main.strace" &
	MAIN_TRACE_PID=$!
	bg_track $MAIN_TRACE_PID
	wait_for 5 sh -c "grep -q '^TracerPid:[[:space:]]*[1-9]' /proc/$BLKBACKD_PID/status" ||
		fail "strace did not attach"
}
main_trace_stop() {
	kill -INT $MAIN_TRACE_PID
	wait $MAIN_TRACE_PID 2>/dev/null || true
	grep -q . "$TEST_DIR/main.strace" || fail "strace saw no system call of the main thread"
}

# log_lines: lines in blkbackd's log so far.
log_lines() { wc -l <"$TEST_DIR/blkbackd.log"; }

# plain_run: true for a plain build run natively. RSS and CPU figures
# mean little under ASan (shadow memory, quarantine) or valgrind (its own
# memory, 20-50x slower): such runs check the behaviour and print the
# numbers without holding them to the bounds.
plain_run() {
	[ -z "${BLKBACK_VALGRIND:-}" ] &&
		! ldd "$top_builddir/backend/blkbackd" | grep -q libasan
}
