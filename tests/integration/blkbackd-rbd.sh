#!/bin/sh
# Disks on Ceph RBD images (target=rbd:POOL/IMAGE:conf=...), served through
# librbd from a real one-node cluster (tests/ceph-lib.sh): verified
# workloads in both ABIs, with indirect requests and persistent grants
# (one queue when written, two for a read-only snapshot), all carrying
# one verify map; flushes and discards reach the cluster; the data is in
# the image (rbd export); a snapshot is served read-only and keeps its
# data; an image grown with rbd resize is published to the frontend;
# blkbackd killed -9 under load and an OSD restarted under load: the
# guest sees a pause, no error; the hotplug check refuses images it
# cannot serve, with the reason.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
. "$top_srcdir/tests/ceph-lib.sh"
test_timeout 600
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
grep -q "define HAVE_RBD 1" "$top_builddir/config.h" ||
	skip "blkbackd is built without librbd (configure found no librbd-dev)"
export XENSIM_SCRIPT_DIR="$top_srcdir/hotplug"

ceph_start
rbd_cmd create rbd/vm1 --size 64M --object-size 64K || fail "rbd create vm1"
rbd_cmd create rbd/beside --size 32M || fail "rbd create beside"
img="rbd:rbd/vm1:conf=$CEPH_CONF"

start_xensimd
start_blkbackd
g1=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g2 xvda "rbd:rbd/beside:conf=$CEPH_CONF"
sim_attach g1 xvda "$img"
blkback-ctl show "$g1" 51712 | grep -q 'rbd:rbd/vm1' || fail "show does not name the image"

state="$TEST_DIR/verify.state"
flushes=0
run() { remote_run "$@"; }

info "verified workloads on an RBD image"
beside_start g2 xvda 30
run "4k randrw qd32 with flushes" --workload randwrite --bs 4k --qd 32 --ops 3000 --flush-every 16
run "randrw x86_32, discards" --abi x86_32 --workload randrw --bs 16k --qd 16 --ops 1500 \
	--discard-every 25 --flush-every 40
run "indirect 1 MiB, order 2" --ring-order 2 --indirect --workload randrw --bs 1m --qd 8 --ops 150
# One ring for an image that is written (each ring's handle would take
# the exclusive lock from the other's on every write); the barriers on
# the one ring.
[ "$(xenstore-read "$(be_path "$g1" 51712)/multi-queue-max-queues")" = 1 ] ||
	fail "a writable RBD image is offered more than one queue"
run "barriers" --workload randrw --bs 8k --qd 32 --ops 2000 --barrier-every 50
run "persistent grants, indirect" --persistent --indirect --workload randrw --bs 64k --qd 16 --ops 800
beside_check "RBD workloads"

# Each ring has its own image handle, whose librbd counters go with it:
# they are read while a workload with flushes runs.
info "flushes reach librbd"
bf_bg g1 xvda --workload randwrite --bs 4k --qd 8 --flush-every 4 --seconds 5 --verify --state "$state"
front=$!
expect_state "$g1" 51712 4 10 "connect for the flush count"
sleep 3
lib_flushes=$(rbd_perf "$BLKBACKD_PID" flush)
lib_writes=$(rbd_perf "$BLKBACKD_PID" wr)
info "librbd so far: $lib_writes writes, $lib_flushes flushes"
[ "$lib_flushes" -gt 0 ] && [ "$lib_writes" -gt 0 ] || fail "no flush or no write reached librbd"
wait "$front" || fail "the flush workload failed: $(tail -3 "$TEST_DIR/bf.log")"
expect_state "$g1" 51712 6 5 "close after the flush count"
fe_restart "$g1" 51712

# An image of 64 KiB objects, written in full (64 objects), then
# discarded in 64 KiB pieces: blkfront-sim places each discard on a
# random granule, and 1000 of them miss one of the 64 objects with a
# chance of 64 * (63/64)^1000, about 1e-5. The cluster then no longer
# has their data.
info "discards reach the cluster: the objects they cover are gone"
rbd_cmd create rbd/disc --size 4M --object-size 64K || fail "rbd create disc"
sim_attach g1 xvde "rbd:rbd/disc:conf=$CEPH_CONF"
prefix=$(rbd_cmd info rbd/disc --format json | jq -r .block_name_prefix)
# objects: how many objects of rbd/disc hold data (librbd removes a
# discarded object, or truncates it to nothing when it must keep it).
objects() {
	local o n=0 size
	for o in $(rados -c "$CEPH_CONF" -p rbd ls | grep "^$prefix\\."); do
		size=$(rados -c "$CEPH_CONF" -p rbd stat "$o" 2>/dev/null | sed -n 's/.* size //p')
		[ "${size:-0}" = 0 ] || n=$((n + 1))
	done
	echo "$n"
}
bf g1 xvde --workload seqwrite --bs 64k --qd 4 --ops 64 || fail "writing rbd/disc: $(tail -3 "$TEST_DIR/bf.log")"
before=$(objects)
bf g1 xvde --workload seqwrite --bs 64k --qd 4 --ops 1000 --discard-every 1 ||
	fail "discarding rbd/disc: $(tail -3 "$TEST_DIR/bf.log")"
