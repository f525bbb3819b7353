# Shared helpers for integration tests; source it first.
# Every test: sets a timeout, starts real programs with these helpers, and
# relies on the EXIT trap to stop them. Exit 77 means skip (say why).
set -eu

: "${top_builddir:?run through make check}"
: "${top_srcdir:?run through make check}"
export PATH="$top_builddir/frontend-sim:$top_builddir/backend:$PATH"

TEST_NAME=$(basename "$0" .sh)
TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/blkback-$TEST_NAME.XXXXXX")
export XENSIM_DIR="$TEST_DIR/sim"
export XENSTORED_PATH="$XENSIM_DIR/socket"
export XENSTORED_RUNDIR="$XENSIM_DIR"
_pids=""
_bg_pids=""
_timer=""

# make check-valgrind sets BLKBACK_VALGRIND=1: the daemons (xensimd,
# blkbackd) run under memcheck, and any error or definite leak makes the
# daemon exit 99 on SIGTERM, which fails the test in stop_pid. Everything
# is slower then: SLOW scales the waits for start and stop and the test's
# timeout.
VG=""
SLOW=1
if [ -n "${BLKBACK_VALGRIND:-}" ]; then
	command -v valgrind >/dev/null || { echo "SKIP: valgrind not installed" >&2; exit 77; }
	VG="valgrind -q --error-exitcode=99 --leak-check=full \
--show-leak-kinds=definite --errors-for-leak-kinds=definite \
--track-fds=no --num-callers=30 --suppressions=$top_srcdir/tests/valgrind.supp"
	SLOW=6
fi

fail() { echo "FAIL: $TEST_NAME: $*" >&2; exit 1; }
skip() { echo "SKIP: $TEST_NAME: $*" >&2; exit 77; }
info() { echo "# $*"; }

# expect_fail CMD...: CMD must exit non-zero.
expect_fail() {
	if "$@"; then fail "expected failure: $*"; fi
}

# wait_for SECONDS CMD...: poll until CMD succeeds.
wait_for() {
	local limit=$(( $1 * 10 )); shift
	local i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -le $limit ] || return 1
		sleep 0.1
	done
}

# Stop a daemon with SIGTERM; one that ignores it, or exits non-zero after
# it (a leak or sanitizer report at exit), fails the test.
stop_pid() {
	local pid=$1 i=0 st=0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt $((50 * SLOW)) ]; then
			kill -KILL "$pid" 2>/dev/null || true
			echo "FAIL: $TEST_NAME: pid $pid ignored SIGTERM" >&2
			return 1
		fi
		sleep 0.1
	done
	# 127: not our child (started by another shell), nothing to collect.
	wait "$pid" 2>/dev/null || st=$?
	if [ $st -ne 0 ] && [ $st -ne 127 ]; then
		echo "FAIL: $TEST_NAME: pid $pid exited with status $st on SIGTERM" >&2
		return 1
	fi
}

# bg_track PID: a background frontend (or other helper) the EXIT trap
# stops before the daemons, whatever its status: a test that failed half
# way must not leave guests behind that keep waiting on a backend.
bg_track() { _bg_pids="$1 $_bg_pids"; }

# _is_our_child PID: PID still runs and is this shell's child (not a
# number the kernel has given to someone else since).
_is_our_child() {
	local st
	st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	st=${st##*) }
	set -- $st
	[ "$2" = "$$" ]
}

_bg_stop() {
	local p left i=0
	for p in $_bg_pids; do
		if _is_our_child "$p"; then kill -TERM "$p" 2>/dev/null || true; fi
	done
	# SIGTERM makes blkfront-sim close its device, which needs the
	# backend that is still running; those stuck anyway get SIGKILL.
	while :; do
		left=""
		for p in $_bg_pids; do
			if _is_our_child "$p"; then left="$left $p"; fi
		done
		[ -n "$left" ] || break
		i=$((i + 1))
		if [ $i -gt $((50 * SLOW)) ]; then
			for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
			break
		fi
		sleep 0.1
	done
	_bg_pids=""
}

_cleanup() {
	local rc=$? p
	if [ -n "$_timer" ]; then
		pkill -P "$_timer" 2>/dev/null || true
		kill "$_timer" 2>/dev/null || true
	fi
	_bg_stop
	for p in $_pids; do stop_pid "$p" || rc=1; done
	# A sanitizer report in any daemon's log fails the test.
	if grep -l 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' \
		"$TEST_DIR"/*.log >/dev/null 2>&1; then
		echo "FAIL: $TEST_NAME: sanitizer report in a log" >&2
		rc=1
	fi
	if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
		for f in "$TEST_DIR"/*.log; do
			[ -f "$f" ] || continue
			echo "--- $f" >&2; tail -n 40 "$f" >&2
		done
	fi
	# TEST_KEEP=1 keeps the logs and files of a test for a look.
	if [ -n "${TEST_KEEP:-}" ]; then
		echo "# kept $TEST_DIR" >&2
	else
		rm -rf "$TEST_DIR"
	fi
	exit $rc
}
trap _cleanup EXIT

# Kill the whole test if it overruns (default 120 s). Every blkfront-sim
# it starts gets the same limit (--time-limit), so none outlives it by more
# than that even when the trap never runs (the test shell was SIGKILLed).
test_timeout() {
	local secs=$(( ${1:-120} * SLOW )) me=$$
	export BLKFRONT_SIM_TIME_LIMIT=$secs
	# The sleep must not hold the test's stdout/stderr: whoever reads them
	# through a pipe would otherwise wait for it after the test ended.
	( sleep "$secs" </dev/null >/dev/null 2>&1
	  echo "FAIL: $TEST_NAME: timed out after ${secs}s" >&2; kill -TERM $me ) &
	_timer=$!
	disown $_timer 2>/dev/null || true
}

start_xensimd() {
	$VG xensimd -d --dir "$XENSIM_DIR" "$@" >"$TEST_DIR/xensimd.log" 2>&1 &
	XENSIMD_PID=$!
	_pids="$XENSIMD_PID $_pids"
	wait_for $((10 * SLOW)) test -S "$XENSIM_DIR/socket" || fail "xensimd did not start"
	wait_for $((10 * SLOW)) test -S "$XENSIM_DIR/sim" || fail "xensimd sim socket missing"
}

# ---- blkbackd helpers ----
# start_blkbackd [ARGS...]: blkbackd on the simulator in the foreground,
# verbose, logging to $TEST_DIR/blkbackd.log; stopped by the EXIT trap
# before xensimd. Sets BLKBACKD_PID.
start_blkbackd() {
	rm -f "$TEST_DIR/blkbackd.pid"
	$VG blkbackd -d -v --platform=sim --dir "$XENSIM_DIR" \
		-p "$TEST_DIR/blkbackd.pid" "$@" >>"$TEST_DIR/blkbackd.log" 2>&1 &
	BLKBACKD_PID=$!
	_pids="$BLKBACKD_PID $_pids"
	wait_for $((10 * SLOW)) test -s "$TEST_DIR/blkbackd.pid" || fail "blkbackd did not start"
}

# xs_is PATH VALUE: the xenstore node PATH holds exactly VALUE.
xs_is() {
	[ "$(xenstore-read "$1" 2>/dev/null)" = "$2" ]
}
