#!/bin/sh
# Bad disk specs and options given to a real xensim: each is refused with
# exit status 2 and a message naming the problem, before anything is
# written to xenstore. Also hd/sd vdevs and the deprecated prefix forms
# end to end.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/xensim-lib.sh"
test_timeout 60
start_xensimd

id=$(xensim create vm1) || fail "create vm1"
hotplug_script blkbackd
fake_backend "$id" full

# refuse SPEC WORDS [OPTIONS...]: exit 2, WORDS in the message, no trace.
refuse() {
	local spec=$1 words=$2
	shift 2
	expect_status 2 xensim block-attach vm1 "$@" "$spec"
	expect_msg "$TEST_DIR/err" "$words"
	expect_gone "$BE0"
	expect_gone "/local/domain/$id/device/vbd"
	expect_gone "/libxl/$id/device/vbd"
}

info "bad specs"
refuse "script=blkbackd, target=/x" "no vdev specified"
refuse "vdev=xvda, script=blkbackd" "no target specified"
refuse "vdev=xvdA, target=/x" "invalid vdev 'xvdA'"
refuse "vdev=xvda0, target=/x" "invalid vdev"
refuse "vdev=hde, target=/x" "invalid vdev"
refuse "vdev=xvda, target=/x, access=rw" "target= must come last"
refuse "vdev=xvda, access=rwx, target=/x" "bad access 'rwx'"
refuse "vdev=xvda, format=qcow2, target=/x" "format 'qcow2' is not supported"
refuse "qcow2:/x,xvda" "prefix 'qcow2:'"
refuse "vdev=xvda, devtype=floppy, target=/x" "bad devtype 'floppy'"
refuse "vdev=xvda, backendtype=qdisk, target=/x" "backendtype 'qdisk'"
refuse "vdev=xvda, backend=vm1, target=/x" "driver domains"
refuse "vdev=xvda, vdev=xvdb, target=/x" "'vdev' given more than once"
refuse "vdev=xvda, script=, target=/x" "empty script"
refuse "vdev=xvda, colour=blue, target=/x" "unknown disk parameter 'colour'"
refuse "/a,raw,xvda,rw,/b" "unexpected '/b'"
refuse "vdev=xvda, target=/x" "bad --protocol" --protocol arm-abi
refuse "vdev=xvda, target=/x" "bad timeout" --timeout 0
refuse "vdev=xvda, target=/x" "bad timeout" --hotplug-timeout 99999
refuse "vdev=xvda, target=/x" "usage" --nonsense
expect_status 2 xensim block-attach vm1
expect_msg "$TEST_DIR/err" "usage: block-attach"

info "hd and sd vdevs, deprecated prefixes, several spec words"
expect_status 0 xensim block-attach vm1 "raw:/img1,hda,w" script=blkbackd
[ "$(cat "$TEST_DIR/out")" = 768 ] || fail "hda devid $(cat "$TEST_DIR/out")"
expect_node "$BE0/$id/768/params" /img1
expect_node "$BE0/$id/768/mode" w
expect_status 0 xensim block-attach vm1 "phy:/img2,hdc:cdrom,ro" script=blkbackd
[ "$(cat "$TEST_DIR/out")" = 5632 ] || fail "hdc devid $(cat "$TEST_DIR/out")"
expect_node "$BE0/$id/5632/device-type" cdrom
expect_node "$BE0/$id/5632/mode" r
expect_status 0 xensim block-attach vm1 /img3 '' sdb2 rw script=blkbackd
[ "$(cat "$TEST_DIR/out")" = $(((8 << 8) | 16 | 2)) ] || fail "sdb2 devid $(cat "$TEST_DIR/out")"
expect_node "$BE0/$id/$(((8 << 8) | 16 | 2))/dev" sdb2
expect_status 0 xensim block-list vm1
[ "$(wc -l <"$TEST_DIR/out")" = 4 ] || fail "block-list: $(cat "$TEST_DIR/out")"
exit 0
