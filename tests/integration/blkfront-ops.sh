#!/bin/sh
# Every operation through blkbackd, verified, in both ABIs: reads, writes,
# flushes, barriers and discards mixed; sequential runs whose reads are
# checked against an earlier run's map; odd and tiny request sizes;
# indirect requests when advertised.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkfront-lib.sh"
test_timeout 180
bf_require

start_xensimd
start_blkbackd
truncate -s 64M "$TEST_DIR/disk.img"
dom=$(bf_guest g1)
bf_attach "$dom" xvda "$TEST_DIR/disk.img"
common="--domain $dom --vdev xvda --size 16M --verify --seed 7"

for abi in x86_64 x86_32; do
	info "all operations mixed, $abi"
	bf_run "mix-$abi" 0 $common --abi "$abi" --workload randrw --bs 4k --qd 16 \
		--ops 3000 --flush-every 40 --barrier-every 70 --discard-every 90
	bf_ok "mix-$abi"
	[ "$(bf_str "mix-$abi" abi)" = "$abi-abi" ] || fail "mix-$abi: abi not used"
	bf_expect "mix-$abi" feature_flush == 1
	bf_expect "mix-$abi" feature_barrier == 1
	bf_expect "mix-$abi" feature_discard == 1
	for k in read write flush barrier discard readback; do
		bf_expect "mix-$abi" "$k" '>' 0
	done
	bf_expect "mix-$abi" verified_sectors '>' 1000
done

info "sequential write, then sequential read checked against its map"
bf_run seqw 0 $common --workload seqwrite --bs 32k --qd 8 --ops 600 \
	--state "$TEST_DIR/seq.state"
bf_ok seqw
bf_run seqr 0 $common --workload seqread --bs 32k --qd 8 --ops 600 \
	--state "$TEST_DIR/seq.state" --no-readback
bf_ok seqr
bf_expect seqr verified_sectors '>' 30000

info "request sizes that are not powers of two, and single sectors"
bf_run odd 0 $common --workload randrw --bs 1536 --qd 32 --ops 2000
bf_ok odd
bf_run tiny 0 $common --workload randrw --bs 512 --qd 32 --ops 2000 --flush-every 10
bf_ok tiny
bf_run big 0 $common --workload randrw --bs 44k --qd 4 --ops 400
bf_ok big

if [ "$(bf_num mix-x86_64 max_indirect_segments)" -ge 32 ]; then
	info "indirect requests"
	bf_run ind 0 $common --workload randrw --bs 128k --qd 8 --ops 400
	bf_ok ind
	bf_run ind4k 0 $common --workload randrw --bs 4k --indirect --qd 8 --ops 400
	bf_ok ind4k
else
	info "blkbackd advertises no indirect segments: a 64k request is refused up front"
	bf_run noind 2 $common --workload randrw --bs 64k --ops 10
fi

info "the backend's log has no protocol complaint"
if grep -qi 'overflow\|bad request' "$TEST_DIR/blkbackd.log"; then
	fail "blkbackd complained: $(grep -i 'overflow\|bad request' "$TEST_DIR/blkbackd.log" | head -3)"
fi
exit 0
