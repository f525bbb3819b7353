#!/bin/sh
# The control socket against bad clients: blkback-ctl without a daemon
# (exit 3, clear message), garbage and unknown requests (an error reply
# each, the connection still usable), a 1 MiB line, a client that never
# reads its replies, a flood of idle connections, a non-root peer (refused
# by the file mode and, with the mode opened up, by SO_PEERCRED), and
# --control-group letting a group in. The daemon keeps serving throughout.
. "$top_srcdir/tests/functions.sh"
. "$top_srcdir/tests/integration/blkbackd-lib.sh"
test_timeout 120
command -v xenstore-write >/dev/null || skip "xenstore-utils not installed"
command -v python3 >/dev/null || skip "python3 not installed"
command -v setpriv >/dev/null || skip "setpriv not installed"

CTL="$TEST_DIR/ctl.sock"
export BLKBACK_CTL_SOCKET="$CTL"
serving() { timeout 5 blkback-ctl list --json | grep -q '"ok":true'; }

info "no daemon: a clear message and exit 3"
rc=0
blkback-ctl list >"$TEST_DIR/out" 2>&1 || rc=$?
[ $rc = 3 ] || fail "no daemon: exit $rc, wanted 3"
grep -qx "blkback-ctl: blkbackd is not running (no socket at $CTL)" "$TEST_DIR/out" ||
	fail "no daemon: $(cat "$TEST_DIR/out")"
# A socket file left by a daemon that died.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$CTL"
rc=0
blkback-ctl list >"$TEST_DIR/out" 2>&1 || rc=$?
[ $rc = 3 ] || fail "stale socket: exit $rc, wanted 3: $(cat "$TEST_DIR/out")"
grep -q "not running" "$TEST_DIR/out" || fail "stale socket: $(cat "$TEST_DIR/out")"

start_xensimd
start_blkbackd --control "$CTL"
serving || fail "blkbackd does not serve after replacing a stale socket"
truncate -s 16M "$TEST_DIR/disk1.img"
g1=$(sim_guest g1) || fail "xensim create"
sim_attach g1 xvda "$TEST_DIR/disk1.img"

info "garbage, bad versions, unknown commands: one error reply each"
python3 - "$CTL" >"$TEST_DIR/py.out" 2>&1 <<'PY' || fail "garbage: $(cat "$TEST_DIR/py.out")"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
# Each with the code a client tells it by (control-proto.h).
bad = [(b"garbage", "bad-request"), (b"{}", "version"), (b"[1,2]", "bad-request"),
       (b'{"version":2,"command":"list"}', "version"),
       (b'{"version":"1","command":"list"}', "version"),
       (b'{"version":1,"command":"nope"}', "unknown-command"),
       (b'{"version":1,"command":"list"} trailing', "bad-request"),
       (b'{"version":1,"command":7}', "bad-request"),
       (b'{"version":1,"command":"show","domid":"x","device":1}', "bad-request"),
       (b'{"version":1,"command":"show","domid":4000,"device":"xvdq"}', "no-vbd"),
       (b'{"version":1,"command":"check-target","target":"/etc/passwd","mode":"rw"}', "failed"),
       (b"\x00\xff\xfe binary", "bad-request"), (b"", "bad-request")]
for line, code in bad:
    f.write(line + b"\n"); f.flush()
    rep = json.loads(f.readline())
    assert rep["version"] == 1 and rep["ok"] is False and rep["error"], (line, rep)
    assert rep["code"] == code, (line, code, rep)
    print(line, "->", rep["code"], rep["error"])
f.write(b'{"version":1,"command":"list"}\n'); f.flush()
rep = json.loads(f.readline())
assert rep["ok"] is True and len(rep["vbds"]) == 1, rep
PY
grep -q "unknown command 'nope'" "$TEST_DIR/py.out" || fail "unknown command reply: $(cat "$TEST_DIR/py.out")"

