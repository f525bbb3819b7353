#!/bin/sh
# Two guests with two disks each, four verified workloads at once.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkfront-lib.sh"
test_timeout 180
bf_require

start_xensimd
start_blkbackd
pids=""
for g in g1 g2; do
	dom=$(bf_guest "$g")
	for v in xvda xvdb; do
		truncate -s 16M "$TEST_DIR/$g-$v.img"
		bf_attach "$dom" "$v" "$TEST_DIR/$g-$v.img"
	done
	for v in xvda xvdb; do
		blkfront-sim --json --domain "$g" --vdev "$v" --workload randrw --qd 16 \
			--seconds 3 --flush-every 50 --verify \
			>"$TEST_DIR/$g-$v.json" 2>"$TEST_DIR/$g-$v.log" &
		pids="$pids $!"
		bg_track $!
	done
done
rc=0
for p in $pids; do wait "$p" || rc=1; done
for g in g1 g2; do
	for v in xvda xvdb; do
		[ $rc -eq 0 ] || cat "$TEST_DIR/$g-$v.log" >&2
		bf_ok "$g-$v"
		bf_expect "$g-$v" verified_sectors '>' 100
	done
done
[ $rc -eq 0 ] || fail "a concurrent run failed"
exit 0
