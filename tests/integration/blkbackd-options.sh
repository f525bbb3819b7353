#!/bin/sh
# blkbackd's command line: help and version succeed, bad options exit 2,
# -t checks the configuration, a missing xenstore is a clean failure, and
# SIGTERM stops it with status 0 and removes its pidfile.
. "$top_srcdir/tests/functions.sh"
test_timeout 60

blkbackd --help | grep -q -- '--io-engine' || fail "--help lacks --io-engine"
blkbackd --version | grep -q '^blkbackd ' || fail "--version"
for bad in "--platform=vmware" "--io-engine=magic" "--script-name=a/b" \
	   "--sector-size=1024" "--resize-interval=-1" "--max-domain-memory=-1" \
	   "--max-domain-memory=1T" "--bogus" "extra-arg"; do
	rc=0
	blkbackd -d $bad >"$TEST_DIR/out" 2>&1 || rc=$?
	[ $rc -eq 2 ] || fail "blkbackd $bad exited $rc, wanted 2"
	[ -s "$TEST_DIR/out" ] || fail "blkbackd $bad printed no message"
done

XENSTORED_PATH="$TEST_DIR/no-such-socket" expect_fail blkbackd -d --platform=sim -t \
	>"$TEST_DIR/out" 2>&1
grep -qi xenstore "$TEST_DIR/out" || fail "no xenstore error message"

start_xensimd
blkbackd -d --platform=sim --dir "$XENSIM_DIR" -t >"$TEST_DIR/out" 2>&1 ||
	fail "-t failed: $(cat "$TEST_DIR/out")"

start_blkbackd
pid=$BLKBACKD_PID
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ $rc -eq 0 ] || fail "SIGTERM exit status $rc"
[ ! -e "$TEST_DIR/blkbackd.pid" ] || fail "pidfile left behind"

info "--io-engine=null answers every request without touching storage"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
start_blkbackd --io-engine=null
grep -q 'nothing is read or written' "$TEST_DIR/blkbackd.log" || fail "no warning for the null engine"
head -c 8M /dev/urandom >"$TEST_DIR/null.img"
sum=$(md5sum <"$TEST_DIR/null.img")
sim_guest g1 >/dev/null || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/null.img"
bf g1 xvda --workload randwrite --ops 2000 --qd 16 || fail "null engine workload: $(tail -3 "$TEST_DIR/bf.log")"
[ "$(md5sum <"$TEST_DIR/null.img")" = "$sum" ] || fail "the null engine wrote to the file"
blkback-ctl stats --json | grep -q '"write":2000' || fail "the null engine did not answer 2000 writes"
exit 0
