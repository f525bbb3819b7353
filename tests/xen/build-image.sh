#!/bin/bash
# Builds the dom0 root file system of the real-Xen lane (Debian bookworm,
# from the mirror in this machine's apt sources) and the PV guest's
# initramfs inside it. Run time only: nothing here is committed.
# Usage: build-image.sh [--clean]
#   --clean   redo debootstrap from scratch (otherwise the cached base
#             rootfs tarball is reused; downloaded .debs are always cached).
# Output (under $XENLAB_DIR, default /var/tmp/blkbackd-xenlab):
#   rootfs.img      ext4 image, no partition table (dom0 root = /dev/vda)
#   vmlinuz, initrd.img, xen.elf   boot files for run-job.sh
set -euo pipefail
XENLAB_DIR=${XENLAB_DIR:-/var/tmp/blkbackd-xenlab}
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
IMG_SIZE=${IMG_SIZE:-6G}
BASE_TAR=$XENLAB_DIR/base-rootfs.tar
CACHE=$XENLAB_DIR/debcache
ROOT=$XENLAB_DIR/rootfs
# systemd: dom0 boots with it as PID 1, as a Debian dom0 does, and the
# blkbackd package's unit is started by it; nbdkit serves the NBD exports.
PKGS=linux-image-amd64,systemd,systemd-sysv,nbdkit,xen-utils-4.17,xenstore-utils,kmod,udev,procps,util-linux,e2fsprogs,busybox-static,cpio,iproute2,ifupdown,qemu-system-xen,qemu-utils,libxen-dev,gcc,libc6-dev,fio,liburing2,libjson-c5,libnbd0,libsystemd0

t0=$(date +%s)
mkdir -p "$XENLAB_DIR" "$CACHE"
command -v debootstrap >/dev/null || apt-get install -y debootstrap
command -v qemu-system-x86_64 >/dev/null || apt-get install -y --no-install-recommends qemu-system-x86
[ -f /boot/xen-4.17-amd64.gz ] || apt-get install -y --no-install-recommends xen-hypervisor-4.17-amd64
command -v mke2fs >/dev/null || apt-get install -y e2fsprogs

# Debian mirror: read from this machine's apt sources (deb822 or one-line).
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$SUITE" '
      /^[[:space:]]*$/ { if (u!="" && ok) { print u; exit } u=""; ok=0; next }
      /^URIs:/ { u=$2 }
      /^Suites:/ { for (i=2;i<=NF;i++) if ($i==s) ok=1 }
      END { if (u!="" && ok) print u }' "$f"
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed 's/\[[^]]*\]//' | awk -v s="$SUITE" '$1=="deb" && $3==s {print $2}' || true
}
MIRROR=$(mirror | head -n1 || true)
[ -n "$MIRROR" ] || { echo "no $SUITE mirror found in apt sources" >&2; exit 1; }
echo "mirror: $MIRROR"

if [ "${1:-}" = "--clean" ] || [ ! -f "$BASE_TAR" ]; then
  rm -rf "$ROOT"
  echo "=== debootstrap (slow) ==="
  debootstrap --variant=minbase --cache-dir="$CACHE" --include="$PKGS" \
    "$SUITE" "$ROOT" "$MIRROR"
  chroot "$ROOT" apt-get clean
  tar -C "$ROOT" -cf "$BASE_TAR" .
  echo "debootstrap done in $(( $(date +%s) - t0 ))s"
else
  echo "=== reusing $BASE_TAR ==="
  rm -rf "$ROOT"; mkdir -p "$ROOT"
  tar -C "$ROOT" -xf "$BASE_TAR"
fi

