#!/bin/sh
# The real-Xen lane's job, run as root in the lab dom0 by run-job.sh: the
# real xenstored, xl and hotplug machinery, blkbackd with its xen provider.
# Five steps, each ending in one "PASS: step N ..." or "FAIL: step N ..."
# line (a comparison that cannot run says SKIP), collected in
# out/results.txt; exit 1 when any step failed.
# The host put in the share: bin/{blkbackd,blkback-ctl,blkfront-sim},
# hotplug-blkbackd, and job.env (QUICK=1 runs fewer step-1 workloads).
[ -f ./job.env ] && . ./job.env
set -u
HERE=$PWD
OUT=$HERE/out
mkdir -p "$OUT"
RES=$OUT/results.txt
: > "$RES"
rc=0
T() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(T)" 'BEGIN{printf "%.1f", b-a}'; }
log() { echo "== [$(T)] $*"; }
result() { # PASS|FAIL|SKIP text
	echo "$1: $2" | tee -a "$RES"
	[ "$1" != FAIL ] || rc=1
}

# ---- setup: the programs where an installed blkbackd would be -------------
install -m 0755 bin/blkbackd bin/blkback-ctl bin/blkfront-sim /usr/local/sbin/
install -m 0755 hotplug-blkbackd /etc/xen/scripts/blkbackd
# The kernel's backend claims every vbd; it must stay away (xen-start does
# not load it, and nothing may autoload it).
echo "install xen-blkback /bin/false" > /etc/modprobe.d/blkbackd-lab.conf
t=$(T)
xen-start || { result FAIL "setup: xen-start"; exit 1; }
log "xen-start took $(since $t)s"
if lsmod | grep -q '^xen_blkback'; then rmmod xen_blkback || { result FAIL "setup: cannot unload xen-blkback"; exit 1; }; fi
xl info | grep -E '^(xen_version|free_memory|nr_cpus)'
ls -l /dev/xen/

blkbackd -d --platform=xen > "$OUT/blkbackd.log" 2>&1 &
BPID=$!
i=0; until blkback-ctl list >/dev/null 2>&1 || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
if ! kill -0 $BPID 2>/dev/null || ! blkback-ctl list >/dev/null 2>&1; then
	cat "$OUT/blkbackd.log"
	result FAIL "setup: blkbackd --platform=xen did not start"
	exit 1
fi
log "blkbackd pid $BPID up"
# its idle handles on /dev/xen (gntdev, evtchn...): every vbd's must go again
xen_fds() { ls -l /proc/$BPID/fd 2>/dev/null | grep -c '/dev/xen/'; }
XEN_FDS0=$(xen_fds)

# vbd_count: how many vbds blkbackd serves (blkback-ctl list, header aside)
vbd_count() { blkback-ctl list --json 2>/dev/null | grep -o '"devid"' | wc -l; }
# wait_until SECONDS CMD...
wait_until() {
	local n=$(( $1 * 10 )) i=0; shift
	until "$@" >/dev/null 2>&1; do i=$((i+1)); [ $i -le $n ] || return 1; sleep 0.1; done
}
# holds_nothing FILE: blkbackd has no fd on FILE and no grant mapping left
# and no more /dev/xen handles than when idle
holds_nothing() {
	! ls -l /proc/$BPID/fd 2>/dev/null | grep -qF "$1" && ! grep -q gntdev /proc/$BPID/maps &&
		[ "$(xen_fds)" -le "$XEN_FDS0" ]
}

