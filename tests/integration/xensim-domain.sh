#!/bin/sh
# xensim create/list/destroy against a real xensimd: libxl's domain trees
# and permissions, names and ids, duplicates and bad names refused, and a
# destroy that takes the domain's devices down even when the backend is
# dead.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/xensim-lib.sh"
test_timeout 90
start_xensimd

info "list: only Domain-0"
expect_status 0 xensim list
grep -q '^Domain-0 .* 0$' "$TEST_DIR/out" || fail "no Domain-0: $(cat "$TEST_DIR/out")"
[ "$(wc -l <"$TEST_DIR/out")" = 2 ] || fail "list: $(cat "$TEST_DIR/out")"

info "create by name prints the domid"
expect_status 0 xensim create vm1
id1=$(cat "$TEST_DIR/out")
case "$id1" in ''|*[!0-9]*) fail "create printed '$id1'" ;; esac
[ "$id1" != 0 ] || fail "create gave domid 0"
expect_status 0 xensim list
grep -q "^vm1 .* $id1\$" "$TEST_DIR/out" || fail "list lacks vm1: $(cat "$TEST_DIR/out")"

info "libxl's trees and permissions"
d=/local/domain/$id1
expect_node "$d" "" "n0,r$id1"
expect_node "$d/name" vm1 "n0,r$id1"
expect_node "$d/domid" "$id1" "n0,r$id1"
for sub in cpu memory device control; do
	expect_node "$d/$sub" "" "n0,r$id1"
done
for sub in control/shutdown control/feature-poweroff control/feature-reboot \
	control/feature-suspend control/sysrq device/suspend/event-channel \
	data drivers feature attr error; do
	expect_node "$d/$sub" "" "n$id1"
done
expect_node "$d/control/platform-feature-xs_reset_watches" 1
expect_node "/libxl/$id1" "" "n0"
expect_node "/libxl/$id1/device" "" "n0"
expect_node "/libxl/$id1/type" pv
vm=$(xenstore-read "$d/vm")
case "$vm" in /vm/????????-????-????-????-????????????) ;; *) fail "vm path '$vm'" ;; esac
expect_node "$vm" "" "n0,r$id1"
expect_node "$vm/name" vm1
expect_node "$vm/uuid" "${vm#/vm/}"
expect_node "$d/memory/target" 262144 "n0,r$id1"	# the 256 MiB default

info "the guest sees its own tree through its own socket"
v=$(XENSTORED_PATH="$XENSIM_DIR/domain/$id1/socket" xenstore-read name) ||
	fail "guest cannot read its name"
[ "$v" = vm1 ] || fail "guest reads name '$v'"
XENSTORED_PATH="$XENSIM_DIR/domain/$id1/socket" xenstore-write data/x 1 ||
	fail "guest cannot write its data dir"
if XENSTORED_PATH="$XENSIM_DIR/domain/$id1/socket" xenstore-write name evil 2>/dev/null; then
	fail "guest could rename itself"
fi

info "duplicate and bad names are refused, nothing is created"
expect_status 4 xensim create vm1
expect_msg "$TEST_DIR/err" "already used by domain $id1"
expect_status 4 xensim create Domain-0
for bad in "" 123 "a/b" "a b" "$(printf 'a\tb')"; do
	expect_status 2 xensim create "$bad"
	[ -s "$TEST_DIR/err" ] || fail "no message for bad name '$bad'"
done
expect_status 2 xensim create vm9 --memory 0
expect_msg "$TEST_DIR/err" "bad --memory"
expect_status 2 xensim create vm9 --memory 12x
expect_status 2 xensim create vm9 --memory 4097
expect_status 2 xensim create
expect_status 2 xensim create a b
expect_status 0 xensim list
[ "$(wc -l <"$TEST_DIR/out")" = 3 ] || fail "refused creates left domains: $(cat "$TEST_DIR/out")"

info "create with --memory writes the sizes in KiB"
expect_status 0 xensim create vm2 --memory 32
id2=$(cat "$TEST_DIR/out")
[ "$id2" != "$id1" ] || fail "same domid twice"
expect_node "/local/domain/$id2/memory/target" 32768
expect_node "/local/domain/$id2/memory/static-max" 32768

info "destroy by name"
expect_status 0 xensim destroy vm1
expect_gone "$d"
expect_gone "/libxl/$id1"
expect_gone "$vm"
expect_status 0 xensim list
grep -q "^vm1 " "$TEST_DIR/out" && fail "vm1 still listed"
expect_status 3 xensim destroy vm1
expect_msg "$TEST_DIR/err" "no domain named 'vm1'"
expect_status 3 xensim destroy "$id1"
expect_msg "$TEST_DIR/err" "no domain with id $id1"

info "destroy by id, with a device whose backend is dead"
hotplug_script blkbackd
fake_backend "$id2" init
expect_status 0 xensim block-attach vm2 "vdev=xvda, script=blkbackd, target=/img"
stop_pid "$FAKE_BE_PID"
start=$(date +%s)
expect_status 0 xensim destroy "$id2" --timeout 1
[ $(($(date +%s) - start)) -le 4 ] || fail "destroy --timeout 1 took too long"
expect_msg "$TEST_DIR/err" "did not reach Closed"
expect_gone "$BE0/$id2"
expect_gone "/local/domain/$id2"
expect_gone "/libxl/$id2"
[ "$(hotplug_calls remove)" = 0 ] || fail "remove script ran for a backend that never closed"

info "destroy with a live backend closes the device and runs remove"
expect_status 0 xensim create vm3
id3=$(cat "$TEST_DIR/out")
fake_backend "$id3" full
expect_status 0 xensim block-attach vm3 "vdev=xvda, script=blkbackd, target=/img"
expect_status 0 xensim block-attach vm3 "vdev=xvdb, script=blkbackd, target=/img2"
expect_status 0 xensim destroy vm3
[ ! -s "$TEST_DIR/err" ] || fail "destroy complained: $(cat "$TEST_DIR/err")"
[ "$(hotplug_calls remove)" = 2 ] || fail "remove ran $(hotplug_calls remove) times, want 2"
expect_gone "$BE0/$id3"
expect_gone "/local/domain/$id3"

info "Domain-0 cannot be destroyed; bad usage is refused"
expect_status 2 xensim destroy 0
expect_msg "$TEST_DIR/err" "refusing to destroy Domain-0"
expect_status 2 xensim destroy Domain-0
expect_status 3 xensim destroy 99999999999
expect_status 2 xensim destroy vm2 --timeout 0
expect_status 2 xensim frobnicate
expect_msg "$TEST_DIR/err" "unknown command"
expect_status 2 xensim
expect_status 0 xensim --help

info "no simulator directory is a clear error"
expect_status 2 env -u XENSIM_DIR -u XENSTORED_PATH xensim list
expect_msg "$TEST_DIR/err" "no simulator directory"
expect_status 1 xensim --dir "$TEST_DIR/nowhere" list
expect_msg "$TEST_DIR/err" "cannot reach xensimd"
exit 0
