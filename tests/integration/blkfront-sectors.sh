#!/bin/sh
# 4096-byte logical sectors (blkbackd --sector-size 4096): verified
# workloads whose sector numbers stay in 512-byte units and 4 KiB aligned;
# sizes the sector size cannot express are refused by blkfront-sim, and a
# misaligned raw request gets BLKIF_RSP_ERROR from the backend.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkfront-lib.sh"
test_timeout 120
bf_require

start_xensimd
start_blkbackd --sector-size 4096
truncate -s 32M "$TEST_DIR/disk.img"
dom=$(bf_guest g1)
bf_attach "$dom" xvda "$TEST_DIR/disk.img"
common="--domain $dom --vdev xvda --verify --seed 3"

info "4096-byte sectors are published"
bf_run s4k 0 $common --workload randrw --bs 4k --qd 32 --ops 3000 --flush-every 50 \
	--discard-every 70
bf_ok s4k
bf_expect s4k sector_size == 4096
bf_expect s4k sectors == 65536	# 512-byte units, as Linux
bf_expect s4k discard '>' 0

for abi in x86_32 x86_64; do
	bf_run "s16k-$abi" 0 $common --abi "$abi" --workload randrw --bs 16k --qd 8 \
		--ops 800 --ring-order 1
	bf_ok "s16k-$abi"
done

info "a 512-byte request size does not fit 4096-byte sectors"
bf_run s512 2 $common --workload randread --bs 512 --ops 10
grep -q 'not a multiple' "$TEST_DIR/s512.log" || fail "no reason for --bs 512"

info "raw: an aligned read is answered OKAY, misaligned ones ERROR"
bf_run raw-ok 0 --domain "$dom" --vdev xvda --raw --op 0 --sector 8 \
	--seg new:0:7 --expect-status 0
bf_run raw-sector 0 --domain "$dom" --vdev xvda --raw --op 0 --sector 1 \
	--seg new:0:7 --expect-status -1
bf_run raw-seg 0 --domain "$dom" --vdev xvda --raw --op 0 --sector 8 \
	--seg new:0:3 --expect-status -1
exit 0