# ---- step 1: blkfront-sim in dom0 against blkbackd, no guest --------------
# dom0 is both ends: the frontend grants through gntalloc and allocates an
# unbound event channel for domain 0; blkbackd maps and copies those grants
# through gntdev and binds the channel. The vbd's xenstore dirs are written
# the way libxl writes them, and the real hotplug script is run.
BE0=/local/domain/0/backend/vbd/0
FE0=/local/domain/0/device/vbd
dom0_vbd_add() { # DEVID NAME FILE
	local be=$BE0/$1 fe=$FE0/$1
	xenstore-write \
		$be/frontend $fe $be/params "$3" $be/script /etc/xen/scripts/blkbackd \
		$be/frontend-id 0 $be/online 1 $be/removable 0 $be/bootable 1 \
		$be/state 1 $be/dev $2 $be/type phy $be/mode w $be/device-type disk \
		$be/discard-enable 1 \
		$fe/backend $be $fe/backend-id 0 $fe/state 1 $fe/virtual-device $1 \
		$fe/device-type disk || return 1
	wait_until 10 sh -c "[ \"\$(xenstore-read $be/state)\" = 2 ]" || { echo "backend did not reach InitWait"; return 1; }
	XENBUS_PATH=backend/vbd/0/$1 XENBUS_TYPE=vbd XENBUS_BASE_PATH=backend \
		script=/etc/xen/scripts/blkbackd /etc/xen/scripts/blkbackd add
}
dom0_vbd_remove() { # DEVID: libxl's detach: online=0 + Closing, wait Closed
	local be=$BE0/$1 ok=0
	xenstore-write $be/online 0 $be/state 5
	wait_until 10 sh -c "[ \"\$(xenstore-read $be/state)\" = 6 ]" || ok=1
	XENBUS_PATH=backend/vbd/0/$1 /etc/xen/scripts/blkbackd remove
	xenstore-rm $FE0/$1; xenstore-rm $be
	return $ok
}
log "step 1: blkfront-sim --platform xen in dom0"
truncate -s 128M /dev/shm/s1.img
s1_fail=0; s1_runs=0
s1_run() { # NAME blkfront-sim-args...
	local name=$1 r
	shift
	s1_runs=$((s1_runs+1))
	if ! dom0_vbd_add 51728 xvdb /dev/shm/s1.img > "$OUT/s1-$name.attach" 2>&1; then
		cat "$OUT/s1-$name.attach"; xenstore-ls -f $BE0 2>&1 | head -30
		echo "  FAIL: step 1 $name: attach"; s1_fail=1
		dom0_vbd_remove 51728 >/dev/null 2>&1
		return
	fi
	t=$(T)
	timeout 120 blkfront-sim --platform xen --domain 0 --vdev xvdb --timeout 20 "$@" \
		> "$OUT/s1-$name.out" 2>&1
	r=$?
	if [ $r = 0 ]; then
		echo "  ok: step 1 $name ($(since $t)s): $(grep -iE 'iops|MiB/s' "$OUT/s1-$name.out" | head -1 | tr -s ' ');$(grep -E 'verify:' "$OUT/s1-$name.out" | tr -s ' ')"
	else
		echo "  FAIL: step 1 $name: blkfront-sim exit $r"; tail -n 15 "$OUT/s1-$name.out"
		s1_fail=1
	fi
	dom0_vbd_remove 51728 || { echo "  FAIL: step 1 $name: detach did not reach Closed"; s1_fail=1; }
}
for abi in x86_64 x86_32; do
	for order in 0 1 2 3 4; do
		[ "${QUICK:-0}" = 1 ] && [ $order != 0 ] && [ $order != 4 ] && continue
		s1_run "$abi-order$order" --abi $abi --ring-order $order --workload randrw \
			--bs 4k --qd 32 --ops 2000 --verify --flush-every 64 --discard-every 97
	done
	s1_run "$abi-indirect" --abi $abi --ring-order 1 --workload randrw --indirect \
		--bs 128k --qd 8 --ops 300 --verify --flush-every 16
	s1_run "$abi-seq44k" --abi $abi --workload seqwrite --bs 44k --qd 16 --ops 500 --verify \
		--state /tmp/s1-$abi.state
	# a new connection reads back what the last one wrote
	s1_run "$abi-readback" --abi $abi --workload readback --bs 16k --qd 8 --verify \
		--state /tmp/s1-$abi.state
	s1_run "$abi-2queues" --abi $abi --queues 2 --ring-order 2 --workload randrw \
		--bs 4k --qd 32 --ops 2000 --verify --flush-every 64
done
if [ "$(vbd_count)" != 0 ]; then echo "  blkbackd still lists vbds:"; blkback-ctl list; s1_fail=1; fi
holds_nothing /dev/shm/s1.img || { echo "  blkbackd still holds s1.img or grant mappings"; s1_fail=1; }
rm -f /dev/shm/s1.img
if [ $s1_fail = 0 ]; then
	result PASS "step 1 blkfront-sim in dom0 (real gntalloc/gntdev/evtchn, real xenstored): $s1_runs verified runs, ABIs x86_64+x86_32, ring orders $([ "${QUICK:-0}" = 1 ] && echo '0,4' || echo '0-4'), indirect, 44k, read-back on reconnect, 2 queues"
else
	result FAIL "step 1 blkfront-sim in dom0: see the lines above"
fi

