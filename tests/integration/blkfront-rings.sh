#!/bin/sh
# Ring orders 0 to 4 in both ABIs, each filled to its last entry by a
# verified workload; a queue deeper than the ring is refused.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkfront-lib.sh"
test_timeout 240
bf_require

start_xensimd
start_blkbackd
truncate -s 32M "$TEST_DIR/disk.img"
dom=$(bf_guest g1)
bf_attach "$dom" xvda "$TEST_DIR/disk.img"

for abi in x86_64 x86_32; do
	for order in 0 1 2 3 4; do
		ents=$((32 << order))
		name="ring-$abi-$order"
		info "ring order $order, $abi: $ents entries, all in flight"
		bf_run "$name" 0 --domain "$dom" --vdev xvda --abi "$abi" \
			--ring-order "$order" --qd "$ents" --ops $((ents * 6)) \
			--workload randrw --bs 4k --size 8M --verify --seed "$order"
		bf_ok "$name"
		bf_expect "$name" ring_order == "$order"
		bf_expect "$name" ring_entries == "$ents"
		bf_expect "$name" readback '>' 0
	done
done

info "a queue deeper than the ring is refused"
bf_run deep 2 --domain "$dom" --vdev xvda --ring-order 0 --qd 33 --ops 10
grep -q 'more than the ring' "$TEST_DIR/deep.log" || fail "no reason given for --qd 33"
exit 0
