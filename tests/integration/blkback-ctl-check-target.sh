#!/bin/sh
# blkback-ctl check-target, the hotplug script's question: exists, file or
# block device, readable, writable for w (a file nobody may write counts as
# read-only), not in use by another vbd (read-write, or at all for w) except
# read-only sharing. Exit 0, or 1 with one line of reason; 2 for bad usage,
# 3 without a daemon.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 60
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

CTL="$TEST_DIR/ctl.sock"
export BLKBACK_CTL_SOCKET="$CTL"

# ok MODE TARGET / refused MODE TARGET REASON-PATTERN
ok() {
	blkback-ctl check-target --mode "$1" "$2" >"$TEST_DIR/out" 2>&1 ||
		fail "check-target --mode $1 $2 refused: $(cat "$TEST_DIR/out")"
	[ ! -s "$TEST_DIR/out" ] || fail "check-target --mode $1 $2 printed: $(cat "$TEST_DIR/out")"
}
refused() {
	local rc=0
	blkback-ctl check-target --mode "$1" "$2" >"$TEST_DIR/out" 2>"$TEST_DIR/err" || rc=$?
	[ $rc = 1 ] || fail "check-target --mode $1 $2: exit $rc, wanted 1: $(cat "$TEST_DIR/err")"
	[ ! -s "$TEST_DIR/out" ] || fail "check-target printed on stdout: $(cat "$TEST_DIR/out")"
	[ "$(wc -l <"$TEST_DIR/err")" = 1 ] || fail "reason is not one line: $(cat "$TEST_DIR/err")"
	grep -q "$3" "$TEST_DIR/err" || fail "check-target --mode $1 $2: '$(cat "$TEST_DIR/err")', wanted /$3/"
}

truncate -s 8M "$TEST_DIR/a.img" "$TEST_DIR/b.img" "$TEST_DIR/shared.img" "$TEST_DIR/ro.img"
chmod 444 "$TEST_DIR/ro.img"

rc=0
blkback-ctl check-target --mode w "$TEST_DIR/a.img" 2>"$TEST_DIR/err" || rc=$?
[ $rc = 3 ] || fail "no daemon: exit $rc: $(cat "$TEST_DIR/err")"

start_xensimd
start_blkbackd --control "$CTL"

info "plain cases"
ok w "$TEST_DIR/a.img"
ok r "$TEST_DIR/a.img"
refused w "$TEST_DIR/missing.img" "missing.img: No such file or directory"
refused r "$TEST_DIR" "not a regular file or block device"
refused r /dev/null "not a regular file or block device"
refused w "$TEST_DIR/ro.img" "ro.img: file is read-only"
ok r "$TEST_DIR/ro.img"
(cd "$TEST_DIR" && blkback-ctl check-target --mode w a.img) || fail "relative path refused"
(cd "$TEST_DIR" && blkback-ctl check-target --mode w nothere.img 2>&1 | grep -q "^blkback-ctl: $TEST_DIR/nothere.img: No such") ||
	fail "relative path not made absolute"

info "bad usage"
for args in "$TEST_DIR/a.img" "--mode rw $TEST_DIR/a.img" "--mode w" "--mode w a b"; do
	rc=0
	# shellcheck disable=SC2086
	blkback-ctl check-target $args 2>/dev/null || rc=$?
	[ $rc = 2 ] || fail "check-target $args: exit $rc, wanted 2"
done

info "targets in use"
g1=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/a.img"
sim_attach g1 xvdb "$TEST_DIR/shared.img" r
refused w "$TEST_DIR/a.img" "a.img: in use read-write by domain $g1 device 51712"
refused r "$TEST_DIR/a.img" "in use read-write by domain $g1"
# The same file under another name is the same target.
ln -s "$TEST_DIR/a.img" "$TEST_DIR/link.img"
refused r "$TEST_DIR/link.img" "in use read-write"
ok r "$TEST_DIR/shared.img"
refused w "$TEST_DIR/shared.img" "in use read-only by domain $g1 device 51728"
# The in-use check runs on the main thread: it compares identities taken
# where a stat may block (a hung mount) and never looks at the path
# itself.
if main_trace_start %file,%desc; then
	refused r "$TEST_DIR/link.img" "in use read-write"
	main_trace_stop
	if grep -E 'a\.img|link\.img' "$TEST_DIR/main.strace"; then
		fail "the main thread looked at the target path itself"
	fi
else
	info "strace missing or valgrind run: the main thread's calls are not checked"
fi
ok w "$TEST_DIR/b.img"
info "a released vbd frees its target"
xensim block-detach g1 xvda || fail "block-detach"
wait_for 5 blkback-ctl check-target --mode w "$TEST_DIR/a.img" ||
	fail "target still in use after detach: $(blkback-ctl check-target --mode w "$TEST_DIR/a.img" 2>&1)"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
