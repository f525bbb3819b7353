#!/bin/sh
# make demo: the simulated Xen platform at work, narrated. Starts xensimd
# in a scratch directory, creates a domain, attaches a disk the way xl
# does (a stand-in backend answers), shows the xenstore tree, detaches,
# destroys and stops, cleaning up on any exit. Usage: demo.sh BUILDDIR
set -eu

build=${1:?usage: demo.sh BUILDDIR}
bin="$build/frontend-sim"
for p in "$bin/xensimd" "$bin/xensim" "$(command -v xenstore-ls || true)"; do
	[ -n "$p" ] && [ -x "$p" ] || {
		echo "demo: missing $p (run make first; xenstore-ls is in xenstore-utils)" >&2
		exit 1
	}
done

work=$(mktemp -d /tmp/blkbackd-demo.XXXXXX)
export XENSIM_DIR="$work/sim"
export XENSTORED_PATH="$XENSIM_DIR/socket"
export XENSIM_SCRIPT_DIR="$work/scripts"
xensimd_pid=""
backend_pid=""

cleanup() {
	rc=$?
	[ -z "$backend_pid" ] || kill "$backend_pid" 2>/dev/null || true
	if [ -n "$xensimd_pid" ] && kill "$xensimd_pid" 2>/dev/null; then
		wait "$xensimd_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
	[ $rc = 0 ] || echo "demo: FAILED (exit $rc)" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n=== %s\n' "$*"; }
say() { printf '    %s\n' "$*"; }
# run CMD ARGS...: show the command (program basename, quoted args), run it.
run() {
	{
		printf '$ %s' "${1##*/}"
		first=1
		for a in "$@"; do
			[ $first = 1 ] && { first=0; continue; }
			case $a in *' '*) printf " '%s'" "$a" ;; *) printf ' %s' "$a" ;; esac
		done
		printf '\n'
	} >&2
	"$@"
}
# wait_until SECONDS CMD...: poll CMD every 0.1 s.
wait_until() {
	n=$(($1 * 10))
	shift
	until "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.1
	done
}

step "1. Start xensimd, the simulated Xen (xenstored + domains)"
"$bin/xensimd" -d --dir "$XENSIM_DIR" >"$work/xensimd.log" 2>&1 &
xensimd_pid=$!
wait_until 10 test -S "$XENSIM_DIR/sim" || { cat "$work/xensimd.log" >&2; exit 1; }
say "listening under $XENSIM_DIR: socket (xenstore), sim (control)"
say "the stock xenstore-* tools reach it through XENSTORED_PATH=$XENSTORED_PATH"
run xenstore-ls /local/domain/0

step "2. Create a guest domain, as 'xl create' would"
domid=$(run "$bin/xensim" create demo-vm --memory 64)
say "xensim printed the new domid: $domid"
run "$bin/xensim" list
say "libxl's tree for the domain (owner dom0, guest may read: n0,r$domid):"
run xenstore-ls -p "/local/domain/$domid" | head -12
say "..."

step "3. A backend to talk to"
# STAND-IN BACKEND: a shell loop playing a vbd backend's xenbus part:
# Initialising(1) -> InitWait(2) when a device appears, Closing(5) ->
# Closed(6) when asked to close. blkbackd will take this place.
(
	trap 'exit 0' TERM
	be=/local/domain/0/backend/vbd/$domid
	while :; do
		for dev in $(xenstore-list "$be" 2>/dev/null); do
			case "$(xenstore-read "$be/$dev/state" 2>/dev/null)" in
			1) xenstore-write "$be/$dev/state" 2 ;;
			5) xenstore-write "$be/$dev/state" 6 ;;
			esac
		done
		sleep 0.05
	done
) >/dev/null 2>&1 &
backend_pid=$!
say "a stand-in backend (shell loop, pid $backend_pid) answers xenbus state changes"
mkdir -p "$XENSIM_SCRIPT_DIR"
cat >"$XENSIM_SCRIPT_DIR/blkbackd" <<'EOF'
#!/bin/sh
# demo hotplug script: libxl runs "<script> add|remove" with XENBUS_PATH set
echo "    [hotplug] $0 $1 for $XENBUS_PATH" >&2
[ "$1" = add ] && xenstore-write "$XENBUS_PATH/hotplug-status" connected
exit 0
EOF
chmod +x "$XENSIM_SCRIPT_DIR/blkbackd"
say "hotplug script: $XENSIM_SCRIPT_DIR/blkbackd (libxl would use /etc/xen/scripts)"

step "4. Attach a disk, as 'xl block-attach' would"
say "one transaction writes backend + frontend dirs, then xensim waits for"
say "InitWait (10 s limit) and runs the hotplug script (40 s limit)"
devid=$(run "$bin/xensim" block-attach demo-vm \
	"vdev=xvda, access=rw, script=blkbackd, target=/srv/demo.img")
say "attached as devid $devid (xvda = 202<<8)"
say "backend dir, owned by dom0 (n0), readable by the guest (r$domid):"
run xenstore-ls -p "/local/domain/0/backend/vbd/$domid"
say "frontend dir, owned by the guest, readable by the backend:"
run xenstore-ls -p "/local/domain/$domid/device/vbd"
run "$bin/xensim" block-list demo-vm

step "5. Detach it, as 'xl block-detach' would"
say "xensim writes online=0 and state=5 (Closing), waits for Closed (6),"
say "runs the script's remove and deletes both dirs"
run "$bin/xensim" block-detach demo-vm xvda
if xenstore-exists "/local/domain/0/backend/vbd/$domid"; then
	echo "demo: backend dir still there" >&2
	exit 1
fi
say "backend and frontend dirs are gone"
run "$bin/xensim" block-list demo-vm

step "6. Destroy the domain and stop the simulator"
run "$bin/xensim" destroy demo-vm
run "$bin/xensim" list
kill "$backend_pid"
backend_pid=""
kill "$xensimd_pid"
wait "$xensimd_pid" || { echo "demo: xensimd exited badly" >&2; exit 1; }
xensimd_pid=""
say "xensimd stopped cleanly on SIGTERM"

printf '\ndemo: OK\n'
