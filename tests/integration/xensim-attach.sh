#!/bin/sh
# xensim block-attach against a real xensimd with a fake backend and fake
# hotplug scripts: every node and permission libxl writes, the hotplug
# environment, duplicates, the InitWait timeout (default 10 s and a short
# one), and failing, silent and hanging scripts, each leaving no trace.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/xensim-lib.sh"
test_timeout 120
start_xensimd

id=$(xensim create vm1) || fail "create vm1"
hotplug_script blkbackd
fake_backend "$id" full
be=$BE0/$id/51712
fe=/local/domain/$id/device/vbd/51712
lx=/libxl/$id/device/vbd/51712

info "attach xvda: prints the devid"
expect_status 0 xensim block-attach vm1 \
	"vdev=xvda, access=rw, script=blkbackd, devtype=disk, target=/srv/vm1.img"
[ "$(cat "$TEST_DIR/out")" = 51712 ] || fail "printed '$(cat "$TEST_DIR/out")'"

info "backend dir: libxl's nodes, owned by dom0, readable by the guest"
bp="n0,r$id"
expect_node "$be" "" "$bp"
expect_node "$be/frontend" "$fe" "$bp"
expect_node "$be/params" /srv/vm1.img "$bp"
expect_node "$be/script" "$SCRIPT_DIR/blkbackd" "$bp"
expect_node "$be/frontend-id" "$id" "$bp"
expect_node "$be/online" 1 "$bp"
expect_node "$be/removable" 0 "$bp"
expect_node "$be/bootable" 1 "$bp"
expect_node "$be/state" 2 "$bp"
expect_node "$be/dev" xvda "$bp"
expect_node "$be/type" phy "$bp"
expect_node "$be/mode" w "$bp"
expect_node "$be/device-type" disk "$bp"
expect_node "$be/discard-enable" 1 "$bp"
expect_node "$be/specification" xen "$bp"
expect_node "$be/hotplug-status" connected
xenstore-exists "$be/direct-io-safe" && fail "direct-io-safe without the flag"

info "frontend dir: owned by the guest, readable by dom0"
fp="n$id,r0"
expect_node "$fe" "" "$fp"
expect_node "$fe/backend" "$be" "$fp"
expect_node "$fe/backend-id" 0 "$fp"
expect_node "$fe/state" 1 "$fp"
expect_node "$fe/virtual-device" 51712 "$fp"
expect_node "$fe/device-type" disk "$fp"
expect_node "$fe/trusted" 1 "$fp"
expect_node "$fe/protocol" x86_64-abi "$fp"

info "private /libxl copy"
expect_node "$lx/frontend" "$fe" n0
expect_node "$lx/backend" "$be" n0
for k in params script frontend-id online removable bootable dev type mode \
	device-type discard-enable specification; do
	expect_node "$lx/$k" "$(xenstore-read "$be/$k")" n0
done
expect_node "$lx/state" 1

info "the guest can write its frontend and not its backend"
gxs="$XENSIM_DIR/domain/$id/socket"
XENSTORED_PATH=$gxs xenstore-write "device/vbd/51712/state" 3 || fail "guest cannot write its frontend"
if XENSTORED_PATH=$gxs xenstore-write "$be/state" 4 2>/dev/null; then
	fail "guest wrote the backend state"
fi
XENSTORED_PATH=$gxs xenstore-read "$be/params" >/dev/null || fail "guest cannot read its backend"

info "hotplug script: argv, environment, stdin"
[ "$(hotplug_calls add)" = 1 ] || fail "add ran $(hotplug_calls add) times"
for want in "XENBUS_PATH=backend/vbd/$id/51712" XENBUS_TYPE=vbd \
	XENBUS_BASE_PATH=backend "script=$SCRIPT_DIR/blkbackd" \
	"XENSTORED_PATH=$XENSTORED_PATH" stdin=eof; do
	grep -qxF "$want" "$HOTPLUG_LOG" || fail "hotplug env lacks $want: $(cat "$HOTPLUG_LOG")"
done

info "a duplicate vdev is refused and changes nothing"
expect_status 4 xensim block-attach vm1 "vdev=xvda, script=blkbackd, target=/other"
expect_msg "$TEST_DIR/err" "already attached"
expect_node "$be/params" /srv/vm1.img
expect_status 4 xensim block-attach "$id" "vdev=d0p0, script=blkbackd, target=/other"
[ "$(hotplug_calls add)" = 1 ] || fail "script ran for a refused duplicate"

info "read-only cdrom, direct-io-safe, x86_32 protocol, positional spec"
expect_status 0 xensim block-attach vm1 --protocol x86_32-abi \
	"/srv/cd.iso,raw,xvdb,ro" devtype=cdrom direct-io-safe script=blkbackd
[ "$(cat "$TEST_DIR/out")" = 51728 ] || fail "xvdb devid $(cat "$TEST_DIR/out")"
b2=$BE0/$id/51728
f2=/local/domain/$id/device/vbd/51728
expect_node "$b2/params" /srv/cd.iso
expect_node "$b2/mode" r
expect_node "$b2/device-type" cdrom
expect_node "$b2/removable" 1
expect_node "$b2/direct-io-safe" 1 "n0,r$id"
expect_node "$b2/discard-enable" 0
expect_node "$f2/protocol" x86_32-abi
expect_node "$f2/device-type" cdrom

info "--protocol none, untrusted, absolute script, extended vdev"
expect_status 0 xensim block-attach vm1 --protocol none \
	"vdev=xvdq, untrusted, no-discard, script=$SCRIPT_DIR/blkbackd, target=nbd://h:1/x,y"
