#!/bin/sh
# Raw single requests, the hostile guest's toolbox: each malformed field
# gets its documented answer from blkbackd (ERROR, or EOPNOTSUPP for ops it
# does not know), the id is echoed whatever it is, and blkfront-sim itself
# fails when the status is not the expected one.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkfront-lib.sh"
test_timeout 120
bf_require

start_xensimd
start_blkbackd
truncate -s 16M "$TEST_DIR/disk.img"
dom=$(bf_guest g1)
bf_attach "$dom" xvda "$TEST_DIR/disk.img"

# raw NAME STATUS ARGS...: one request, its status must be STATUS.
raw() {
	local name=$1 want=$2
	shift 2
	bf_run "raw-$name" 0 --domain "$dom" --vdev xvda --raw --expect-status "$want" "$@"
	grep -q "^response: .* status=$want " "$TEST_DIR/raw-$name.json" ||
		fail "raw-$name: no response line with status $want"
}

info "well-formed requests"
raw read 0 --op 0 --sector 0 --seg new:0:7
raw write 0 --op 1 --sector 64 --seg new:0:7 --seg new:0:7
raw write11 0 --op 1 --sector 128 --nr-segments 11 --seg-auto
raw partial 0 --op 0 --sector 8 --seg new:2:5
raw flush 0 --op 3 --nr-segments 0
raw lastsector 0 --op 0 --sector $((16 * 2048 - 1)) --seg new:0:0

info "the id is opaque and echoed"
bf_run raw-id 0 --domain "$dom" --vdev xvda --raw --op 0 --seg new:0:7 \
	--id 18446744073709551615 --expect-status 0
grep -q 'id=18446744073709551615 ' "$TEST_DIR/raw-id.json" || fail "id not echoed"

info "bad segment counts and geometry get ERROR"
raw noseg -1 --op 0 --nr-segments 0
raw seg12 -1 --op 0 --nr-segments 12 --seg-auto
raw seg255 -1 --op 1 --nr-segments 255 --seg-auto
raw firstlast -1 --op 0 --seg new:5:2
raw last8 -1 --op 0 --seg new:0:8
raw seg255b -1 --op 0 --seg new:255:255

info "sectors past the end or wrapping get ERROR"
raw pastend -1 --op 0 --sector $((16 * 2048)) --seg new:0:0
raw straddle -1 --op 1 --sector $((16 * 2048 - 4)) --seg new:0:7
raw wrap -1 --op 0 --sector 18446744073709551615 --seg new:0:7

info "grants that are not ours or not granted get ERROR"
raw badgref -1 --op 0 --seg 16000:0:7
raw gref0 -1 --op 1 --seg 0:0:7

info "reserved and unknown operations get EOPNOTSUPP"
raw op4 -2 --op 4 --seg new:0:7
raw op7 -2 --op 7 --seg new:0:7
raw op255 -2 --op 255

info "INDIRECT: per the backend's feature-max-indirect-segments"
bf_run probe 0 --domain "$dom" --vdev xvda --workload randread --ops 1
if [ "$(bf_num probe max_indirect_segments)" = 0 ]; then
	raw ind-none -2 --op 6 --indirect-op 0 --nr-segments 1 --seg new:0:7
else
	raw ind-read 0 --op 6 --indirect-op 0 --nr-segments 2 --seg-auto
	raw ind-op -1 --op 6 --indirect-op 3 --nr-segments 1 --seg-auto
	raw ind-zero -1 --op 6 --indirect-op 0 --nr-segments 0 --indirect-pages 1
	raw ind-badpage -1 --op 6 --indirect-op 0 --nr-segments 1 --indirect-pages 0 \
		--indirect-gref 16000
fi

info "the backend still serves after all that"
bf_run after 0 --domain "$dom" --vdev xvda --workload randrw --ops 500 --verify
bf_ok after

info "blkfront-sim fails when the status is not the expected one"
bf_run raw-wrong 1 --domain "$dom" --vdev xvda --raw --op 0 --seg new:0:7 \
	--expect-status -1
exit 0
