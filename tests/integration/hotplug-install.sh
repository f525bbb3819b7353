#!/bin/sh
# make install DESTDIR=...: programs, man pages, the hotplug script (told
# where blkback-ctl went), the systemd unit (its ExecStart) and the
# modprobe snippet land in the configured directories.
. "$top_srcdir/tests/functions.sh"
test_timeout 300
inst="$TEST_DIR/inst"

# dir VAR: the fully expanded make variable VAR of hotplug/Makefile. The
# outer make's flags stay out: under "make check -j" they made the inner
# make print "Entering directory" into the value.
dir() {
	printf 'print:\n\t@echo $(%s)\n' "$1" |
		env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s --no-print-directory -C "$top_builddir/hotplug" -f Makefile -f - print
}

make -s -C "$top_builddir" install DESTDIR="$inst" >"$TEST_DIR/install.log" 2>&1 ||
	fail "make install: $(tail -20 "$TEST_DIR/install.log")"
sbindir=$(dir sbindir)
bindir=$(dir bindir)
mandir=$(dir mandir)
scripts=$(dir xenscriptsdir)
unitdir=$(dir systemdsystemunitdir)
modprobedir=$(dir modprobedir)
# xl looks in /etc/xen/scripts whatever our prefix; configure's default
[ "$scripts" = "$(sed -n 's/^xenscriptsdir = //p' "$top_builddir/hotplug/Makefile")" ] ||
	fail "script dir $scripts"
grep -q -- '--with-xen-scripts-dir' "$top_builddir/config.log" ||
	[ "$scripts" = /etc/xen/scripts ] || fail "default script dir is $scripts, not /etc/xen/scripts"
[ "$modprobedir" = "$(dir prefix)/lib/modprobe.d" ] || fail "modprobe dir $modprobedir"

info "programs"
for p in "$sbindir/blkbackd" "$sbindir/blkback-ctl"; do
	[ -x "$inst$p" ] || fail "$p not installed"
done
"$inst$sbindir/blkbackd" --version | grep -q '^blkbackd ' || fail "installed blkbackd does not run"
for m in man8/blkbackd.8 man8/blkback-ctl.8; do
	[ -f "$inst$mandir/$m" ] || fail "$mandir/$m not installed"
done

# The simulator's programs and pages: only with --enable-simulator-install.
sim="$sbindir/xensimd $bindir/xensim $bindir/blkfront-sim $mandir/man8/xensimd.8 \
	$mandir/man1/xensim.1 $mandir/man1/blkfront-sim.1"
if grep -qxF 'S["SIMULATOR_INSTALL_TRUE"]=""' "$top_builddir/config.status"; then
	info "simulator programs, installed on request"
	for p in $sim; do [ -f "$inst$p" ] || fail "$p not installed"; done
else
	info "simulator programs, not installed without --enable-simulator-install"
	for p in $sim; do [ ! -e "$inst$p" ] || fail "$p installed without the opt-in"; done
fi

info "the commented defaults file the unit reads"
def="$inst$(dir sysconfdir)/default/blkbackd"
[ -f "$def" ] || fail "$(dir sysconfdir)/default/blkbackd not installed"
grep -q '^BLKBACKD_OPTS=' "$def" || fail "no BLKBACKD_OPTS in the defaults file"

info "hotplug script, executable, pointing at the installed blkback-ctl"
[ -x "$inst$scripts/blkbackd" ] || fail "$scripts/blkbackd not installed executable"
grep -qx "BLKBACKD_SBINDIR=$sbindir" "$inst$scripts/blkbackd" ||
	fail "script's sbindir: $(grep ^BLKBACKD_SBINDIR= "$inst$scripts/blkbackd")"
sh -n "$inst$scripts/blkbackd" || fail "installed script does not parse"

info "systemd unit"
[ -n "$unitdir" ] || fail "no systemd unit dir configured"
unit="$inst$unitdir/blkbackd.service"
[ -f "$unit" ] || fail "$unitdir/blkbackd.service not installed"
grep -qx "ExecStart=$sbindir/blkbackd -v \$BLKBACKD_OPTS" "$unit" ||
	fail "ExecStart: $(grep ^ExecStart "$unit")"
grep -q '@[a-z]*@' "$unit" && fail "unsubstituted @var@ in the unit"

info "modprobe snippet"
conf="$inst$modprobedir/blkbackd.conf"
[ -f "$conf" ] || fail "$modprobedir/blkbackd.conf not installed"
grep -qx 'blacklist xen-blkback' "$conf" || fail "no blacklist line"
grep -qx 'install xen-blkback /bin/false' "$conf" || fail "no install line"

info "nothing outside DESTDIR, and uninstall removes it all"
make -s -C "$top_builddir" uninstall DESTDIR="$inst" >>"$TEST_DIR/install.log" 2>&1 ||
	fail "make uninstall"
left=$(find "$inst" -type f | head -5)
[ -z "$left" ] || fail "left after uninstall: $left"
exit 0
