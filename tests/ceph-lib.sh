# A one-node Ceph cluster for the RBD tests (source it after functions.sh):
# one monitor, one manager and one OSD from Debian's ceph-mon, ceph-mgr and
# ceph-osd, on 127.0.0.1 with a port of its own, everything (config, data,
# logs, sockets) under $TEST_DIR/ceph so that tests running in parallel
# each have their own cluster. The OSD is bluestore on a sparse file, a
# real store that survives a restart of the OSD (memstore keeps its data
# in memory and loses it when the process dies). No cephx: the cluster is
# private to the test and listens on loopback only.
#
# ceph_start: the cluster up, with a pool "rbd" of size 1; skips the test
# (exit 77) with the reason where it cannot start, and says how long it
# took and how much memory its daemons use. The EXIT trap stops it
# (the daemons are in $_pids like every other daemon of a test).
# CEPH_CONF: its config file; pass it to librbd as :conf=$CEPH_CONF.

CEPH_DIR="$TEST_DIR/ceph"
CEPH_CONF="$CEPH_DIR/ceph.conf"
export CEPH_CONF

# ceph_cmd ARGS...: the ceph CLI on this cluster, with a timeout so that a
# cluster that stopped answering fails the test instead of hanging it.
ceph_cmd() { ceph -c "$CEPH_CONF" --connect-timeout 20 "$@"; }
rbd_cmd() { timeout 120 rbd -c "$CEPH_CONF" "$@"; }

