#!/bin/sh
# xensimd's xenstore through a real libxenstore client (xs-libclient):
# transaction conflicts ending in EAGAIN and a successful retry, watch
# semantics, DIRECTORY_PART on a big directory, domain introduce/release
# with a guest's permissions and quotas, a client vanishing mid-transaction.
. "$top_srcdir/tests/functions.sh"
test_timeout 90
start_xensimd
for s in transactions watches dirpart domain disconnect; do
	info "scenario $s"
	"$top_builddir/tests/xs-libclient" "$XENSIM_DIR" $s >"$TEST_DIR/$s.log" 2>&1 || {
		cat "$TEST_DIR/$s.log"
		fail "scenario $s"
	}
	grep -c '^ok' "$TEST_DIR/$s.log" | sed "s/^/# $s: checks passed: /"
	kill -0 "$XENSIMD_PID" || fail "xensimd died during $s"
done
exit 0
