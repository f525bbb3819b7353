#!/bin/sh
# Online resize of more connected disks than there are size probe
# threads (4): each file is read on a thread of its own, a few at a time,
# and a round of checks that ran out of threads goes on as answers come
# in, so every disk's growth is published, not only the first ones'.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"

N=7
start_xensimd
start_blkbackd --resize-interval 200
g=$(sim_guest g1) || fail "xensim create"
pids=
i=0
for v in xvda xvdb xvdc xvdd xvde xvdf xvdg; do
	truncate -s 16M "$TEST_DIR/$v.img"
	sim_attach g1 $v "$TEST_DIR/$v.img"
	bf_bg g1 $v --workload randread --qd 2 --seconds $((15 * SLOW))
	pids="$pids $!"
	i=$((i + 1))
done
[ $i = $N ] || fail "attached $i disks, wanted $N"
# connected_all: every disk's backend is Connected.
connected_all() {
	for d in 51712 51728 51744 51760 51776 51792 51808; do
		be_state_is "$g" $d 4 || return 1
	done
}
wait_for $((10 * SLOW)) connected_all || fail "not every disk connected"
for v in xvda xvdb xvdc xvdd xvde xvdf xvdg; do
	truncate -s 32M "$TEST_DIR/$v.img"
done
# grown_all: every disk publishes its new size.
grown_all() {
	for d in 51712 51728 51744 51760 51776 51792 51808; do
		xs_is "$(be_path "$g" $d)/sectors" $((32 * 2048)) || return 1
	done
}
wait_for $((5 * SLOW)) grown_all ||
	fail "not every disk's growth was published: $(for d in 51712 51728 51744 51760 51776 51792 51808; do printf '%s ' "$(xenstore-read "$(be_path "$g" $d)/sectors")"; done)"
info "$(grep -c 'resized: 32768 -> 65536 sectors' "$TEST_DIR/blkbackd.log") of $N disks resized"
for p in $pids; do
	wait "$p" || fail "a workload across the resize failed: $(tail -3 "$TEST_DIR/bf.log")"
done
exit 0
