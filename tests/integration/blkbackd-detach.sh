#!/bin/sh
# Deferred disconnect: xensim block-detach (libxl's algorithm) while a
# verified workload is in flight succeeds, every write the frontend saw
# acknowledged is on disk afterwards (re-attach and read back), and nothing
# is answered after the backend reached Closed (blkfront-sim checks). Then
# a frontend killed mid-I/O and a guest destroyed mid-I/O: blkbackd reaches
# Closed or releases, its fds return to baseline and no guest memory stays
# mapped, and another
# guest's disk keeps working throughout.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 240
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

start_xensimd
start_blkbackd ${BLKBACKD_ENGINE:+--io-engine=$BLKBACKD_ENGINE}
for i in 1 2 3; do truncate -s 64M "$TEST_DIR/disk$i.img"; done
g1=$(sim_guest g1) || fail "xensim create"
g2=$(sim_guest g2) || fail "xensim create"
base_fds=$(blkbackd_fds)

# A bystander: g2's disk runs verified I/O during everything below.
sim_attach g2 xvda "$TEST_DIR/disk3.img"
bf_bg g2 xvda --workload randrw --qd 8 --seconds 20 --verify
bystander=$!
expect_state "$g2" 51712 4 5 "bystander connect"
busy_fds=$(blkbackd_fds)

info "detach with I/O in flight"
sim_attach g1 xvda "$TEST_DIR/disk1.img"
rc=0
bf_bg g1 xvda --workload randwrite --qd 32 --seconds 30 --verify --state "$TEST_DIR/g1.state"
front=$!
sleep 2
xensim block-detach g1 xvda || fail "block-detach with I/O in flight failed"
wait $front || rc=$?
[ $rc -eq 3 ] || fail "blkfront-sim exit $rc during detach, wanted 3 (closed, all answers correct)"
xenstore-exists "$(be_path "$g1" 51712)" && fail "backend dir still there after detach"

info "re-attach and read back everything acknowledged"
sim_attach g1 xvda "$TEST_DIR/disk1.img"
bf g1 xvda --workload readback --verify --state "$TEST_DIR/g1.state" ||
	fail "acknowledged writes missing after detach: $(tail -5 "$TEST_DIR/bf.log")"
xensim block-detach g1 xvda || fail "block-detach after read-back"

info "frontend killed mid-I/O, then the guest destroyed"
sim_attach g1 xvda "$TEST_DIR/disk1.img"
bf_bg g1 xvda --workload randrw --qd 32 --seconds 30
front=$!
sleep 2
kill -KILL $front
wait $front 2>/dev/null || true
xensim destroy g1 || fail "destroy g1"
wait_for 5 fds_at_most "$busy_fds" ||
	fail "fds after destroy: $(blkbackd_fds), $busy_fds with only g2 connected"

info "guest destroyed with I/O in flight"
g3=$(sim_guest g3) || fail "xensim create g3"
sim_attach g3 xvda "$TEST_DIR/disk2.img"
bf_bg g3 xvda --workload randwrite --qd 32 --seconds 30
front=$!
sleep 2
xensim destroy g3 || fail "destroy g3 with I/O in flight"
wait $front 2>/dev/null || true
wait_for 5 fds_at_most "$busy_fds" ||
	fail "fds after destroy mid-I/O: $(blkbackd_fds), $busy_fds with only g2 connected"

wait $bystander || fail "the bystander guest's workload failed"
xensim block-detach g2 xvda || fail "detach g2"
wait_for 5 fds_at_most "$base_fds" ||
	fail "fds $(blkbackd_fds), baseline $base_fds"
for g in $g1 $g2 $g3; do
	wait_for 5 sh -c "! grep -q 'memfd:d$g-' /proc/$BLKBACKD_PID/maps" ||
		fail "blkbackd still maps memory of domain $g"
done
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
