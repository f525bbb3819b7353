#!/bin/bash
# make check-xen: blkbackd on real Xen, as an operator installs it. Builds
# the Debian packages from this tree (dpkg-buildpackage on a clean copy of
# the tracked files, then lintian), boots the Xen 4.17 hypervisor and a
# Debian dom0 with systemd under QEMU's software emulation (build-image.sh,
# run-job.sh), carries the packages into dom0 and runs job.sh there: the
# packages installed with dpkg -i, blkbackd.service, guests by xl; one
# PASS/FAIL line per step. Exit 0 when all pass, 1 on any failure, 77
# (skip, with the reason) when this machine cannot install or run QEMU and
# the hypervisor.
# Usage: check-xen.sh TOP_BUILDDIR TOP_SRCDIR
# Environment: XENLAB_DIR (default /var/tmp/blkbackd-xenlab: the image,
# about 3.5 GB with caches, and runs/), QUICK=1 (fewer step-1 workloads),
# STEPS=1,7 (only those job steps; setup always runs), XEN_TIMEOUT
# (seconds for the whole boot and job, default 3600), XENLAB_DEBS (a
# directory with blkbackd_*.deb and blkbackd-simulator_*.deb to use instead
# of building them).
set -u
BUILD=${1:?usage: check-xen.sh TOP_BUILDDIR TOP_SRCDIR}
SRC=${2:?usage: check-xen.sh TOP_BUILDDIR TOP_SRCDIR}
HERE=$SRC/tests/xen
export XENLAB_DIR=${XENLAB_DIR:-/var/tmp/blkbackd-xenlab}
t0=$(date +%s)
skip() { echo "SKIP: check-xen: $*"; exit 77; }
fail() { echo "FAIL: check-xen: $*"; exit 1; }

# ---- can this machine do it? --------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root (apt-get, debootstrap, chroot)"
[ "$(uname -m)" = x86_64 ] || skip "the lab boots x86_64 Xen; this is $(uname -m)"
need=
command -v qemu-system-x86_64 >/dev/null || need="$need qemu-system-x86"
[ -f /boot/xen-4.17-amd64.gz ] || need="$need xen-hypervisor-4.17-amd64"
command -v debootstrap >/dev/null || need="$need debootstrap"
command -v mke2fs >/dev/null || need="$need e2fsprogs"
command -v cpio >/dev/null || need="$need cpio"
if [ -z "${XENLAB_DEBS:-}" ]; then
	command -v dh >/dev/null || need="$need debhelper"
	command -v dpkg-buildpackage >/dev/null || need="$need dpkg-dev"
	command -v lintian >/dev/null || need="$need lintian"
	command -v git >/dev/null || need="$need git"
fi
if [ -n "$need" ]; then
	echo "# installing:$need"
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends $need; } > "/tmp/check-xen-apt.$$" 2>&1 ||
		{ tail -n 3 "/tmp/check-xen-apt.$$"; rm -f "/tmp/check-xen-apt.$$"; skip "cannot install$need"; }
	rm -f "/tmp/check-xen-apt.$$"
fi
qemu-system-x86_64 -accel help 2>/dev/null | grep -qx tcg ||
	skip "qemu-system-x86_64 has no TCG accelerator"
timeout 20 qemu-system-x86_64 -accel tcg -machine none -display none -nodefaults -S \
	-monitor none -serial none -no-user-config </dev/null >/dev/null 2>&1 &
qp=$!; sleep 2
if kill -0 $qp 2>/dev/null; then kill $qp; wait $qp 2>/dev/null; else
	wait $qp; skip "qemu-system-x86_64 does not start here"
fi