after=$(objects)
info "objects of rbd/disc holding data: $before written, $after left after the discards"
[ "$before" = 64 ] || fail "64 objects expected after writing rbd/disc in full, found $before"
[ "$after" = 0 ] || fail "$after of the discarded objects still hold data in the cluster"
xensim block-detach g1 xvde || fail "detach of rbd/disc"

info "a snapshot: served read-only, and keeps its data while the image changes"
rbd_cmd snap create rbd/vm1@s1 || fail "rbd snap create"
cp "$state" "$TEST_DIR/snap.state"
sim_attach g1 xvdb "rbd:rbd/vm1@s1:conf=$CEPH_CONF" r
bf g1 xvdb --workload randrw --bs 4k --qd 8 --ops 200 --expect-readonly ||
	fail "writes to the snapshot were not refused: $(tail -3 "$TEST_DIR/bf.log")"
# Read-only, it takes no lock: two queues.
[ "$(xenstore-read "$(be_path "$g1" 51728)/multi-queue-max-queues")" -ge 2 ] ||
	fail "a read-only snapshot is offered one queue only"
run "randwrite after the snapshot" --workload randwrite --bs 4k --qd 16 --ops 1500
bf g1 xvdb --queues 2 --workload readback --verify --state "$TEST_DIR/snap.state" ||
	fail "the snapshot changed with its image: $(tail -3 "$TEST_DIR/bf.log")"
xensim block-detach g1 xvdb || fail "detach of the snapshot"

info "the data is in the image: exported, read back through a file vbd"
xensim block-detach g1 xvda || fail "detach of the image"
rbd_cmd export rbd/vm1 "$TEST_DIR/export.img" >/dev/null 2>&1 || fail "rbd export"
sim_attach g1 xvdc "$TEST_DIR/export.img"
bf g1 xvdc --workload readback --verify --state "$state" ||
	fail "read-back of the exported image: $(tail -3 "$TEST_DIR/bf.log")"
xensim block-detach g1 xvdc || fail "detach of the export"

info "rbd resize while connected: the new size is published"
sim_attach g1 xvda "$img"
be=$(be_path "$g1" 51712)
bf_bg g1 xvda --workload randread --qd 4 --seconds 6
front=$!
expect_state "$g1" 51712 4 10 "connect for the resize"
rbd_cmd resize rbd/vm1 --size 96M >/dev/null 2>&1 || fail "rbd resize"
wait_for 5 xs_is "$be/sectors" $((96 * 2048)) ||
	fail "sectors still $(xenstore-read "$be/sectors") after rbd resize"
be_state_is "$g1" 51712 4 || fail "the resize left Connected"
wait "$front" || fail "the workload across the resize failed: $(tail -3 "$TEST_DIR/bf.log")"
expect_state "$g1" 51712 6 5 "close after the resize"
fe_restart "$g1" 51712
bf g1 xvda --workload randrw --bs 16k --qd 16 --ops 1000 --offset 64M --size 32M --verify ||
	fail "verified workload on the grown part: $(tail -3 "$TEST_DIR/bf.log")"
expect_state "$g1" 51712 6 5 "close after the grown part"
fe_restart "$g1" 51712
# The verify map covers the first 64 MiB, from before the resize.
run "randrw on the old part of the grown image" --workload randrw --bs 16k --qd 16 --ops 1000 \
	--size 64M

# load SECONDS NAME: a verified workload on the image in the
# background, its report in $TEST_DIR/NAME.json; sets LOAD_PID.
load() {
	blkfront-sim --domain g1 --vdev xvda --workload randrw --qd 32 --flush-every 20 \
		--seconds "$1" --timeout 40 --verify --state "$state" --size 64M --json \
		>"$TEST_DIR/$2.json" 2>>"$TEST_DIR/bf.log" &
	LOAD_PID=$!
	bg_track "$LOAD_PID"
	expect_state "$g1" 51712 4 10 "connect for $2"
}
# load_ok NAME WHAT: the workload passed with no error.
load_ok() {
	wait "$LOAD_PID" || fail "$2: the workload failed: $(cat "$TEST_DIR/$1.json")"
	info "$2: $(jq -c '{total_ops, errors, mismatches, unanswered}' "$TEST_DIR/$1.json")"
	[ "$(jq .errors "$TEST_DIR/$1.json")" = 0 ] || fail "$2: the guest saw errors"
	expect_state "$g1" 51712 6 5 "close after $2"
	fe_restart "$g1" 51712
}