# _ceph_free_port: a TCP port on 127.0.0.1 nobody listens on.
_ceph_free_port() {
	local p
	while :; do
		p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 20000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# _ceph_daemon NAME CMD...: a ceph daemon in the foreground (-f), logging
# to $CEPH_DIR/log; its pid in CEPH_PID_<NAME> and in $_pids.
_ceph_daemon() {
	local name=$1 pid
	shift
	"$@" -f -c "$CEPH_CONF" >>"$CEPH_DIR/log/$name.out" 2>&1 &
	pid=$!
	_pids="$pid $_pids"
	eval "CEPH_PID_$name=$pid"
}

# ceph_osd_start: (re)start the OSD on its existing store.
ceph_osd_start() {
	_ceph_daemon osd0 ceph-osd -i 0
}

# ceph_osd_stop: SIGTERM to the OSD, and wait until it is gone.
ceph_osd_stop() {
	stop_pid "$CEPH_PID_osd0" || fail "the OSD did not stop on SIGTERM"
}

# ceph_osd_up: the monitor sees the OSD up.
ceph_osd_up() {
	[ "$(ceph_cmd osd dump -f json 2>/dev/null | jq '[.osds[] | select(.up == 1)] | length')" = 1 ]
}

# _ceph_rss_mb: resident memory of the cluster's daemons in MiB.
_ceph_rss_mb() {
	local kb=0 p v
	for p in $CEPH_PID_mon $CEPH_PID_mgr $CEPH_PID_osd0; do
		v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		kb=$((kb + ${v:-0}))
	done
	echo $((kb / 1024))
}

ceph_start() {
	local t0=$SECONDS port fsid uuid
	for c in ceph-mon ceph-mgr ceph-osd ceph monmaptool ceph-authtool rbd jq ss; do
		command -v "$c" >/dev/null || skip "$c not installed (ceph-mon ceph-mgr ceph-osd ceph-common)"
	done
	mkdir -p "$CEPH_DIR/log" "$CEPH_DIR/run" "$CEPH_DIR/mon" "$CEPH_DIR/mgr/ceph-x" \
		"$CEPH_DIR/osd/ceph-0"
	port=$(_ceph_free_port)
	fsid=$(cat /proc/sys/kernel/random/uuid)
	# The OSD picks its own ports in the default range, which never
	# collides between clusters: each binds what is free.
	cat >"$CEPH_CONF" <<-EOF
	[global]
	fsid = $fsid
	mon host = v2:127.0.0.1:$port
	public addr = 127.0.0.1
	cluster addr = 127.0.0.1
	ms bind msgr1 = false
	auth cluster required = none
	auth service required = none
	auth client required = none
	run dir = $CEPH_DIR/run
	admin socket = $CEPH_DIR/run/\$name.asok
	pid file = $CEPH_DIR/run/\$name.pid
	log file = $CEPH_DIR/log/\$name.log
	keyring = $CEPH_DIR/keyring
	mon data = $CEPH_DIR/mon/\$cluster-\$id
	mgr data = $CEPH_DIR/mgr/\$cluster-\$id
	osd data = $CEPH_DIR/osd/\$cluster-\$id
	osd pool default size = 1
	osd pool default min size = 1
	osd pool default pg autoscale mode = off
	osd crush chooseleaf type = 0
	mon allow pool size one = true
	mon allow pool delete = true
	mon warn on pool no redundancy = false
	mon data avail warn = 1
	mon warn on insecure global id reclaim allowed = false
	osd objectstore = bluestore
	bluestore block create = true
	bluestore block size = 8589934592
	bluestore fsck on mount = false
	osd memory target = 939524096
	bluestore cache autotune = false
	bluestore cache size = 134217728
	osd op num shards = 1
	osd op num threads per shard = 2
	mgr initial modules =
	# A client killed without closing its image (blkbackd under kill -9)
	# keeps the image's exclusive lock until the OSD times its watch out
	# (30 s by default); the next client breaks the lock only then. 10 s
	# keeps the crash tests' pause within their frontends' timeouts.
	osd client watch timeout = 10
	[client]
	# Each client process its own admin socket (perf dump of librbd's
	# counters): several run as client.admin at once.
	admin socket = $CEPH_DIR/run/\$name.\$pid.asok
	# As blkbackd runs librbd: every other client (rbd bench, fio's rbd
	# engine) compares like with like.
	rbd cache = false
	EOF
	ceph-authtool --create-keyring "$CEPH_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' \
		>"$CEPH_DIR/log/setup.out" 2>&1 || skip "ceph-authtool failed: $(tail -1 "$CEPH_DIR/log/setup.out")"
	monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$port]" "$CEPH_DIR/monmap" \
		>>"$CEPH_DIR/log/setup.out" 2>&1 || skip "monmaptool failed: $(tail -1 "$CEPH_DIR/log/setup.out")"
	ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$CEPH_DIR/monmap" \
		>>"$CEPH_DIR/log/setup.out" 2>&1 || skip "ceph-mon --mkfs failed: $(tail -1 "$CEPH_DIR/log/setup.out")"
	_ceph_daemon mon ceph-mon -i a
	wait_for 30 ceph_cmd mon stat || skip "the monitor did not answer within 30 s: $(tail -2 "$CEPH_DIR/log/mon.a.log" 2>/dev/null)"
	_ceph_daemon mgr ceph-mgr -i x
	uuid=$(cat /proc/sys/kernel/random/uuid)
	[ "$(ceph_cmd osd new "$uuid" 2>>"$CEPH_DIR/log/setup.out")" = 0 ] ||
		skip "ceph osd new failed: $(tail -1 "$CEPH_DIR/log/setup.out")"
	ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$uuid" >>"$CEPH_DIR/log/setup.out" 2>&1 ||
		skip "ceph-osd --mkfs failed: $(tail -2 "$CEPH_DIR/log/setup.out")"
	ceph_osd_start
	wait_for 60 ceph_osd_up || skip "the OSD did not come up within 60 s: $(tail -2 "$CEPH_DIR/log/osd.0.log" 2>/dev/null)"
	ceph_cmd osd pool create rbd 8 8 >>"$CEPH_DIR/log/setup.out" 2>&1 ||
		skip "pool create failed: $(tail -1 "$CEPH_DIR/log/setup.out")"
	rbd_cmd pool init rbd >>"$CEPH_DIR/log/setup.out" 2>&1 ||
		skip "rbd pool init failed: $(tail -1 "$CEPH_DIR/log/setup.out")"
	wait_for 60 ceph_pgs_clean || skip "the pool's placement groups were not active+clean within 60 s"
	info "ceph: mon, mgr and one bluestore OSD up on 127.0.0.1:$port in $((SECONDS - t0)) s, $(_ceph_rss_mb) MiB resident"
}

# rbd_perf PID COUNTER: librbd's COUNTER (flush, discard, wr, rd...) summed
# over every image the client process PID has open, from its admin socket.
rbd_perf() {
	local sock="$CEPH_DIR/run/client.admin.$1.asok"
	[ -S "$sock" ] || fail "no admin socket $sock for client $1"
	ceph --admin-daemon "$sock" perf dump |
		jq --arg c "$2" '[to_entries[] | select(.key | startswith("librbd-")) | .value[$c] // 0] | add // 0'
}

# ceph_pgs_clean: every placement group is active+clean.
ceph_pgs_clean() {
	ceph_cmd pg stat -f json 2>/dev/null | jq -e '
		.pg_summary.num_pgs > 0 and
		([.pg_summary.num_pg_by_state[] | select(.name == "active+clean") | .num] | add) ==
		.pg_summary.num_pgs' >/dev/null
}
