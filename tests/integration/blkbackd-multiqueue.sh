#!/bin/sh
# blkbackd multi-queue: multi-queue-max-queues at probe (--max-queues, CPUs
# by default), refusal of a bad multi-queue-num-queues or missing queue-N
# keys with an error node, and verified blkfront-sim workloads over several
# queues, ring orders and both ABIs, plus a detach with I/O in flight.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

S=/etc/xen/scripts/blkbackd

info "--max-queues out of range is refused"
expect_fail blkbackd --platform=sim --dir /nonexistent --max-queues 0 -t
expect_fail blkbackd --platform=sim --dir /nonexistent --max-queues 17 -t
expect_fail blkbackd --platform=sim --dir /nonexistent --max-queues 2x -t

start_xensimd
truncate -s 64M "$TEST_DIR/disk.img"

info "default: online CPUs, at most 16"
start_blkbackd
cpus=$(getconf _NPROCESSORS_ONLN)
[ "$cpus" -le 16 ] || cpus=16
vbd_write 5 1 "$TEST_DIR/disk.img" $S
expect_state 5 1 2 1 "attach"
xs_is "$(be_path 5 1)/multi-queue-max-queues" "$cpus" ||
	fail "multi-queue-max-queues is '$(xenstore-read "$(be_path 5 1)/multi-queue-max-queues")', wanted $cpus"
xenstore-rm "$(be_path 5 1)"
stop_pid "$BLKBACKD_PID"

start_blkbackd --max-queues 4
info "--max-queues 4 is advertised"
vbd_write 5 2 "$TEST_DIR/disk.img" $S
expect_state 5 2 2 1 "attach"
be=$(be_path 5 2)
fe=$(fe_path 5 2)
xs_is "$be/multi-queue-max-queues" 4 || fail "multi-queue-max-queues is not 4"

info "garbage queue keys: error node, InitWait kept, no crash"
xenstore-write "$be/hotplug-status" connected
for bad in num0 num5 numx miss1 evtch1; do
	xenstore-rm "$be/error" 2>/dev/null || true
	xenstore-rm "$fe/queue-0" 2>/dev/null || true
	xenstore-rm "$fe/queue-1" 2>/dev/null || true
	xenstore-write "$fe/protocol" x86_64-abi \
		"$fe/queue-0/ring-ref" 8 "$fe/queue-0/event-channel" 3 \
		"$fe/queue-1/ring-ref" 9 "$fe/queue-1/event-channel" 4
	case $bad in
	num0)	xenstore-write "$fe/multi-queue-num-queues" 0 ;;
	num5)	xenstore-write "$fe/multi-queue-num-queues" 5 ;;
	numx)	xenstore-write "$fe/multi-queue-num-queues" 2x ;;
	miss1)	xenstore-write "$fe/multi-queue-num-queues" 2
		xenstore-rm "$fe/queue-1/ring-ref" ;;
	evtch1)	xenstore-write "$fe/multi-queue-num-queues" 2 "$fe/queue-1/event-channel" x ;;
	esac
	xenstore-write "$fe/state" 3
	wait_for 2 xenstore-exists "$be/error" || fail "no error node for $bad"
	err=$(xenstore-read "$be/error")
	info "  $bad: $err"
	case $bad in
	num*)	echo "$err" | grep -q multi-queue-num-queues || fail "$bad: error does not name the key" ;;
	*)	echo "$err" | grep -q queue-1 || fail "$bad: error does not name queue-1" ;;
	esac
	be_state_is 5 2 2 || fail "$bad moved the backend out of InitWait"
	kill -0 "$BLKBACKD_PID" || fail "blkbackd died on $bad"
	xenstore-write "$fe/state" 1
done
xenstore-rm "$be"
xenstore-rm "$fe"
wait_for 2 grep -q 'd5/2: released' "$TEST_DIR/blkbackd.log" || fail "garbage vbd not released"
stop_pid "$BLKBACKD_PID"

. "$top_srcdir/tests/integration/blkfront-lib.sh"
bf_require
start_blkbackd --max-queues 4
dom=$(bf_guest g1)
bf_attach "$dom" xvda "$TEST_DIR/disk.img"
gdom=$(xenstore-read /local/domain/$dom/domid 2>/dev/null || echo "$dom")
fe=$(fe_path "$dom" 51712)

