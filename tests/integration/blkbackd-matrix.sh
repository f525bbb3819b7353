#!/bin/sh
# Every combination of the features a frontend negotiates, under a verified
# workload: 1 or 3 queues x ring order 0 or 4 x direct or indirect requests
# x grant copy or persistent grants x the x86_64 or x86_32 ABI (32 runs).
# Each reconnects the same vbd, so every run also checks that the data the
# earlier ones acknowledged is still there (--state, read back at the end).
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 300
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd --max-queues 4
truncate -s 32M "$TEST_DIR/disk.img"
sim_guest g1 >/dev/null || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk.img"

n=0
for queues in 1 3; do
	for order in 0 4; do
		for indirect in "" --indirect; do
			for persistent in "" --persistent; do
				for abi in x86_64 x86_32; do
					n=$((n + 1))
					what="queues $queues, order $order, ${indirect:-direct}, ${persistent:---copy}, $abi"
					bs=4k
					[ -z "$indirect" ] || bs=64k
					# shellcheck disable=SC2086
					bf g1 xvda --queues $queues --ring-order $order $indirect $persistent \
						--abi $abi --workload randrw --bs $bs --qd 24 --ops 1500 \
						--flush-every 100 --verify --state "$TEST_DIR/verify.state" ||
						fail "$what: $(tail -5 "$TEST_DIR/bf.log")"
				done
			done
		done
	done
done
info "$n combinations verified"
[ "$(grep -c 'result: *ok' "$TEST_DIR/bf.log")" -eq "$n" ] || fail "not every run ended ok"
grep -q 'backend Connected (3 rings, order 4, x86_32-abi, .*persistent grants)' \
	"$TEST_DIR/blkbackd.log" || fail "the richest combination was never negotiated"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
