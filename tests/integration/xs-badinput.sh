#!/bin/sh
# Hostile and broken clients against xensimd's xenstore (xs-rawclient):
# unknown types, bad paths, missing NULs, truncated and oversized messages,
# garbage, a client that never reads, one that vanishes mid-transaction.
# Each must get the right XS_ERROR or be dropped, and never disturb others.
. "$top_srcdir/tests/functions.sh"
test_timeout 120
start_xensimd
# A bystander watching throughout must keep working.
xenstore-watch -n 2 /bystander >"$TEST_DIR/bystander.out" 2>&1 &
bpid=$!
wait_for 5 grep -qx /bystander "$TEST_DIR/bystander.out" || fail "bystander watch"
"$top_builddir/tests/xs-rawclient" "$XENSIM_DIR" >"$TEST_DIR/raw.log" 2>&1 || {
	cat "$TEST_DIR/raw.log"
	fail "xs-rawclient"
}
info "$(grep -c '^ok' "$TEST_DIR/raw.log") raw checks passed"
kill -0 "$XENSIMD_PID" || fail "xensimd died"
xenstore-write /bystander/after 1 || fail "write after the abuse"
wait "$bpid" || fail "bystander watch lost its event"
xs_is /local/domain/0/name Domain-0 || fail "tree damaged"
exit 0