for abi in x86_64 x86_32; do
	for order in 0 2; do
		for q in 2 4; do
			ents=$((32 << order))
			name="mq-$abi-$order-$q"
			info "$q queues, ring order $order, $abi: verified, every ring full"
			bf_run "$name" 0 --domain "$dom" --vdev xvda --abi "$abi" \
				--ring-order "$order" --queues "$q" --qd $((ents * q)) \
				--ops $((ents * q * 4)) --workload randrw --bs 4k --size 8M \
				--verify --seed "$q$order"
			bf_ok "$name"
			bf_expect "$name" queues == "$q"
			bf_expect "$name" ring_order == "$order"
			bf_expect "$name" readback '>' 0
		done
	done
done
grep -q 'backend Connected (4 rings' "$TEST_DIR/blkbackd.log" ||
	fail "blkbackd never logged 4 rings"

info "while connected with 2 queues: the keys are under queue-N"
bf_bg "$dom" xvda --queues 2 --ring-order 1 --workload randwrite --qd 64 \
	--seconds 30 --verify --state "$TEST_DIR/mq.state"
front=$!
expect_state "$dom" 51712 4 5 "multi-queue connect"
xs_is "$fe/multi-queue-num-queues" 2 || fail "no multi-queue-num-queues 2"
for k in queue-0/ring-ref0 queue-0/ring-ref1 queue-0/event-channel \
	 queue-1/ring-ref0 queue-1/ring-ref1 queue-1/event-channel ring-page-order; do
	xenstore-exists "$fe/$k" || fail "frontend key $k missing"
done
xenstore-exists "$fe/event-channel" && fail "top-level event-channel with multi-queue"
if command -v jq >/dev/null; then
	# Round robin: both rings took requests.
	wait_for 5 sh -c "blkback-ctl show $dom xvda --json |
		jq -e '.vbd.ring_list | length == 2 and all(.req_cons > 0)'" ||
		fail "not 2 busy rings: $(blkback-ctl show "$dom" xvda --json)"
fi

info "detach with I/O in flight on both queues"
sleep 2
rc=0
xensim block-detach "$dom" xvda || fail "block-detach with multi-queue I/O in flight failed"
wait $front || rc=$?
[ $rc -eq 3 ] || fail "blkfront-sim exit $rc during detach, wanted 3: $(tail -5 "$TEST_DIR/bf.log")"
xenstore-exists "$(be_path "$dom" 51712)" && fail "backend dir still there after detach"

info "re-attach and read back everything acknowledged"
bf_attach "$dom" xvda "$TEST_DIR/disk.img"
bf "$dom" xvda --queues 3 --workload readback --verify --state "$TEST_DIR/mq.state" ||
	fail "acknowledged writes missing after detach: $(tail -5 "$TEST_DIR/bf.log")"

info "a restarted blkbackd takes over all 3 rings of a connected vbd"
bf_bg "$dom" xvda --queues 3 --workload randrw --qd 48 --seconds 6 --verify
front=$!
expect_state "$dom" 51712 4 5 "3-queue connect"
sleep 1.5
first=$BLKBACKD_PID
kill -TERM "$first"
rc=0
wait "$first" || rc=$?
[ $rc -eq 0 ] || fail "blkbackd exit $rc on SIGTERM with a 3-queue vbd"
start_blkbackd --max-queues 4
rc=0
wait $front || rc=$?
[ $rc -eq 0 ] || fail "3-queue workload across the restart: exit $rc: $(tail -5 "$TEST_DIR/bf.log")"
grep -q 'taking over a connected vbd' "$TEST_DIR/blkbackd.log" || fail "no takeover logged"
sed -n '/taking over a connected vbd/,$p' "$TEST_DIR/blkbackd.log" |
	grep -q 'backend Connected (3 rings' || fail "takeover did not map 3 rings"

info "more queues than offered: the frontend takes the backend's maximum"
bf_run capped 0 --domain "$dom" --vdev xvda --queues 8 --qd 16 --ops 200 --verify
bf_expect capped queues == 4
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