# ---- guests -----------------------------------------------------------------
GMEM=${GUEST_MB:-512}
DD_MB=${DD_MB:-128}
CONS=/var/log/xen/console
# Steps 2 and 5: two vCPUs and xen-blkfront asking for a 16-page ring, so
# the real frontend uses multi-page rings and two queues; steps 3 and 4:
# its defaults (one page, one queue on one vCPU).
BIG="vcpus=2 xlbf=max_ring_page_order=4"
guest_cfg() { # NAME DISKSPEC EXTRA (vcpus=N first, if any)
	local vcpus=1 extra="$3"
	case $extra in vcpus=*) vcpus=${extra%% *}; vcpus=${vcpus#vcpus=}; extra=${extra#* } ;; esac
	cat > /tmp/$1.cfg <<CFG
name = "$1"
type = "pv"
kernel = "/var/lib/xenlab/vmlinuz"
ramdisk = "/var/lib/xenlab/domu-initrd.gz"
extra = "console=hvc0 quiet xlmb=$DD_MB $extra"
memory = $GMEM
vcpus = $vcpus
disk = [ '$2' ]
on_poweroff = "destroy"
on_crash = "destroy"
CFG
}
guest_create() { # NAME: xl create, rc
	local r
	rm -f $CONS/guest-$1.log
	t=$(T)
	timeout 120 xl -v create /tmp/$1.cfg > "$OUT/xl-create-$1.log" 2>&1
	r=$?
	log "xl create $1 rc=$r took $(since $t)s"
	[ $r = 0 ] || tail -n 25 "$OUT/xl-create-$1.log"
	return $r
}
# guest_wait NAME PATTERN SECONDS: until PATTERN shows on the guest console
guest_wait() {
	wait_until $3 grep -q "$2" $CONS/guest-$1.log
}
guest_save() { cp $CONS/guest-$1.log "$OUT/" 2>/dev/null; }
guest_gone() { ! xl domid $1 >/dev/null 2>&1; }

# ---- step 2: the real Linux blkfront in a PV guest, disk by blkbackd ------
log "step 2: PV guest, script=blkbackd"
truncate -s 160M /dev/shm/s2.img
guest_cfg g2 "format=raw, vdev=xvda, access=rw, script=blkbackd, target=/dev/shm/s2.img" "$BIG xltest=full"
s2=FAIL; s2_why="xl create failed"
if guest_create g2; then
	D2=$(xl domid g2)
	blkback-ctl list
	if ! guest_wait g2 'DOMU-RESULT' 300; then
		s2_why="no result from the guest in 300 s"
	elif grep -q 'DOMU-RESULT: PASS' $CONS/guest-g2.log; then
		s2=PASS
		s2_why=$(grep -c 'DOMU-CHECK: PASS' $CONS/guest-g2.log)" checks in the guest"
	else
		s2_why="the guest reported a failure"
	fi
	grep -E '^DOMU' $CONS/guest-g2.log
	grep "d$D2/51712: backend Connected" "$OUT/blkbackd.log"
	# blkbackd's own view of the same run: per-ring counters and latency
	blkback-ctl stats | tee "$OUT/stats-g2.txt"
	timeout 60 xl destroy g2
	wait_until 20 sh -c "[ \$(blkback-ctl list --json | grep -o '\"devid\"' | wc -l) = 0 ]" ||
		{ s2=FAIL; s2_why="$s2_why; blkbackd kept the vbd after destroy"; }
fi
guest_save g2
lsmod | grep -q '^xen_blkback' && { s2=FAIL; s2_why="$s2_why; xen-blkback was loaded"; }
result $s2 "step 2 Linux xen-blkfront in a PV guest on blkbackd: /dev/xvda pattern, ext4 round trip, fio/dd verify ($s2_why)"
PERF_blkbackd=$(grep '^DOMU-PERF' $CONS/guest-g2.log 2>/dev/null | tr '\n' ' ')
rm -f /dev/shm/s2.img