info "blkbackd killed -9 under load on the image: the guest sees a pause only"
t0=$SECONDS
load 8 crash
sleep 2
old=$BLKBACKD_PID
kill -KILL "$old"
wait_dead "$old"
start_blkbackd
load_ok crash "across a kill -9 (the new daemon takes the image's lock over)"
info "kill -9 case took $((SECONDS - t0)) s"
grep -q 'resumed\|taking over' "$TEST_DIR/blkbackd.log" || fail "no takeover in the log"

info "the OSD stopped and restarted under load: a pause, then the data verified"
load 8 osd
sleep 2
ceph_osd_stop
sleep 3
ceph_osd_start
load_ok osd "across an OSD restart"
wait_for 60 ceph_osd_up || fail "the OSD did not come back"
run "read back everything after the OSD restart" --workload readback --size 64M

# attach_refused VDEV ACCESS TARGET MSG: the hotplug script fails the
# attach with MSG in its error.
attach_refused() {
	local t0=$SECONDS
	if xensim block-attach g1 "vdev=$1, access=$2, script=blkbackd, target=$3" \
		>"$TEST_DIR/out" 2>"$TEST_DIR/err"; then
		fail "attach of $3 ($2) succeeded"
	fi
	grep -q "$4" "$TEST_DIR/err" || fail "attach of $3: '$(cat "$TEST_DIR/err")' lacks '$4'"
	info "refused in $((SECONDS - t0)) s: $(tail -1 "$TEST_DIR/err")"
}

info "images the hotplug check refuses"
attach_refused xvdd w "$img" "in use read-write by domain $g1"
attach_refused xvdd w "rbd:rbd/nothere:conf=$CEPH_CONF" "No such file"
attach_refused xvdd w "rbd:rbd/vm1@s1:conf=$CEPH_CONF" "snapshot s1 is read-only"
attach_refused xvdd r "rbd:rbd/vm1@nosnap:conf=$CEPH_CONF" "No such file"
attach_refused xvdd r "rbd:nopool/vm1:conf=$CEPH_CONF" "pool nopool"
attach_refused xvdd w "rbd:rbd:conf=$CEPH_CONF" "not rbd:POOL"
attach_refused xvdd w "rbd:rbd/vm1:conf=$CEPH_CONF:keyring=/etc/shadow" "unknown rbd option 'keyring'"
attach_refused xvdd w "rbd:rbd/vm1:conf=$TEST_DIR/none.conf" "cannot read"
attach_refused xvdd w "rbd:rbd/vm1:mon_host=127.0.0.2" "cannot connect"
rbd_cmd create rbd/other --size 16M || fail "rbd create other"
rbd_cmd bench --io-type write --io-size 4K --io-total 4G rbd/other >/dev/null 2>&1 &
bench_pid=$!
bg_track "$bench_pid"
wait_for 20 sh -c "rbd -c '$CEPH_CONF' lock ls rbd/other | grep -q auto" ||
	fail "rbd bench did not take the lock of rbd/other"
attach_refused xvdd w "rbd:rbd/other:conf=$CEPH_CONF" "locked for writing by another Ceph client"
kill "$bench_pid"
wait "$bench_pid" 2>/dev/null || true
blkback-ctl list >/dev/null || fail "blkbackd does not answer after the refusals"
beside_start g2 xvda 3
beside_check "after everything"

# SIGTERM closes every image (each ring's handle releases the image's
# lock, which librbd announces to the other handles) before the cluster
# connection goes: time it here, with a bound of its own, rather than
# under the trap's 5 s.
info "blkbackd stops on SIGTERM with its RBD images"
t0=$SECONDS
kill -TERM "$BLKBACKD_PID"
wait_for 60 sh -c "! kill -0 $BLKBACKD_PID 2>/dev/null" || fail "blkbackd did not stop within 60 s of SIGTERM"
wait "$BLKBACKD_PID" || fail "blkbackd exited with status $? on SIGTERM"
info "blkbackd stopped in $((SECONDS - t0)) s"
