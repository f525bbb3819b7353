# Helpers for the xensim integration tests; source after functions.sh.
# A fake backend (a shell loop driving backend states with xenstore-write)
# and fake hotplug scripts that record how they were called.

BE0=/local/domain/0/backend/vbd
SCRIPT_DIR="$TEST_DIR/scripts"
HOTPLUG_LOG="$TEST_DIR/hotplug.log"
export XENSIM_SCRIPT_DIR="$SCRIPT_DIR"
export HOTPLUG_LOG
mkdir -p "$SCRIPT_DIR"
: >"$HOTPLUG_LOG"

# xs_perms PATH: PATH's permissions as xenstore-ls -p prints them, "n0,r1".
xs_perms() {
	local parent=${1%/*} name=${1##*/}
	xenstore-ls -p "$parent" 2>/dev/null |
		sed -n "s/^$name = .*(\([^()]*\))\$/\1/p"
}

# expect_node PATH VALUE [PERMS]
expect_node() {
	local v p
	v=$(xenstore-read "$1" 2>/dev/null) || fail "$1 missing"
	[ "$v" = "$2" ] || fail "$1 = '$v', want '$2'"
	if [ -n "${3:-}" ]; then
		p=$(xs_perms "$1")
		[ "$p" = "$3" ] || fail "$1 perms '$p', want '$3'"
	fi
}

# expect_gone PATH: the node does not exist.
expect_gone() {
	if xenstore-exists "$1" 2>/dev/null; then
		fail "$1 still exists: $(xenstore-ls "$1" 2>&1 | head -5)"
	fi
}

# expect_msg FILE WORDS: FILE (a command's stderr) contains WORDS.
expect_msg() {
	grep -qF -- "$2" "$1" || fail "message lacks '$2': $(cat "$1")"
}

# expect_status WANT CMD...: CMD exits with status WANT; its stderr is
# left in $TEST_DIR/err, its stdout in $TEST_DIR/out.
expect_status() {
	local want=$1 rc=0
	shift
	"$@" >"$TEST_DIR/out" 2>"$TEST_DIR/err" || rc=$?
	[ "$rc" = "$want" ] ||
		fail "'$*' exited $rc, want $want; stderr: $(cat "$TEST_DIR/err")"
}

# fake_backend DOMID [MODE]: answers every vbd of DOMID. MODE "full"
# (default) moves Initialising(1) to InitWait(2) and Closing(5) to
# Closed(6); "init" only does the first, like a backend that hangs on
# disconnect. Stopped by the EXIT trap. Sets FAKE_BE_PID.
fake_backend() {
	local domid=$1 mode=${2:-full}
	(
		trap 'exit 0' TERM
		while :; do
			for dev in $(xenstore-list "$BE0/$domid" 2>/dev/null); do
				be=$BE0/$domid/$dev
				case "$(xenstore-read "$be/state" 2>/dev/null)" in
				1) xenstore-write "$be/state" 2 ;;
				5) [ "$mode" = full ] && xenstore-write "$be/state" 6 ;;
				esac
			done
			sleep 0.05
		done
	) >/dev/null 2>&1 &
	FAKE_BE_PID=$!
	_pids="$FAKE_BE_PID $_pids"
}

# hotplug_script NAME [BODY]: an executable $SCRIPT_DIR/NAME that appends
# its argv, the hotplug environment and what stdin gave to $HOTPLUG_LOG,
# then runs BODY (default: on add, write hotplug-status=connected through
# the relative XENBUS_PATH, as xen-hotplug-common.sh does).
hotplug_script() {
	local body=${2:-'[ "$1" = add ] && xenstore-write "$XENBUS_PATH/hotplug-status" connected; exit 0'}
	cat >"$SCRIPT_DIR/$1" <<EOF
#!/bin/sh
{
	echo "argv=\$*"
	echo "XENBUS_PATH=\$XENBUS_PATH"
	echo "XENBUS_TYPE=\$XENBUS_TYPE"
	echo "XENBUS_BASE_PATH=\$XENBUS_BASE_PATH"
	echo "script=\$script"
	echo "XENSTORED_PATH=\$XENSTORED_PATH"
	if read -r line; then echo "stdin=\$line"; else echo "stdin=eof"; fi
} >>"\$HOTPLUG_LOG"
$body
EOF
	chmod +x "$SCRIPT_DIR/$1"
}

# hotplug_calls ACTION: how many times a script ran with ACTION.
hotplug_calls() {
	grep -c "^argv=$1\$" "$HOTPLUG_LOG" || true
}
