#!/bin/sh
# make demo: blkbackd serving a simulated guest, narrated. Starts xensimd
# and blkbackd in a scratch directory, creates a guest, attaches a disk file
# through the blkbackd hotplug script the way xl does, runs a verified
# workload, shows blkback-ctl list and stats under load, detaches it with
# blkback-ctl while I/O is in flight (with its progress), re-attaches and
# checks every acknowledged write, then tears everything down; any failure
# stops the demo with a non-zero exit, and every process and file goes on
# any exit.
# Usage: demo.sh BUILDDIR. Environment: DEMO_TIMEOUT (seconds, default 60),
# DEMO_SCRIPT_DIR (where the blkbackd hotplug script is; default the
# source tree's hotplug/).
set -eu

build=${1:?usage: demo.sh BUILDDIR}
src=$(cd "$(dirname "$0")/.." && pwd)
sim="$build/frontend-sim"
for p in "$sim/xensimd" "$sim/xensim" "$sim/blkfront-sim" "$build/backend/blkbackd" \
	"${DEMO_SCRIPT_DIR:-$src/hotplug}/blkbackd" "$(command -v xenstore-ls || true)"; do
	[ -n "$p" ] && [ -x "$p" ] || {
		echo "demo: missing $p (run make first; xenstore-ls is in xenstore-utils)" >&2
		exit 1
	}
done
# The hotplug script calls xenstore-write by name, like libxl's scripts.
export PATH="$sim:$build/backend:$PATH"

work=$(mktemp -d /tmp/blkbackd-demo.XXXXXX)
export XENSIM_DIR="$work/sim"
export XENSTORED_PATH="$XENSIM_DIR/socket"
export XENSIM_SCRIPT_DIR="${DEMO_SCRIPT_DIR:-$src/hotplug}"
# The hotplug script asks the daemon (blkback-ctl, found through PATH) on
# the control socket blkbackd opens in the simulator directory.
export BLKBACK_CTL_SOCKET="$XENSIM_DIR/blkbackd.control"
xensimd_pid=""
blkbackd_pid=""
front_pid=""
t0=$(date +%s)

# Stop PID with SIGTERM and wait; SIGKILL after 5 s (and say so).
stop() {
	kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
	kill -TERM "$1" 2>/dev/null || true
	n=50
	while kill -0 "$1" 2>/dev/null; do
		n=$((n - 1))
		if [ $n -le 0 ]; then
			echo "demo: pid $1 ignored SIGTERM, killing it" >&2
			kill -KILL "$1" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	wait "$1" 2>/dev/null || true
}