# ---- step 3: xl block-detach with I/O in flight ---------------------------
log "step 3: xl block-detach with writes in flight"
truncate -s 64M /dev/shm/s3.img
guest_cfg g3 "format=raw, vdev=xvda, access=rw, script=blkbackd, target=/dev/shm/s3.img" "xltest=writer"
s3=FAIL; s3_why="xl create failed"
if guest_create g3; then
	if ! guest_wait g3 'DOMU-ACK 30' 300; then
		s3_why="the guest's writer did not get going"
	else
		blkback-ctl list
		t=$(T)
		timeout 60 xl -v block-detach g3 xvda > "$OUT/xl-detach-g3.log" 2>&1
		r=$?
		took=$(since $t)
		log "xl block-detach rc=$r took ${took}s"
		cat "$OUT/xl-detach-g3.log" | grep -iE 'error|timeout|forc' | head
		guest_wait g3 'DOMU-WRITER-END' 30 || true
		sleep 1
		acked=$(grep -o 'DOMU-ACK [0-9]*' $CONS/guest-g3.log | tail -n1 | cut -d' ' -f2)
		# every acknowledged block, and the pattern, must be in the file
		lost=0; n=0
		while [ $n -le ${acked:--1} ]; do
			want=$(yes "BLKBACKD-ACK-$n-0123456789abcdef" | head -c 65536 | md5sum | cut -d' ' -f1)
			got=$(dd if=/dev/shm/s3.img bs=64k skip=$((256 + n)) count=1 2>/dev/null | md5sum | cut -d' ' -f1)
			[ "$want" = "$got" ] || { lost=$((lost+1)); echo "  block $n: lost"; }
			n=$((n+1))
		done
		if [ $r != 0 ]; then
			s3_why="xl block-detach failed (rc $r)"
		elif grep -qiE 'forced|Timeout reached' "$OUT/xl-detach-g3.log"; then
			s3_why="libxl timed out and forced the removal (${took}s)"
		elif [ $lost != 0 ]; then
			s3_why="$lost of $((acked+1)) acknowledged blocks lost"
		elif [ "$(vbd_count)" != 0 ]; then
			s3_why="blkbackd still serves the vbd"
		else
			s3=PASS
			s3_why="detach rc 0 in ${took}s (< libxl's 10 s), $((acked+1)) acknowledged 64 KiB blocks intact, $(grep -q 'xvda gone' $CONS/guest-g3.log && echo 'guest saw xvda go' || echo 'guest still lists xvda')"
		fi
	fi
	grep -E '^DOMU' $CONS/guest-g3.log | grep -v 'DOMU-ACK' ; grep 'DOMU-ACK' $CONS/guest-g3.log | tail -n 1
	timeout 60 xl destroy g3
fi
guest_save g3
result $s3 "step 3 xl block-detach with I/O in flight ($s3_why)"
rm -f /dev/shm/s3.img

# ---- step 4: xl destroy mid-I/O, then a new guest on the same file --------
log "step 4: xl destroy with writes in flight"
truncate -s 64M /dev/shm/s4.img
guest_cfg g4 "format=raw, vdev=xvda, access=rw, script=blkbackd, target=/dev/shm/s4.img" "xltest=writer"
s4=FAIL; s4_why="xl create failed"
if guest_create g4; then
	D4=$(xl domid g4)
	if ! guest_wait g4 'DOMU-ACK 30' 300; then
		s4_why="the guest's writer did not get going"
		timeout 60 xl destroy g4
	else
		t=$(T)
		timeout 60 xl destroy g4; r=$?
		log "xl destroy rc=$r took $(since $t)s"
		sleep 0.5
		acked=$(grep -o 'DOMU-ACK [0-9]*' $CONS/guest-g4.log | tail -n1 | cut -d' ' -f2)
		if [ $r != 0 ]; then
			s4_why="xl destroy failed (rc $r)"
		elif ! wait_until 20 sh -c "[ \$(blkback-ctl list --json | grep -o '\"devid\"' | wc -l) = 0 ]"; then
			s4_why="blkbackd still serves the vbd 20 s after destroy"; blkback-ctl list
		elif ! wait_until 10 holds_nothing /dev/shm/s4.img; then
			s4_why="blkbackd still holds the file or grant mappings"
			ls -l /proc/$BPID/fd; grep gntdev /proc/$BPID/maps | head
		elif ! grep -q "d$D4/51712.*Closed" "$OUT/blkbackd.log"; then
			s4_why="blkbackd's log does not show the vbd reaching Closed"
			grep "d$D4/" "$OUT/blkbackd.log" | tail
		else
			guest_cfg g5 "format=raw, vdev=xvda, access=rw, script=blkbackd, target=/dev/shm/s4.img" "xltest=verify xlacked=$acked"
			if ! guest_create g5; then
				s4_why="the new guest's xl create failed"
			elif ! guest_wait g5 'DOMU-RESULT' 300; then
				s4_why="no result from the new guest"
			elif grep -q 'DOMU-RESULT: PASS' $CONS/guest-g5.log; then
				s4=PASS
				s4_why="vbd Closed and released, a new guest verified the pattern and $((acked+1)) acknowledged blocks, and wrote and read"
			else
				s4_why="the new guest found bad data"
			fi
			grep -E '^DOMU' $CONS/guest-g5.log
			timeout 60 xl destroy g5
			guest_save g5
		fi
	fi
