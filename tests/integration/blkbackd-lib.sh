# Shared by the blkbackd-*.sh tests (sourced after functions.sh): play the
# toolstack with the real xenstore tools, the way libxl writes a disk.
BE_ROOT=/local/domain/0/backend/vbd

be_path() { echo "$BE_ROOT/$1/$2"; }
fe_path() { echo "/local/domain/$1/device/vbd/$2"; }

# vbd_write DOMID DEVID TARGET SCRIPT [MODE [DEVTYPE [FRONTEND]]]: backend
# and frontend dirs in one transaction (one xenstore-write call), as libxl
# does. FRONTEND overrides the frontend path the backend names.
vbd_write() {
	local dom=$1 dev=$2 target=$3 script=$4 mode=${5:-w} devtype=${6:-disk}
	local be fe
	be=$(be_path "$dom" "$dev")
	fe=${7:-$(fe_path "$dom" "$dev")}
	xenstore-write \
		"$be/frontend" "$fe" "$be/params" "$target" "$be/script" "$script" \
		"$be/frontend-id" "$dom" "$be/online" 1 "$be/removable" 0 \
		"$be/bootable" 1 "$be/state" 1 "$be/dev" xvda "$be/type" phy \
		"$be/mode" "$mode" "$be/device-type" "$devtype" \
		"$be/discard-enable" 1 "$be/specification" xen \
		"$fe/backend" "$be" "$fe/backend-id" 0 "$fe/state" 1 \
		"$fe/virtual-device" "$dev" "$fe/device-type" "$devtype" \
		"$fe/trusted" 1 "$fe/protocol" x86_64-abi
}

# be_state_is DOMID DEVID STATE
be_state_is() { xs_is "$(be_path "$1" "$2")/state" "$3"; }

# expect_state DOMID DEVID STATE SECONDS WHAT
expect_state() {
	wait_for "$4" be_state_is "$1" "$2" "$3" ||
		fail "$5: backend state is '$(xenstore-read "$(be_path "$1" "$2")/state" 2>&1)', wanted $3 within $4 s"
}

# blkbackd_fds: how many fds blkbackd holds now.
blkbackd_fds() { ls "/proc/$BLKBACKD_PID/fd" | wc -l; }

# sim_guest NAME: create a simulated domain, print its id.
sim_guest() { xensim create "$1"; }

# sim_attach DOMAIN VDEV TARGET [ACCESS [DEVTYPE]]: xl-style block-attach
# through the hotplug script in the source tree (script=blkbackd).
sim_attach() {
	local spec="vdev=$2, access=${4:-w}, script=blkbackd"
	[ -z "${5:-}" ] || spec="$spec, devtype=$5"
	spec="$spec, target=$3"	# libxl: target= comes last
	XENSIM_SCRIPT_DIR="$top_srcdir/hotplug" xensim block-attach "$1" "$spec" ||
		fail "block-attach $1 $2 failed"
}

# bf DOMAIN VDEV ARGS...: blkfront-sim, output kept in $TEST_DIR/bf.log.
bf() {
	local dom=$1 vdev=$2
	shift 2
	blkfront-sim --domain "$dom" --vdev "$vdev" "$@" >>"$TEST_DIR/bf.log" 2>&1
}

# bf_bg DOMAIN VDEV ARGS...: blkfront-sim in the background; $! is its pid.
bf_bg() {
	local dom=$1 vdev=$2
	shift 2
	blkfront-sim --domain "$dom" --vdev "$vdev" "$@" >>"$TEST_DIR/bf.log" 2>&1 &
}

# fe_restart DOMID DEVID: the frontend starts over (state Initialising)
# and the backend must come back to InitWait from Closed within a second.
fe_restart() {
	xenstore-write "$(fe_path "$1" "$2")/state" 1
	expect_state "$1" "$2" 2 1 "reconnect after Closed"
}

# fds_at_most N: blkbackd holds at most N fds (re-counted on every call,
# so it can be polled with wait_for).
fds_at_most() { [ "$(blkbackd_fds)" -le "$1" ]; }