ext=$(((1 << 28) | (16 << 8)))
[ "$(cat "$TEST_DIR/out")" = "$ext" ] || fail "xvdq devid $(cat "$TEST_DIR/out")"
expect_node "$BE0/$id/$ext/params" "nbd://h:1/x,y"
expect_node "$BE0/$id/$ext/script" "$SCRIPT_DIR/blkbackd"
expect_node "$BE0/$id/$ext/discard-enable" 0
expect_node "/local/domain/$id/device/vbd/$ext/trusted" 0
xenstore-exists "/local/domain/$id/device/vbd/$ext/protocol" &&
	fail "protocol node with --protocol none"

info "block-list"
expect_status 0 xensim block-list vm1
grep -Eq "^xvda +51712 +2 +3 +w +/srv/vm1.img$" "$TEST_DIR/out" ||
	fail "block-list: $(cat "$TEST_DIR/out")"
grep -Eq "^xvdb +51728 +2 +1 +r +/srv/cd.iso$" "$TEST_DIR/out" ||
	fail "block-list: $(cat "$TEST_DIR/out")"
[ "$(wc -l <"$TEST_DIR/out")" = 4 ] || fail "block-list: $(cat "$TEST_DIR/out")"

# A second domain with no backend at all.
id2=$(xensim create vm2) || fail "create vm2"
b3=$BE0/$id2/51712

info "no backend: --timeout 1 fails with a reason and removes the device"
start=$(date +%s)
expect_status 5 xensim block-attach vm2 --timeout 1 "vdev=xvda, script=blkbackd, target=/x"
[ $(($(date +%s) - start)) -le 4 ] || fail "--timeout 1 took too long"
expect_msg "$TEST_DIR/err" "did not reach InitWait"
expect_msg "$TEST_DIR/err" "state 1"
expect_gone "$BE0/$id2"
expect_gone "/local/domain/$id2/device/vbd"
expect_gone "/libxl/$id2/device/vbd"
[ "$(hotplug_calls add)" = 3 ] || fail "script ran without InitWait"

info "no backend: the default InitWait timeout is libxl's 10 s"
start=$(date +%s)
expect_status 5 xensim block-attach vm2 "vdev=xvda, script=blkbackd, target=/x"
took=$(($(date +%s) - start))
[ "$took" -ge 9 ] && [ "$took" -le 13 ] || fail "default timeout took ${took}s"
expect_msg "$TEST_DIR/err" "within 10 s"
expect_gone "$BE0/$id2"

fake_backend "$id2" full
: >"$HOTPLUG_LOG"

info "a script that fails with hotplug-error: its reason, full cleanup, remove ran"
hotplug_script bad '[ "$1" = add ] || exit 0
xenstore-write "$XENBUS_PATH/hotplug-error" "no such image /x" "$XENBUS_PATH/hotplug-status" error
exit 1'
expect_status 1 xensim block-attach vm2 "vdev=xvda, script=bad, target=/x"
expect_msg "$TEST_DIR/err" "hotplug script failed"
expect_msg "$TEST_DIR/err" "exited with status 1"
expect_msg "$TEST_DIR/err" "no such image /x"
expect_gone "$BE0/$id2"
expect_gone "/local/domain/$id2/device/vbd"
expect_gone "/libxl/$id2/device/vbd"
[ "$(hotplug_calls remove)" = 1 ] || fail "remove did not run after the failed add"

info "a script that fails silently: xensim says why"
hotplug_script quiet '[ "$1" = add ] && exit 3; exit 0'
expect_status 1 xensim block-attach vm2 "vdev=xvda, script=quiet, target=/x"
expect_msg "$TEST_DIR/err" "quiet add exited with status 3"
expect_gone "$BE0/$id2"

info "a script that hangs is killed after --hotplug-timeout, with its children"
hotplug_script hang '[ "$1" = add ] || exit 0
sleep 300 &
echo $! >"'"$TEST_DIR"'/hang.pid"
wait'
start=$(date +%s)
expect_status 1 xensim block-attach vm2 --hotplug-timeout 1 "vdev=xvda, script=hang, target=/x"
[ $(($(date +%s) - start)) -le 5 ] || fail "--hotplug-timeout 1 took too long"
expect_msg "$TEST_DIR/err" "timed out after 1 s"
expect_gone "$BE0/$id2"
# Killed means dead or a zombie (init here may be slow to reap orphans).
child_alive() {
	case "$(ps -o stat= -p "$1" 2>/dev/null)" in ''|Z*) return 1 ;; esac
}
wait_for 3 eval '! child_alive "$(cat "$TEST_DIR/hang.pid")"' ||
	fail "the script's child survived"

info "a script that does not exist"
expect_status 1 xensim block-attach vm2 "vdev=xvda, script=missing, target=/x"
expect_msg "$TEST_DIR/err" "cannot execute $SCRIPT_DIR/missing"
expect_gone "$BE0/$id2"

info "the default script is 'block' in the script dir"
expect_status 1 xensim block-attach vm2 "vdev=xvda, target=/x"
expect_msg "$TEST_DIR/err" "$SCRIPT_DIR/block"

info "an unknown domain"
expect_status 3 xensim block-attach vm9 "vdev=xvda, target=/x"
expect_msg "$TEST_DIR/err" "no domain named 'vm9'"

info "vm1's disks are untouched by all this"
expect_node "$be/state" 2
expect_node "$fe/state" 3
exit 0
