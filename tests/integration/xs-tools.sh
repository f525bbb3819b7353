#!/bin/sh
# xensimd's xenstore as dom0 through the stock xenstore-* tools: the boot
# tree, read/write/ls/list/exists/rm/chmod, relative paths, watches with
# their initial event and rm semantics, and a clean exit on SIGTERM that
# removes the socket.
. "$top_srcdir/tests/functions.sh"
test_timeout 60
command -v xenstore-read >/dev/null || skip "xenstore-utils not installed"
start_xensimd

# The tree a booted dom0 has.
xs_is /local/domain/0/name Domain-0 || fail "no /local/domain/0/name"
xs_is /local/domain/0/domid 0 || fail "no /local/domain/0/domid"
xenstore-exists /tool/xenstored || fail "no /tool/xenstored"
xs_is name Domain-0 || fail "relative path from dom0 does not resolve to /local/domain/0"

# Write, read (several paths at once go through a transaction).
xenstore-write /a/b hello /a/c "two words" || fail "xenstore-write"
[ "$(xenstore-read /a/b /a/c)" = "$(printf 'hello\ntwo words')" ] || fail "xenstore-read two paths"
xs_is /a "" || fail "implicit parent /a not empty"
xenstore-write rel/x 1 || fail "relative write"
xs_is /local/domain/0/rel/x 1 || fail "relative write did not land under /local/domain/0"

# ls, list, exists.
out=$(xenstore-ls /a) || fail "xenstore-ls"
[ "$out" = "$(printf 'b = "hello"\nc = "two words"')" ] || fail "xenstore-ls output: $out"
[ "$(xenstore-list /a)" = "$(printf 'b\nc')" ] || fail "xenstore-list"
xenstore-exists /a/b || fail "xenstore-exists on an existing node"
expect_fail xenstore-exists /a/nope
expect_fail xenstore-read /a/nope

# chmod and perms, also recursively.
xenstore-chmod /a/b n0 r5 || fail "xenstore-chmod"
xenstore-ls -p /a | grep -q 'b = "hello".*(n0,r5)' || fail "perms not shown by ls -p"
xenstore-chmod -r /a b0 w3 || fail "xenstore-chmod -r"
[ "$(xenstore-ls -p /a | grep -c '(b0,w3)')" = 2 ] || fail "recursive chmod"
expect_fail xenstore-chmod /a/b x0

# rm: a missing node is fine when its parent exists, not otherwise.
xenstore-rm /a/b || fail "xenstore-rm"
expect_fail xenstore-read /a/b
xenstore-rm /a/never || fail "rm of a missing node with an existing parent"
expect_fail xenstore-rm /nope/never

# Watches: the initial event, a write below, and rm of an ancestor.
xenstore-write /w/keep 1
xenstore-watch -n 3 /w/keep >"$TEST_DIR/watch.out" 2>&1 &
wpid=$!
wait_for 5 grep -qx /w/keep "$TEST_DIR/watch.out" || fail "no initial watch event"
xenstore-write /w/keep 2
xenstore-write /w/other 3       # not below the watch: no event
xenstore-rm /w
wait "$wpid" || fail "xenstore-watch -n 3 did not get 3 events"
[ "$(cat "$TEST_DIR/watch.out")" = "$(printf '/w/keep\n/w/keep\n/w/keep')" ] ||
	fail "watch events: $(cat "$TEST_DIR/watch.out")"

xenstore-watch -n 2 / >"$TEST_DIR/root.out" 2>&1 &
wpid=$!
wait_for 5 grep -qx / "$TEST_DIR/root.out" || fail "no initial event on /"
xenstore-write /deep/er/node x
wait "$wpid" || fail "watch on / missed a write"
[ "$(tail -n 1 "$TEST_DIR/root.out")" = /deep/er/node ] || fail "watch on / saw $(cat "$TEST_DIR/root.out")"

xenstore-watch -n 1 @introduceDomain >"$TEST_DIR/special.out" 2>&1 || fail "watch @introduceDomain"
grep -qx @introduceDomain "$TEST_DIR/special.out" || fail "special watch initial event"

# SIGTERM: exits 0 and takes its socket with it.
kill -TERM "$XENSIMD_PID"
wait "$XENSIMD_PID" || fail "xensimd exited with $? on SIGTERM"
[ ! -e "$XENSIM_DIR/socket" ] || fail "socket left behind"
exit 0
