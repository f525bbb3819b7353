#!/bin/sh
# Off the journal, stderr lines read "<ISO 8601 local time with ms and
# offset> <ident>[<pid>]: <level>: <prefix>: <message>", from a test
# program and from the daemon itself; $JOURNAL_STREAM naming some other
# file than stderr does not switch to the journal.
. "$top_srcdir/tests/functions.sh"
test_timeout 60
emit="$top_builddir/tests/log-emit"
iso='[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]\{3\}[+-][0-9][0-9]:[0-9][0-9]'

# check_line FILE IDENT PID REST: FILE's first line is the format above,
# with REST after the pid, and its time is within 5 s of now.
check_line() {
	local line ts now
	line=$(head -n 1 "$1")
	echo "$line" | grep -q "^$iso $2\[$3\]: $4\$" || fail "bad line: '$line'"
	ts=$(echo "$line" | cut -d' ' -f1)
	now=$(date +%s)
	t=$(date -d "$ts" +%s) || fail "date cannot read '$ts'"
	[ $((now - t)) -ge 0 ] && [ $((now - t)) -le 5 ] || fail "time $ts is not now ($now)"
}

info "a ring's warning, in a zone with a half-hour offset"
TZ=IST-5:30 "$emit" blkbackd warn d5/51712/q0 "disk on fire" >"$TEST_DIR/sink" 2>"$TEST_DIR/err" &
pid=$!
wait $pid || fail "log-emit failed"
[ "$(cat "$TEST_DIR/sink")" = stderr ] || fail "sink $(cat "$TEST_DIR/sink")"
check_line "$TEST_DIR/err" blkbackd $pid 'warning: d5/51712/q0: disk on fire'
grep -q '+05:30 ' "$TEST_DIR/err" || fail "not local time: $(cat "$TEST_DIR/err")"

info "JOURNAL_STREAM that is not stderr (a redirected stream) stays plain"
st=$(stat -L -c %d:%i /dev/null)
JOURNAL_STREAM=$st "$emit" xensimd err - "no prefix" >"$TEST_DIR/sink" 2>"$TEST_DIR/err" &
pid=$!
wait $pid || fail "log-emit failed"
[ "$(cat "$TEST_DIR/sink")" = stderr ] || fail "sink $(cat "$TEST_DIR/sink") for a foreign stream"
check_line "$TEST_DIR/err" xensimd $pid 'error: no prefix'
JOURNAL_STREAM=garbage "$emit" x info - m >"$TEST_DIR/sink" 2>/dev/null || fail "log-emit failed"
[ "$(cat "$TEST_DIR/sink")" = stderr ] || fail "a malformed JOURNAL_STREAM was believed"

info "not in the foreground and not the journal: syslog"
"$emit" -D x info - m >"$TEST_DIR/sink" 2>"$TEST_DIR/err" || fail "log-emit -D failed"
[ "$(cat "$TEST_DIR/sink")" = syslog ] || fail "sink $(cat "$TEST_DIR/sink") without -d"
[ -s "$TEST_DIR/err" ] && fail "syslog sink wrote to stderr: $(cat "$TEST_DIR/err")"

info "the daemon's own first line"
start_xensimd
start_blkbackd
wait_for 10 test -s "$TEST_DIR/blkbackd.log" || fail "blkbackd logged nothing"
check_line "$TEST_DIR/blkbackd.log" blkbackd "$BLKBACKD_PID" 'info: .*'
exit 0
