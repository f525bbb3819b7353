#!/bin/sh
# Disks in image formats (target=qcow2:/path...) served through a
# qemu-storage-daemon that blkbackd starts per image: verified workloads in
# both ABIs, with indirect requests, two queues and persistent grants, all
# carrying one verify map; flushes reach the image (qemu-img check and
# compare afterwards); the daemon killed -9 under load (restarted, the
# guest sees no error); blkbackd killed -9 under load (the next one adopts
# the daemon, and stops the one no vbd took over); release stops it; the
# hotplug check refuses images it cannot serve, with the reason.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 600
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v qemu-storage-daemon >/dev/null ||
	skip "qemu-storage-daemon not installed (Debian: qemu-system-common)"
command -v qemu-img >/dev/null || skip "qemu-img not installed (Debian: qemu-utils)"
export XENSIM_SCRIPT_DIR="$top_srcdir/hotplug"
export BLKBACKD_QSD_DIR="$TEST_DIR/qsd"


qemu-img create -q -f qcow2 "$TEST_DIR/vm1.qcow2" 64M || fail "qemu-img create vm1"
qemu-img create -q -f qcow2 "$TEST_DIR/beside.qcow2" 32M || fail "qemu-img create beside"
img="qcow2:$TEST_DIR/vm1.qcow2"

start_xensimd
start_blkbackd --nbd-reconnect=20
g1=$(sim_guest g1) || fail "xensim create g1"
g2=$(sim_guest g2) || fail "xensim create g2"
sim_attach g2 xvda "qcow2:$TEST_DIR/beside.qcow2"
sim_attach g1 xvda "$img"
blkback-ctl show "$g1" 51712 | grep -q "qcow2:$TEST_DIR/vm1.qcow2" ||
	fail "show does not name the image"

# qsd_pid IMAGE: the pid of the daemon serving IMAGE, or nothing (the
# pattern is anchored: a shell whose command line quotes it is no match).
qsd_pid() {
	pgrep -f "^qemu-storage-daemon .*filename=$1," || true
}
# qsd_gone IMAGE: no daemon serves IMAGE.
qsd_gone() { [ -z "$(qsd_pid "$1")" ]; }
# qsd_replaced IMAGE PID: a daemon other than PID serves IMAGE.
qsd_replaced() {
	local p
	p=$(qsd_pid "$1")
	[ -n "$p" ] && [ "$p" != "$2" ]
}
pid=$(qsd_pid "$TEST_DIR/vm1.qcow2")
[ -n "$pid" ] || fail "no qemu-storage-daemon serves vm1.qcow2"
info "qemu-storage-daemon $pid serves vm1.qcow2"
[ "$(qsd_pid "$TEST_DIR/vm1.qcow2" | wc -l)" = 1 ] || fail "more than one daemon on vm1.qcow2"

state="$TEST_DIR/verify.state"
flushes=0
run() { remote_run "$@"; }

info "verified workloads on a qcow2 image"
beside_start g2 xvda 30
run "4k randrw qd32 with flushes" --workload randwrite --bs 4k --qd 32 --ops 3000 --flush-every 16
run "randrw x86_32, discards" --abi x86_32 --workload randrw --bs 16k --qd 16 --ops 1500 \
	--discard-every 25 --flush-every 40
run "indirect 1 MiB, order 2" --ring-order 2 --indirect --workload randrw --bs 1m --qd 8 --ops 150
run "two queues, barriers" --queues 2 --workload randrw --bs 8k --qd 32 --ops 2000 --barrier-every 50
run "persistent grants, indirect" --persistent --indirect --workload randrw --bs 64k --qd 16 --ops 800
beside_check "qcow2 workloads"
[ "$flushes" -gt 0 ] || fail "the workloads sent no flush"

