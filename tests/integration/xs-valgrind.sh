#!/bin/sh
# xensimd's xenstore server under valgrind: the libxenstore scenarios and
# the raw-socket abuse, then SIGTERM; any memory error or leak (everything
# is freed on stop) fails the test.
. "$top_srcdir/tests/functions.sh"
test_timeout 300
command -v valgrind >/dev/null || skip "valgrind not installed"
# valgrind cannot run a binary built with AddressSanitizer.
ldd "$top_builddir/frontend-sim/xensimd" | grep -q libasan &&
	skip "built with --enable-sanitizers; valgrind and ASan do not mix"
mkdir -p "$XENSIM_DIR"
valgrind -q --leak-check=full --show-leak-kinds=all \
	--errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
	xensimd -d --dir "$XENSIM_DIR" >"$TEST_DIR/xensimd.log" 2>&1 &
XENSIMD_PID=$!
_pids="$XENSIMD_PID $_pids"
wait_for 30 test -S "$XENSIM_DIR/socket" || fail "xensimd did not start under valgrind"
for s in transactions watches dirpart domain disconnect; do
	"$top_builddir/tests/xs-libclient" "$XENSIM_DIR" $s >"$TEST_DIR/$s.out" 2>&1 ||
		{ cat "$TEST_DIR/$s.out"; fail "scenario $s"; }
done
"$top_builddir/tests/xs-rawclient" "$XENSIM_DIR" >"$TEST_DIR/raw.out" 2>&1 ||
	{ cat "$TEST_DIR/raw.out"; fail "xs-rawclient"; }
kill -TERM "$XENSIMD_PID"
rc=0
wait "$XENSIMD_PID" || rc=$?
[ $rc -eq 0 ] || { cat "$TEST_DIR/xensimd.log"; fail "valgrind reports errors or leaks (exit $rc)"; }
exit 0