# ---- the image: built at run time, rebuilt when its sources change -------
stamp=$(cat "$HERE/build-image.sh" "$HERE"/guest/* | md5sum | cut -d' ' -f1)
if [ "$(cat "$XENLAB_DIR/image.stamp" 2>/dev/null)" != "$stamp" ] ||
	[ ! -f "$XENLAB_DIR/rootfs.img" ]; then
	echo "# building the dom0 image under $XENLAB_DIR (about 2 min the first time)"
	mkdir -p "$XENLAB_DIR"
	if ! bash "$HERE/build-image.sh" > "$XENLAB_DIR/build-image.log" 2>&1; then
		tail -n 5 "$XENLAB_DIR/build-image.log"
		# No mirror, no debootstrap: this machine cannot make the lab.
		grep -qiE 'no .* mirror|Failed getting release file|Temporary failure|Could not resolve|unable to fetch' \
			"$XENLAB_DIR/build-image.log" && skip "cannot build the dom0 image (no Debian mirror?)"
		fail "build-image.sh failed (log: $XENLAB_DIR/build-image.log)"
	fi
	echo "$stamp" > "$XENLAB_DIR/image.stamp"
	echo "# image built in $(( $(date +%s) - t0 ))s"
fi

# ---- the packages: built from this tree as Debian builds them ------------
STAGE=$(mktemp -d /tmp/check-xen.XXXXXX)
trap 'rm -rf "$STAGE"; [ -n "${tailpid:-}" ] && kill $tailpid 2>/dev/null' EXIT
mkdir -p "$STAGE/deb"
if [ -n "${XENLAB_DEBS:-}" ]; then
	cp "$XENLAB_DEBS"/blkbackd_*.deb "$XENLAB_DEBS"/blkbackd-simulator_*.deb "$STAGE/deb/" ||
		fail "no blkbackd_*.deb and blkbackd-simulator_*.deb in $XENLAB_DEBS"
else
	git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1 ||
		fail "$SRC is not a git checkout: build the packages and set XENLAB_DEBS"
	t1=$(date +%s)
	# the tracked files as they are now, committed or not: a clean tree
	mkdir -p "$STAGE/src/blkbackd"
	git -C "$SRC" ls-files -z | tar -C "$SRC" --null -T - -cf - | tar -C "$STAGE/src/blkbackd" -xf -
	if ! (cd "$STAGE/src/blkbackd" && dpkg-buildpackage -us -uc -b -j2) > "$STAGE/deb-build.log" 2>&1; then
		tail -n 15 "$STAGE/deb-build.log"
		fail "dpkg-buildpackage failed"
	fi
	cp "$STAGE"/src/blkbackd_*.deb "$STAGE"/src/blkbackd-simulator_*.deb "$STAGE/deb/"
	lintian --fail-on error "$STAGE"/src/blkbackd_*.changes > "$STAGE/lintian.log" 2>&1 ||
		{ cat "$STAGE/lintian.log"; fail "lintian found errors in the packages"; }
	grep -v 'running with root privileges' "$STAGE/lintian.log" | sed 's/^/# lintian: /'
	echo "# packages built and linted in $(( $(date +%s) - t1 ))s: $(cd "$STAGE/deb" && echo *.deb)"
	rm -rf "$STAGE/src"
fi

# ---- run the job in dom0 ---------------------------------------------------
RUN=$XENLAB_DIR/runs/$(date +%Y%m%d-%H%M%S)-$$
export XENLAB_RUN=$RUN
export XENLAB_ENV="QUICK=${QUICK:-0} STEPS=${STEPS:-all}"
mkdir -p "$RUN"; : > "$RUN/console.log"
# the job's lines, live, from dom0's console; tail ends with this script
tail --pid=$$ -n +1 -F "$RUN/console.log" 2>/dev/null | sed -un 's/^JOB| //p' &
tailpid=$!
bash "$HERE/run-job.sh" -t "${XEN_TIMEOUT:-3600}" "$HERE/job.sh" "$STAGE/deb" \
	> "$RUN.job.out" 2> "$RUN.run.err"
rc=$?
sleep 1; kill $tailpid 2>/dev/null; wait $tailpid 2>/dev/null; tailpid=
grep '^xenlab:' "$RUN.run.err"
echo "# check-xen summary ($(( $(date +%s) - t0 ))s in all; run dir $RUN):"
if [ -s "$RUN/share/out/results.txt" ]; then
	sed 's/^/  /' "$RUN/share/out/results.txt"
else
	echo "  (no results came back)"
fi
case $rc in
0) grep -q '^FAIL' "$RUN/share/out/results.txt" && rc=1 ;;
124) echo "FAIL: check-xen: the lab timed out (console: $RUN/console.log)"; rc=1 ;;
125) echo "FAIL: check-xen: no status came back (console: $RUN/console.log)"; rc=1 ;;
*) rc=1 ;;
esac
[ $rc = 0 ] && echo "PASS: check-xen" || echo "FAIL: check-xen"
exit $rc