info "a 1 MiB line: refused, connection closed, daemon fine"
python3 - "$CTL" >"$TEST_DIR/py.out" 2>&1 <<'PY' || fail "huge line: $(cat "$TEST_DIR/py.out")"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
try:
    s.sendall(b"a" * (1 << 20) + b"\n")
except (BrokenPipeError, ConnectionResetError):
    pass
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        break
    if not chunk:
        break
    data += chunk
rep = json.loads(data.split(b"\n")[0])
assert rep["ok"] is False and "longer than" in rep["error"], rep
PY
serving || fail "not serving after a huge line"

info "a client that never reads, and a flood of idle connections"
python3 - "$CTL" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.setblocking(False)
req = b'{"version":1,"command":"stats"}\n' * 20000
sent = 0
end = time.time() + 8
while time.time() < end:
    try:
        sent += s.send(req[sent:])
    except BlockingIOError:
        time.sleep(0.05)
    if sent >= len(req):
        sent = 0
conns = []
PY
reader=$!
python3 - "$CTL" <<'PY' &
import socket, sys, time
conns = []
for i in range(100):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); conns.append(s)
time.sleep(8)
PY
idle=$!
sleep 2
t0=$(date +%s)
for i in 1 2 3 4 5; do serving || fail "not serving while a client never reads (try $i)"; done
[ $(( $(date +%s) - t0 )) -le 3 ] || fail "list slow while hostile clients are connected"
kill $reader $idle 2>/dev/null || true
wait $reader $idle 2>/dev/null || true
serving || fail "not serving after the hostile clients"

info "a non-root peer"
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups blkback-ctl list >"$TEST_DIR/out" 2>&1 || rc=$?
[ $rc = 5 ] || fail "nobody through a 0700 dir and 0600 socket: exit $rc: $(cat "$TEST_DIR/out")"
grep -q "Permission denied" "$TEST_DIR/out" || fail "nobody: $(cat "$TEST_DIR/out")"
# Open the file mode up: the peer credential check must still refuse.
chmod 711 "$TEST_DIR"
chmod 666 "$CTL"
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups blkback-ctl list >"$TEST_DIR/out" 2>&1 || rc=$?
[ $rc = 5 ] || fail "nobody with the socket mode opened: exit $rc: $(cat "$TEST_DIR/out")"
grep -q "permission denied: uid 65534 is not root" "$TEST_DIR/out" || fail "nobody: $(cat "$TEST_DIR/out")"
# The refusal carries its code, which is what makes blkback-ctl exit 5.
setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
rep = json.loads(s.makefile("rb").readline())
assert rep["ok"] is False and rep["code"] == "permission", rep' "$CTL" ||
	fail "refused peer: no permission code"
grep -q "control socket: refused uid 65534" "$TEST_DIR/blkbackd.log" || fail "refusal not logged"
serving || fail "not serving after a refused peer"

info "--control-group lets the group in"
stop_pid "$BLKBACKD_PID"
[ -e "$CTL" ] && fail "socket left behind after stop"
start_blkbackd --control "$CTL" --control-group nogroup
[ "$(stat -c %a:%G "$CTL")" = 660:nogroup ] || fail "group socket: $(stat -c %a:%G "$CTL")"
setpriv --reuid=65534 --regid=65534 --clear-groups blkback-ctl list --json >"$TEST_DIR/out" 2>&1 ||
	fail "nogroup member refused: $(cat "$TEST_DIR/out")"
grep -q '"domain":"g1"' "$TEST_DIR/out" || fail "group list: $(cat "$TEST_DIR/out")"
setpriv --reuid=65534 --regid=1 --groups=65534 blkback-ctl list --json >"$TEST_DIR/out" 2>&1 ||
	fail "supplementary member of nogroup refused: $(cat "$TEST_DIR/out")"
rc=0
setpriv --reuid=65534 --regid=1 --clear-groups blkback-ctl list >"$TEST_DIR/out" 2>&1 || rc=$?
[ $rc = 5 ] || fail "non-member through a group socket: exit $rc: $(cat "$TEST_DIR/out")"
kill -0 "$BLKBACKD_PID" || fail "blkbackd died"
exit 0
