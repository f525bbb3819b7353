#!/bin/sh
# xensim block-detach against a real xensimd and a fake backend: the
# cooperative path (online=0 + Closing, Closed, remove script, every dir
# and empty parent gone), the timeout path (nothing deleted), --force with
# a hung and with a cooperative backend, a backend that removed itself,
# and bad arguments.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/xensim-lib.sh"
test_timeout 90
start_xensimd

id=$(xensim create vm1) || fail "create vm1"
hotplug_script blkbackd
fake_backend "$id" full
be=$BE0/$id/51712
fe=/local/domain/$id/device/vbd/51712
lx=/libxl/$id/device/vbd/51712
attach() {
	expect_status 0 xensim block-attach vm1 "vdev=${1:-xvda}, script=blkbackd, target=/img"
}

info "cooperative backend: detach by vdev runs remove and cleans every dir"
attach
expect_status 0 xensim block-detach vm1 xvda
[ ! -s "$TEST_DIR/err" ] || fail "detach complained: $(cat "$TEST_DIR/err")"
[ "$(hotplug_calls remove)" = 1 ] || fail "remove ran $(hotplug_calls remove) times"
grep -qxF "XENBUS_PATH=backend/vbd/$id/51712" "$HOTPLUG_LOG" || fail "remove env"
expect_gone "$be"
expect_gone "$fe"
expect_gone "$lx"
# libxl__xs_path_cleanup: parents left empty go too, the domain's own dirs stay
expect_gone "$BE0/$id"
expect_gone "/local/domain/$id/device/vbd"
expect_gone "/libxl/$id/device"
expect_node "/local/domain/$id/device" "" "n0,r$id"
expect_node "/libxl/$id/type" pv

info "detach by devid, with another disk left alone"
attach xvda
attach xvdb
expect_status 0 xensim block-detach "$id" 51712
expect_gone "$be"
expect_node "$BE0/$id/51728/state" 2
expect_status 0 xensim block-detach vm1 xvdb
expect_gone "$BE0/$id"

info "hung backend: detach times out, leaves the device with online=0 and Closing"
stop_pid "$FAKE_BE_PID"
fake_backend "$id" init
attach
: >"$HOTPLUG_LOG"
start=$(date +%s)
expect_status 5 xensim block-detach vm1 xvda --timeout 1
[ $(($(date +%s) - start)) -le 4 ] || fail "--timeout 1 took too long"
expect_msg "$TEST_DIR/err" "did not reach Closed (6) within 1 s"
expect_msg "$TEST_DIR/err" "use --force"
expect_node "$be/online" 0
expect_node "$be/state" 5
expect_node "$fe/state" 1
expect_node "$lx/backend" "$be"
[ "$(hotplug_calls remove)" = 0 ] || fail "remove ran on a timeout"

info "hung backend: --force removes the frontend first, then everything"
expect_status 5 xensim block-detach vm1 xvda --force --timeout 1
expect_msg "$TEST_DIR/err" "removed it anyway"
expect_gone "$be"
expect_gone "$fe"
expect_gone "$lx"
[ "$(hotplug_calls remove)" = 0 ] || fail "remove ran after a forced timeout"

info "the default detach timeout is libxl's 10 s"
attach
start=$(date +%s)
expect_status 5 xensim block-detach vm1 xvda
took=$(($(date +%s) - start))
[ "$took" -ge 9 ] && [ "$took" -le 13 ] || fail "default timeout took ${took}s"
expect_msg "$TEST_DIR/err" "within 10 s"

info "cooperative backend: --force sees the frontend go and still runs remove"
stop_pid "$FAKE_BE_PID"
fake_backend "$id" full
expect_status 0 xensim block-detach vm1 xvda --force
[ "$(hotplug_calls remove)" = 1 ] || fail "remove ran $(hotplug_calls remove) times"
expect_gone "$be"
expect_gone "$fe"

info "a backend that already removed its dir: frontend cleaned up only"
attach
xenstore-rm "$be"
expect_status 0 xensim block-detach vm1 xvda
expect_msg "$TEST_DIR/err" "already removed"
expect_gone "$fe"
expect_gone "$lx"

info "a backend dir written by hand (no /libxl copy) is detached too"
xenstore-write "$be/state" 4 "$be/online" 1
expect_status 0 xensim block-detach vm1 xvda
expect_gone "$BE0/$id"

info "bad arguments"
expect_status 3 xensim block-detach vm1 xvdc
expect_msg "$TEST_DIR/err" "has no disk xvdc (devid 51744)"
expect_status 2 xensim block-detach vm1 xvd0
expect_msg "$TEST_DIR/err" "invalid vdev"
expect_status 3 xensim block-detach vm9 xvda
expect_status 2 xensim block-detach vm1
expect_status 2 xensim block-detach vm1 xvda --timeout -1
expect_status 2 xensim block-detach vm1 xvda --bogus
expect_status 2 xensim block-list
expect_status 3 xensim block-list vm9
exit 0
