#!/bin/bash
# Boots Xen + the Debian PV dom0 under qemu-system-x86_64 (TCG), runs a job script
# inside dom0, brings its output and exit status back, powers off.
# Usage: run-job.sh [-t TIMEOUT_S] [-m MEM_MB] [-d DOM0_MB] JOB.sh [FILE...]
#   JOB.sh runs in dom0 as root with cwd = the share (FILEs are copied there).
#   Whatever the job writes under ./out/ comes back in $RUN/share/out/.
#   XENLAB_ENV="K=V K2=V2" is written to ./job.env for the job to source;
#   XENLAB_RUN names the run directory (default $XENLAB_DIR/runs/<time>-<pid>).
# Prints the job output, exits with the job's exit status
# (124 = timeout, 125 = no status came back).
set -uo pipefail
XENLAB_DIR=${XENLAB_DIR:-/var/tmp/blkbackd-xenlab}
TIMEOUT=900; MEM=3072; DOM0_MB=1536
while getopts t:m:d: o; do case $o in t) TIMEOUT=$OPTARG;; m) MEM=$OPTARG;; d) DOM0_MB=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND-1))
[ $# -ge 1 ] || { sed -n 2,9p "$0"; exit 2; }
JOB=$1; shift
for f in xen.elf vmlinuz initrd.img rootfs.img; do
  [ -f "$XENLAB_DIR/$f" ] || { echo "missing $XENLAB_DIR/$f: run build-image.sh" >&2; exit 2; }
done
RUN=${XENLAB_RUN:-$XENLAB_DIR/runs/$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$RUN/share/out"
cp "$JOB" "$RUN/share/job.sh"
for f in "$@"; do cp -a "$f" "$RUN/share/"; done
[ -n "${XENLAB_ENV:-}" ] && printf '%s\n' $XENLAB_ENV > "$RUN/share/job.env"
LOG=$RUN/console.log; : > "$LOG"

# smap=0: with SMAP on, QEMU-TCG + Xen 4.17 crash the PV dom0 at its first
# exception bounce ("d0v0 Unhandled: vec 14, #PF[0001]" in create_bounce_frame).
ACCEL=${XENLAB_ACCEL:-tcg,thread=multi}
# -cpu max exposes features (XSAVE/AVX state) that, under TCG + Xen PV, corrupt
# guest registers now and then: random malloc aborts and segfaults in dom0/domU
# (3 crashes in ~10 runs). Nehalem: 0 in 5.
CPU=${XENLAB_CPU:-Nehalem}
XEN_ARGS="console=com1 com1=115200,8n1 dom0_mem=${DOM0_MB}M,max:${DOM0_MB}M dom0_max_vcpus=2 smap=0 loglvl=all guest_loglvl=all ${XENLAB_XEN_ARGS:-}"
# dom0 boots systemd as PID 1, which runs the job as xenlab-job.service;
# XENLAB_DOM0_ARGS=init=/usr/local/sbin/xenlab-init runs it without systemd.
DOM0_ARGS="root=/dev/vda rw console=hvc0 earlyprintk=xen ${XENLAB_DOM0_ARGS:-}"
t0=$(date +%s.%N)
qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -m "$MEM" -smp 2 \
  -nodefaults -display none -no-reboot -monitor none -serial "file:$LOG" \
  -kernel "$XENLAB_DIR/xen.elf" -append "$XEN_ARGS" \
  -initrd "$XENLAB_DIR/vmlinuz $DOM0_ARGS,$XENLAB_DIR/initrd.img" \
  -drive "file=$XENLAB_DIR/rootfs.img,if=virtio,format=raw,snapshot=on" \
  -fsdev "local,id=fs0,path=$RUN/share,security_model=none" \
  -device virtio-9p-pci,fsdev=fs0,mount_tag=xenlab \
  ${XENLAB_QEMU_EXTRA:-} > "$RUN/qemu.out" 2>&1 &
QPID=$!
echo "$QPID" > "$RUN/qemu.pid"
echo "xenlab: run dir $RUN, qemu pid $QPID, timeout ${TIMEOUT}s" >&2

declare -A seen=()
marks=("Xen version:(XEN) Xen version" "dom0 kernel:Linux version" "init:XENLAB: init start" "job start:XENLAB: job start" "done:XENLAB-DONE")
status=timeout
while :; do
  now=$(date +%s.%N)
  for m in "${marks[@]}"; do
    k=${m%%:*}; pat=${m#*:}
    if [ -z "${seen[$k]:-}" ] && grep -qF "$pat" "$LOG"; then
      seen[$k]=$(echo "$now $t0" | awk '{printf "%.1f", $1-$2}')
      echo "xenlab: +${seen[$k]}s $k" >&2
    fi
  done
  if ! kill -0 $QPID 2>/dev/null; then status=exited; break; fi
  if [ -n "${seen[done]:-}" ]; then
    # give dom0 a few seconds to power off by itself
    for i in $(seq 1 20); do kill -0 $QPID 2>/dev/null || break; sleep 0.5; done
    status=done; break
  fi
  if awk -v n="$now" -v t="$t0" -v T="$TIMEOUT" 'BEGIN{exit !(n-t>T)}'; then status=timeout; break; fi
  sleep 0.5
done
if kill -0 $QPID 2>/dev/null; then kill $QPID; sleep 1; kill -9 $QPID 2>/dev/null; fi
wait $QPID 2>/dev/null
total=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1-$2}')
{
  echo "status=$status total=${total}s"
  for k in "Xen version" "dom0 kernel" init "job start" done; do echo "t[$k]=${seen[$k]:-}"; done
} > "$RUN/timings.txt"
echo "xenlab: $status after ${total}s; console log: $LOG" >&2
[ -f "$RUN/share/out/job.log" ] && cat "$RUN/share/out/job.log"
if [ "$status" = timeout ]; then echo "xenlab: TIMEOUT; last console lines:" >&2; tail -n 25 "$LOG" >&2; exit 124; fi
rc=$(cat "$RUN/share/out/rc" 2>/dev/null)
case "$rc" in ''|*[!0-9]*) echo "xenlab: no exit status came back; last console lines:" >&2; tail -n 25 "$LOG" >&2; exit 125;; esac
exit "$rc"
