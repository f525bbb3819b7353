#!/bin/sh
# T24: a guest that writes garbage to make blkbackd log. 200 attempts
# with a different bad value each time must cost a bounded number of log
# lines (failures beyond a burst go to the error node only, and are
# counted later), and a value with newlines in it must not forge a log
# line. A verified workload on another guest runs beside.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 180
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd
truncate -s 16M "$TEST_DIR/hostile.img" "$TEST_DIR/beside.img"
g=$(sim_guest g1) || fail "xensim create g1"
sim_guest g2 >/dev/null || fail "xensim create g2"
sim_attach g1 xvda "$TEST_DIR/hostile.img"
sim_attach g2 xvda "$TEST_DIR/beside.img"
be=$(be_path "$g" 51712)
fe=$(fe_path "$g" 51712)
gxs() {
	local tool=$1
	shift
	XENSTORED_PATH="$XENSIM_DIR/domain/$g/socket" "xenstore-$tool" "$@"
}
gxs write "$fe/ring-ref" 8 "$fe/event-channel" 3

info "T24: 200 different bad protocol values"
beside_start g2 xvda 20
lines0=$(grep -c "d$g/51712:" "$TEST_DIR/blkbackd.log")
i=0
while [ $i -lt 200 ]; do
	gxs write "$fe/protocol" "bad-$i" "$fe/state" 3
	i=$((i + 1))
done
wait_for 10 sh -c "xenstore-read '$be/error' | grep -q 'bad-199'" ||
	fail "the error node does not show the last attempt: '$(xenstore-read "$be/error" 2>&1)'"
lines=$(( $(grep -c "d$g/51712:" "$TEST_DIR/blkbackd.log") - lines0 ))
info "  $lines log lines for 200 attempts"
[ "$lines" -le 10 ] || fail "$lines log lines for 200 bad values"

info "T24: a value with newlines in it"
gxs write "$fe/state" 1
expect_state "$g" 51712 2 5 "back to InitWait"
# The window of the rate limit above is a minute: a fresh vbd's log.
xenstore-rm "$be" "$fe"
sim_attach g1 xvdb "$TEST_DIR/hostile.img"
fe=$(fe_path "$g" 51728)
be=$(be_path "$g" 51728)
gxs write "$fe/ring-ref" 8 "$fe/event-channel" 3
gxs write "$fe/protocol" "$(printf 'x\nblkbackd[1] error: FORGED line\n')" "$fe/state" 3
wait_for 10 sh -c "xenstore-read '$be/error' | grep -q 'protocol'" ||
	fail "no error for the bad protocol: '$(xenstore-read "$be/error" 2>&1)'"
! grep -q "^blkbackd\[1\] error: FORGED" "$TEST_DIR/blkbackd.log" ||
	fail "a guest's value forged a log line"
grep -q 'x\\x0ablkbackd\[1\] error: FORGED' "$TEST_DIR/blkbackd.log" ||
	fail "the bad value is not in the log, escaped"
beside_check "T24"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