fi
guest_save g4
result $s4 "step 4 xl destroy mid-I/O ($s4_why)"
rm -f /dev/shm/s4.img

# ---- step 5: the same guest workload on xen-blkback and qdisk --------------
# Only after every blkbackd vbd is gone: xen-blkback claims whatever exists.
log "step 5: comparison"
perf_of() { # NAME: the guest's DOMU-PERF values
	grep '^DOMU-PERF' $CONS/guest-$1.log 2>/dev/null | tr '\n' ' '
}
cmp_run() { # NAME DISKSPEC: PASS when the full workload passed
	guest_cfg $1 "$2" "$BIG xltest=full"
	guest_create $1 || return 1
	guest_wait $1 'DOMU-RESULT' 300
	grep -E '^DOMU' $CONS/guest-$1.log
	timeout 60 xl destroy $1
	guest_save $1
	grep -q 'DOMU-RESULT: PASS' $CONS/guest-$1.log
}
truncate -s 160M /dev/shm/s5.img
PERF_blkback=; PERF_qdisk=
rmmod xen_blkback 2>/dev/null
rm -f /etc/modprobe.d/blkbackd-lab.conf
if modprobe xen-blkback; then
	LOOP=$(losetup -f --show /dev/shm/s5.img)
	if cmp_run g6 "format=raw, vdev=xvda, access=rw, backendtype=phy, target=$LOOP"; then
		PERF_blkback=$(perf_of g6)
	else
		result FAIL "step 5 the guest workload on xen-blkback failed"
	fi
	losetup -d $LOOP
	rmmod xen_blkback
else
	result SKIP "step 5 xen-blkback: the module does not load"
fi
if xen-start --qemu >/dev/null 2>&1; then
	if cmp_run g7 "format=raw, vdev=xvda, access=rw, backendtype=qdisk, target=/dev/shm/s5.img"; then
		PERF_qdisk=$(perf_of g7)
	else
		result FAIL "step 5 the guest workload on qdisk failed"
	fi
else
	result SKIP "step 5 qdisk: the dom0 QEMU does not start"
fi
rm -f /dev/shm/s5.img
val() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1; }
echo "   comparison (same guest workload, same tmpfs-backed file size; TCG: compare ratios only)"
printf '   %-28s %12s %12s %12s   %s\n' metric blkbackd xen-blkback qdisk "blkbackd/xen-blkback blkbackd/qdisk"
for m in dd_write_s dd_read_s fio_randread_4k_iops; do
	a=$(val "$PERF_blkbackd" $m); b=$(val "$PERF_blkback" $m); c=$(val "$PERF_qdisk" $m)
	rb=$(awk -v a="$a" -v b="$b" 'BEGIN{ if (a+0>0 && b+0>0) printf "%.2f", a/b; else printf "-" }')
	rq=$(awk -v a="$a" -v b="$c" 'BEGIN{ if (a+0>0 && b+0>0) printf "%.2f", a/b; else printf "-" }')
	printf '   %-28s %12s %12s %12s   %s %s\n' $m "${a:--}" "${b:--}" "${c:--}" "$rb" "$rq" | tee -a "$OUT/comparison.txt"
done
echo "   (dd_*_s: seconds for ${DD_MB} MiB with 1 MiB O_DIRECT requests, lower is better; iops: higher is better;"
echo "    one run each, one after the other, on a host that may be busy: ratios moved by 2x between runs)"
if [ -n "$PERF_blkbackd" ] && [ -n "$PERF_blkback" ] && [ -n "$PERF_qdisk" ]; then
	result PASS "step 5 comparison measured on all three backends (table above)"
elif [ -n "$PERF_blkbackd" ] && { [ -n "$PERF_blkback" ] || [ -n "$PERF_qdisk" ]; }; then
	result PASS "step 5 comparison measured on blkbackd and $([ -n "$PERF_blkback" ] && echo xen-blkback || echo qdisk) only"
else
	result FAIL "step 5 comparison: not enough backends measured"
fi

# ---- teardown ---------------------------------------------------------------
kill -TERM $BPID
i=0; while kill -0 $BPID 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
if kill -0 $BPID 2>/dev/null; then
	result FAIL "teardown: blkbackd ignored SIGTERM"; kill -KILL $BPID
fi
log "results:"; cat "$RES"
exit $rc