# Point-release and security updates, as on any maintained dom0: the
# blkbackd package is built on this host, against the Xen libraries it has
# (bookworm-security's), and its dependencies say so. Done once and kept
# in the base tarball.
if [ ! -f "$ROOT/var/lib/xenlab/base-updated" ]; then
  echo "=== apt-get upgrade from this machine's apt sources ==="
  rm -f "$ROOT/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/*.sources "$ROOT/etc/apt/sources.list.d/" 2>/dev/null || true
  [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$ROOT/etc/apt/sources.list"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod 0755 "$ROOT/usr/sbin/policy-rc.d"
  mount -t proc proc "$ROOT/proc"
  ok=0
  DEBIAN_FRONTEND=noninteractive chroot "$ROOT" sh -c \
    'apt-get update -q && apt-get -y -q -o Dir::Cache::archives=/var/cache/apt/archives upgrade' && ok=1
  umount "$ROOT/proc"
  rm -f "$ROOT/usr/sbin/policy-rc.d"
  [ $ok = 1 ] || { echo "apt-get upgrade in the dom0 tree failed" >&2; exit 1; }
  chroot "$ROOT" apt-get clean
  mkdir -p "$ROOT/var/lib/xenlab"; touch "$ROOT/var/lib/xenlab/base-updated"
  tar -C "$ROOT" -cf "$BASE_TAR" .
fi

KVER=$(ls "$ROOT"/lib/modules | sort -V | tail -n1)
echo "kernel: $KVER"

# ---- overlay: our init + helper scripts ------------------------------------
install -m 0755 "$HERE/guest/xenlab-init" "$ROOT/usr/local/sbin/xenlab-init"
install -m 0755 "$HERE/guest/xen-start"   "$ROOT/usr/local/sbin/xen-start"
# systemd runs the job (xenlab-init) once the system is up. Debian's own
# xen and xendomains init scripts are masked: xen-start stands in for them
# (guest console logs, gntalloc's limit), and nothing else starts domains.
# No getty on the console: the job owns it.
install -m 0644 "$HERE/guest/xenlab-job.service" "$ROOT/etc/systemd/system/xenlab-job.service"
mkdir -p "$ROOT/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/xenlab-job.service "$ROOT/etc/systemd/system/multi-user.target.wants/xenlab-job.service"
for u in xen.service xendomains.service serial-getty@hvc0.service getty@tty1.service console-getty.service; do
  ln -sf /dev/null "$ROOT/etc/systemd/system/$u"
done
install -d "$ROOT/mnt/xenlab" "$ROOT/var/lib/xenlab" "$ROOT/var/log/xen/console"
echo xenlab-dom0 > "$ROOT/etc/hostname"
printf '/dev/vda / ext4 rw,noatime 0 1\n' > "$ROOT/etc/fstab"
sed -i 's/^root:[^:]*:/root::/' "$ROOT/etc/shadow"   # empty root password (lab only)

# ---- the PV guest's initramfs ----------------------------------------------
# busybox, the kernel's xen-blkfront, ext4 with its dependencies, and
# mkfs.ext4 and fio with the libraries they need, taken from the dom0 tree.
D=$(mktemp -d)
mkdir -p "$D"/{bin,sbin,dev,proc,sys,tmp,etc,lib/modules}
cp "$ROOT/bin/busybox" "$D/bin/busybox"
unpack_ko() { # FILE DEST
  case "$1" in
    *.xz) xz -dc "$1" > "$2" ;;
    *.zst) zstd -dc "$1" > "$2" ;;
    *) cp "$1" "$2" ;;
  esac
}
f=$(find "$ROOT/lib/modules/$KVER" -name 'xen-blkfront.ko*' | head -n1)
[ -n "$f" ] || { echo "no xen-blkfront module in $KVER" >&2; exit 1; }
unpack_ko "$f" "$D/lib/modules/xen-blkfront.ko"
: > "$D/lib/modules/order"
for m in $(chroot "$ROOT" modprobe -S "$KVER" --show-depends ext4 | awk '$1=="insmod" {print $2}'); do
  b=$(basename "$m"); b=${b%.xz}; b=${b%.zst}
  [ -f "$D/lib/modules/$b" ] && continue
  unpack_ko "$ROOT$m" "$D/lib/modules/$b"
  echo "$b" >> "$D/lib/modules/order"
done
echo "guest modules: $(tr '\n' ' ' < "$D/lib/modules/order")"
# copy_prog PATH-IN-ROOT: the program and every library ldd names (0755:
# the kernel refuses to load an ELF interpreter that is not executable)
copy_prog() {
  local p=$1 l
  [ -x "$ROOT$p" ] || return 1
  install -D -m 0755 "$ROOT$p" "$D$p"
  for l in $(chroot "$ROOT" ldd "$p" | awk '{ for (i=1;i<=NF;i++) if ($i ~ /^\//) print $i }'); do
    [ -f "$D$l" ] || install -D -m 0755 "$ROOT$(chroot "$ROOT" readlink -f "$l")" "$D$l"
  done
}
copy_prog /sbin/mke2fs && ln -sf /sbin/mke2fs "$D/sbin/mkfs.ext4"
cp "$ROOT/etc/mke2fs.conf" "$D/etc/"
copy_prog /usr/bin/fio || echo "no fio in the dom0 tree: the guest verifies with dd"
install -m 0755 "$HERE/guest/domu-init" "$D/init"
(cd "$D" && find . | cpio -o -H newc --quiet | gzip -1) > "$ROOT/var/lib/xenlab/domu-initrd.gz"
echo "guest initramfs: $(du -sh "$D" | cut -f1) unpacked, $(du -h "$ROOT/var/lib/xenlab/domu-initrd.gz" | cut -f1) compressed"
rm -rf "$D"
cp "$ROOT/boot/vmlinuz-$KVER" "$ROOT/var/lib/xenlab/vmlinuz"

# ---- boot files + image -----------------------------------------------------
cp "$ROOT/boot/vmlinuz-$KVER" "$XENLAB_DIR/vmlinuz"
cp "$ROOT/boot/initrd.img-$KVER" "$XENLAB_DIR/initrd.img"
XENGZ=$(ls /boot/xen-4.17-amd64.gz "$ROOT"/boot/xen-4.17-amd64.gz 2>/dev/null | head -n1 || true)
if [ -n "$XENGZ" ]; then zcat "$XENGZ" > "$XENLAB_DIR/xen.elf"; fi
[ -s "$XENLAB_DIR/xen.elf" ] || { echo "no xen hypervisor (install xen-hypervisor-4.17-amd64 on the host)" >&2; exit 1; }

rm -f "$XENLAB_DIR/rootfs.img.new"
mke2fs -q -t ext4 -L xenlab-root -d "$ROOT" "$XENLAB_DIR/rootfs.img.new" "$IMG_SIZE"
mv "$XENLAB_DIR/rootfs.img.new" "$XENLAB_DIR/rootfs.img"
echo "image: $XENLAB_DIR/rootfs.img  ($(du -h --apparent-size "$XENLAB_DIR/rootfs.img" | cut -f1) apparent, $(du -h "$XENLAB_DIR/rootfs.img" | cut -f1) used)"
echo "build-image total: $(( $(date +%s) - t0 ))s"