# Every program started goes into $work/pids, so the watchdog can stop
# them too: a program stuck in a foreground pipeline would keep the shell
# from ever running its traps.
track() { echo "$1" >>"$work/pids"; }
limit=${DEMO_TIMEOUT:-60}
(
	# one-second sleeps: killing this subshell leaves no long sleep behind
	n=0
	while [ $n -lt "$limit" ]; do sleep 1; n=$((n + 1)); done
	echo "demo: timed out after $limit s" >&2
	kill -TERM $(cat "$work/pids" 2>/dev/null) 2>/dev/null
	sleep 3
	kill -KILL $(cat "$work/pids" 2>/dev/null) 2>/dev/null
	kill -TERM $$
) &
watchdog=$!

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	kill "$watchdog" 2>/dev/null || true
	for p in $front_pid $blkbackd_pid $xensimd_pid; do stop "$p"; done
	if [ $rc != 0 ]; then
		for f in "$work"/*.log; do
			[ -f "$f" ] || continue
			echo "--- last lines of $(basename "$f")" >&2
			tail -n 15 "$f" >&2
		done
		echo "demo: FAILED (exit $rc)" >&2
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "demo: $*" >&2; exit 1; }
step() { printf '\n=== %s  [%ss]\n' "$*" $(($(date +%s) - t0)); }
say() { printf '    %s\n' "$*"; }
# show CMD ARGS...: print the command (program basename, quoted args) on
# the terminal (fd 3), whatever the command's own output is redirected to.
exec 3>&2
show() {
	printf '$ %s' "${1##*/}" >&3
	shift
	for a in "$@"; do
		case $a in *' '*) printf " '%s'" "$a" ;; *) printf ' %s' "$a" ;; esac
	done >&3
	printf '\n' >&3
}
# run CMD ARGS...: show it, run it. Not for background jobs: "run x &" would
# make $! a subshell's pid, not the program's.
run() {
	show "$@"
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
# indent: show a program's output under the narration.
indent() { sed 's/^/    | /'; }
be_state() { xenstore-read "$be/state" 2>/dev/null || echo gone; }
be_state_is() { [ "$(be_state)" = "$1" ]; }

step "1. Start xensimd, the simulated Xen (xenstored, grants, event channels)"
show "$sim/xensimd" -d --dir "$XENSIM_DIR"
"$sim/xensimd" -d --dir "$XENSIM_DIR" >"$work/xensimd.log" 2>&1 &
xensimd_pid=$!
track $xensimd_pid
wait_until 10 test -S "$XENSIM_DIR/sim" || die "xensimd did not start"
say "listening under $XENSIM_DIR; the xenstore-* tools use XENSTORED_PATH"

step "2. Start blkbackd, the block backend, on the simulator platform"
set -- -d --platform=sim --dir "$XENSIM_DIR" -p "$work/blkbackd.pid"
show "$build/backend/blkbackd" "$@"
"$build/backend/blkbackd" "$@" >"$work/blkbackd.log" 2>&1 &
blkbackd_pid=$!
track $blkbackd_pid
wait_until 10 test -s "$work/blkbackd.pid" || die "blkbackd did not start"
say "pid $blkbackd_pid watches /local/domain/0/backend/vbd and claims every"
say "vbd whose script is 'blkbackd'; its log:"
indent <"$work/blkbackd.log"

step "3. Create a guest domain, as 'xl create' would"
domid=$(run "$sim/xensim" create demo-vm --memory 64) || die "xensim create"
say "the new domain's id: $domid"
run "$sim/xensim" list | indent

step "4. Attach a 64 MiB disk file with script=blkbackd, as 'xl block-attach' would"
disk="$work/demo.img"
truncate -s 64M "$disk"
be=/local/domain/0/backend/vbd/$domid/51712
say "xensim writes the backend and frontend dirs in one transaction, waits"
say "for blkbackd's InitWait, then runs $XENSIM_SCRIPT_DIR/blkbackd add"
devid=$(run "$sim/xensim" block-attach demo-vm \
	"vdev=xvda, access=rw, script=blkbackd, target=$disk") || die "block-attach"
say "attached as devid $devid (xvda = 202<<8); the backend dir now holds:"
run xenstore-ls "$be" | grep -E '^(params|script|state|hotplug-status|max-ring-page-order|online) ' |
	indent
[ "$(xenstore-read "$be/hotplug-status")" = connected ] || die "hotplug script did not run"

step "5. A guest frontend (blkfront-sim) runs a verified random read/write workload"
say "every written sector carries its address and a generation, every read is"
say "checked, and at the end the whole area is read back; one line a second:"
set -- --domain demo-vm --vdev xvda --workload randrw --bs 4k \
	--qd 32 --seconds 3 --verify --progress --state "$work/verify.state"
show "$sim/blkfront-sim" "$@"
{
	rc=0
	"$sim/blkfront-sim" "$@" 2>&1 &
	track $!
	wait $! || rc=$?
	echo $rc >"$work/workload.rc"
} | indent
[ "$(cat "$work/workload.rc")" = 0 ] ||
	die "verified workload failed (blkfront-sim exit $(cat "$work/workload.rc"))"
wait_until 2 be_state_is 6 || die "backend state $(be_state) after the frontend closed, wanted 6"
say "the frontend closed, and blkbackd followed to Closed (state 6)"

step "6. The operator's view under load, then a detach with I/O in flight"
say "blkfront-sim writes at queue depth 32 for up to 30 s; after 2 s we look"
say "with blkback-ctl list and stats, then 'blkback-ctl detach' closes the vbd:"
say "blkbackd stops taking requests, answers the ones in flight, unmaps the"
say "ring and only then says Closed; 'xl block-detach' (xensim) then finds it"
say "Closed and removes the dirs."
set -- --domain demo-vm --vdev xvda --workload randwrite --bs 4k \
	--qd 32 --seconds 30 --verify --progress --state "$work/verify.state"
show "$sim/blkfront-sim" "$@"
"$sim/blkfront-sim" "$@" >"$work/detach-workload.log" 2>&1 &
front_pid=$!
track $front_pid
wait_until 10 be_state_is 4 || die "the frontend did not connect (backend state $(be_state))"
sleep 2
kill -0 "$front_pid" 2>/dev/null || die "the workload ended before the detach"
run blkback-ctl list >"$work/list.txt" || die "blkback-ctl list"
indent <"$work/list.txt"
run blkback-ctl stats >"$work/stats.txt" || die "blkback-ctl stats"
indent <"$work/stats.txt"
log_mark=$(wc -l <"$work/blkbackd.log")
d0=$(date +%s%N)
run blkback-ctl detach "$domid" xvda --timeout 10 >"$work/detach.txt" ||
	die "blkback-ctl detach with I/O in flight failed"
indent <"$work/detach.txt"
run "$sim/xensim" block-detach demo-vm xvda || die "block-detach after the detach failed"
say "detach done in $((($(date +%s%N) - d0) / 1000000)) ms (libxl allows 10 s); blkbackd said:"
tail -n +$((log_mark + 1)) "$work/blkbackd.log" | indent
rc=0
wait "$front_pid" || rc=$?
front_pid=""
indent <"$work/detach-workload.log"
[ $rc = 3 ] || die "blkfront-sim exit $rc during the detach; wanted 3 (closed by the backend, every answer correct)"
say "blkfront-sim exit 3: the backend closed the disk under it, and every answer"
say "it got was correct"
! xenstore-exists "$be" || die "backend dir still there after the detach"
wait_until 3 sh -c "! ls -l /proc/$blkbackd_pid/fd | grep -q demo.img" ||
	die "blkbackd still has the disk file open"
say "the backend dir is gone and blkbackd closed the disk file"

step "7. Re-attach and read back: every acknowledged write must be on disk"
run "$sim/xensim" block-attach demo-vm \
	"vdev=xvda, access=rw, script=blkbackd, target=$disk" >/dev/null || die "re-attach"
set -- --domain demo-vm --vdev xvda --workload readback --verify --state "$work/verify.state"
show "$sim/blkfront-sim" "$@"
"$sim/blkfront-sim" "$@" >"$work/readback.log" 2>&1 &
front_pid=$!
track $front_pid
rc=0
wait "$front_pid" || rc=$?
front_pid=""
[ $rc = 0 ] || die "read-back after the detach failed (exit $rc): missing or wrong data?"
grep -iE 'verif|result' "$work/readback.log" | indent
say "everything the guest saw acknowledged, before and during the detach, is there"

step "8. Tear down: detach, destroy the guest, stop blkbackd and xensimd"
run "$sim/xensim" block-detach demo-vm xvda || die "final block-detach"
run "$sim/xensim" destroy demo-vm || die "xensim destroy"
kill "$blkbackd_pid"
rc=0
wait "$blkbackd_pid" || rc=$?
blkbackd_pid=""
[ $rc = 0 ] || die "blkbackd exited with $rc on SIGTERM"
say "blkbackd stopped cleanly on SIGTERM"
kill "$xensimd_pid"
rc=0
wait "$xensimd_pid" || rc=$?
xensimd_pid=""
[ $rc = 0 ] || die "xensimd exited with $rc on SIGTERM"
say "xensimd stopped cleanly on SIGTERM"
if grep -E '\] (error|warning):' "$work/blkbackd.log" >"$work/problems"; then
	indent <"$work/problems"
	die "blkbackd logged the errors or warnings above"
fi
say "blkbackd's log has no warnings or errors; its last lines:"
tail -n 6 "$work/blkbackd.log" | indent

printf '\ndemo: OK in %ss\n' $(($(date +%s) - t0))