# load SECONDS NAME: a verified two-queue workload on the image in the
# background, its report in $TEST_DIR/NAME.json; sets LOAD_PID.
load() {
	blkfront-sim --domain g1 --vdev xvda --queues 2 --workload randrw --qd 32 --flush-every 20 \
		--seconds "$1" --timeout 60 --verify --state "$state" --size 64M --json \
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

info "qemu-storage-daemon killed -9 under load: restarted, the guest sees a pause only"
load 8 qsdkill
sleep 2
old_qsd=$(qsd_pid "$TEST_DIR/vm1.qcow2")
kill -KILL "$old_qsd"
wait_for 15 qsd_replaced "$TEST_DIR/vm1.qcow2" "$old_qsd" ||
	fail "the daemon was not restarted"
load_ok qsdkill "across a kill -9 of the daemon"
grep -q 'qemu-storage-daemon (pid '"$old_qsd"') .* died; restarting' "$TEST_DIR/blkbackd.log" ||
	fail "no restart in the log"
run "read back everything after the daemon's restart" --workload readback --size 64M

info "blkbackd killed -9 under load: the next one adopts the daemon"
qsd_before=$(qsd_pid "$TEST_DIR/vm1.qcow2")
load 8 crash
sleep 2
old=$BLKBACKD_PID
kill -KILL "$old"
wait_dead "$old"
start_blkbackd --nbd-reconnect=20
load_ok crash "across a kill -9 of blkbackd"
grep -q 'resumed\|taking over' "$TEST_DIR/blkbackd.log" || fail "no takeover in the log"
[ "$(qsd_pid "$TEST_DIR/vm1.qcow2")" = "$qsd_before" ] ||
	fail "the daemon was not adopted: $qsd_before before, $(qsd_pid "$TEST_DIR/vm1.qcow2") after"
run "read back everything after the takeover" --workload readback --size 64M

# beside.qcow2's daemon was started by the blkbackd killed above, and its
# successor does not open that vbd (its frontend had closed): nothing
# adopts the daemon, so the sweep after the takeover must stop it, and
# its lock with it. The vbd then serves again, from a new daemon.
info "the daemon no vbd took over is stopped"
wait_for 40 qsd_gone "$TEST_DIR/beside.qcow2" ||
	fail "the daemon of beside.qcow2 still runs, though no vbd uses it"
grep -q 'no vbd uses it' "$TEST_DIR/blkbackd.log" || fail "the sweep did not say why it stopped a daemon"
[ -n "$(qsd_pid "$TEST_DIR/vm1.qcow2")" ] || fail "the sweep stopped the daemon of a served image"
beside_start g2 xvda 3
beside_check "beside.qcow2 after the sweep"

# attach_refused VDEV ACCESS TARGET MSG: the hotplug script fails the
# attach with MSG in its error.
attach_refused() {
	if xensim block-attach g1 "vdev=$1, access=$2, script=blkbackd, target=$3" \
		>"$TEST_DIR/out" 2>"$TEST_DIR/err"; then
		fail "attach of $3 ($2) succeeded"
	fi
	grep -q "$4" "$TEST_DIR/err" || fail "attach of $3: '$(cat "$TEST_DIR/err")' lacks '$4'"
	info "refused: $(tail -1 "$TEST_DIR/err")"
}

# unrecorded_backing IMAGE BACKING: the fresh qcow2 IMAGE names BACKING
# as its backing file without its format, as images made before qemu-img
# required -F do: the name at byte 512 of the header cluster, its offset
# (u64 at 8) and length (u32 at 16, big-endian, here < 256).
unrecorded_backing() {
	printf '%s' "$2" | dd of="$1" bs=1 seek=512 conv=notrunc status=none
	printf '\000\000\000\000\000\000\002\000' | dd of="$1" bs=1 seek=8 conv=notrunc status=none
	# shellcheck disable=SC2059
	printf "\\000\\000\\000\\$(printf %03o ${#2})" |
		dd of="$1" bs=1 seek=16 conv=notrunc status=none
}

info "images the hotplug check refuses"
qemu-img create -q -f raw "$TEST_DIR/raw.img" 16M || fail "qemu-img create raw"
qemu-img create -q -f qcow2 "$TEST_DIR/other.qcow2" 16M || fail "qemu-img create other"
attach_refused xvdd w "$img" "in use read-write by domain $g1"
attach_refused xvdd w "qcow2:$TEST_DIR/none.qcow2" "No such file"
attach_refused xvdd w "qcow2:relative.qcow2" "No such file or directory"
attach_refused xvdd w "qcow2:$TEST_DIR/raw.img" "not in qcow2 format"
# The same file in another format: refused when it is read as that format
# (before a second daemon, which QEMU's lock would stop, is started).
attach_refused xvdd w "vmdk:$TEST_DIR/vm1.qcow2" 'invalid VMDK image descriptor'
attach_refused xvdd w "qcow2:$TEST_DIR" "not a regular file"
# A backing file whose format the overlay does not record would be probed
# by QEMU: a guest that can write the raw base could make it a qcow2
# image whose backing file is any host file. Refused; with the format
# recorded the same chain is served.
qemu-img create -q -f raw "$TEST_DIR/base.raw" 16M || fail "qemu-img create base"
qemu-img create -q -f qcow2 "$TEST_DIR/probed.qcow2" 16M || fail "qemu-img create probed"
unrecorded_backing "$TEST_DIR/probed.qcow2" "$TEST_DIR/base.raw"
qemu-img info --output=json "$TEST_DIR/probed.qcow2" | jq -e '."backing-filename" and
	(has("backing-filename-format") | not)' >/dev/null ||
	fail "the fixture does not name a backing file without its format"
attach_refused xvdd w "qcow2:$TEST_DIR/probed.qcow2" "base.raw has no recorded format"
qsd_gone "$TEST_DIR/probed.qcow2" || fail "a daemon was started for an image refused"
qemu-img create -q -f qcow2 -b "$TEST_DIR/base.raw" -F raw "$TEST_DIR/overlay.qcow2" ||
	fail "qemu-img create overlay"
sim_attach g1 xvde "qcow2:$TEST_DIR/overlay.qcow2"
xensim block-detach g1 xvde || fail "detach of the overlay"
# Another process writing the image: qemu's image locking says so.
qemu-io -f qcow2 "$TEST_DIR/other.qcow2" -c 'sleep 20000' >/dev/null 2>&1 &
holder=$!
bg_track "$holder"
sleep 1
attach_refused xvdd w "qcow2:$TEST_DIR/other.qcow2" 'Failed to get "write" lock'
attach_refused xvdd r "qcow2:$TEST_DIR/other.qcow2" 'lock'
kill "$holder"
wait "$holder" 2>/dev/null || true
blkback-ctl list >/dev/null || fail "blkbackd does not answer after the refusals"
qsd_gone "$TEST_DIR/other.qcow2" || fail "a daemon was left on other.qcow2"

info "release stops the daemon; the image then checks clean and holds the data"
xensim block-detach g1 xvda || fail "detach of the image"
wait_for 10 qsd_gone "$TEST_DIR/vm1.qcow2" ||
	fail "the daemon still runs after the release"
qemu-img check -q "$TEST_DIR/vm1.qcow2" || fail "qemu-img check of vm1.qcow2 after the workloads"
# The data, read straight from the image by qemu-img, is what the verify
# map says was acknowledged: converted to raw and served from a file.
qemu-img convert -f qcow2 -O raw "$TEST_DIR/vm1.qcow2" "$TEST_DIR/vm1.raw" || fail "qemu-img convert"
qemu-img compare -q -f qcow2 -F raw "$TEST_DIR/vm1.qcow2" "$TEST_DIR/vm1.raw" ||
	fail "qemu-img compare"
sim_attach g1 xvdc "$TEST_DIR/vm1.raw"
bf g1 xvdc --workload readback --verify --state "$state" ||
	fail "read-back of the image's data through a raw file: $(tail -3 "$TEST_DIR/bf.log")"
xensim block-detach g1 xvdc || fail "detach of the raw copy"

info "blkbackd stops on SIGTERM and stops the daemon of a served image"
sim_attach g1 xvda "$img"
bf g1 xvda --workload randrw --bs 4k --qd 8 --ops 200 ||
	fail "workload before the SIGTERM: $(tail -3 "$TEST_DIR/bf.log")"
[ -n "$(qsd_pid "$TEST_DIR/vm1.qcow2")" ] || fail "no daemon on vm1.qcow2 before the SIGTERM"
kill -TERM "$BLKBACKD_PID"
wait_for 60 sh -c "! kill -0 $BLKBACKD_PID 2>/dev/null" || fail "blkbackd did not stop within 60 s of SIGTERM"
wait "$BLKBACKD_PID" || fail "blkbackd exited with status $? on SIGTERM"
wait_for 10 qsd_gone "$TEST_DIR/vm1.qcow2" || fail "the daemon of vm1.qcow2 still runs after blkbackd stopped"
qsd_gone "$TEST_DIR/beside.qcow2" || fail "the daemon of beside.qcow2 still runs after blkbackd stopped"
exit 0
