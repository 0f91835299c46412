#!/usr/bin/env bash
# The vm backend's benchmark: boot to the first command's output and back. Side by side in one
# hyperfine invocation:
#   - labrun on a one-cell notebook with `backend: vm` (busybox image), end to end: warm (the
#     guest restored from the snapshot labrun saved on its first boot) and cold (booted, with
#     LABRUN_VM_SNAPSHOT=0);
#   - qemu alone booting the same kernel, unpacked, with a busybox /init that prints and powers
#     off: the floor for this kernel under this accelerator;
#   - the same, booting the compressed bzImage (what labrun avoids by unpacking it once);
#   - the same notebook on the container backend, for scale.
# The table goes to bench/out/vm.md and between the vm markers of book/src/design/benchmarks.md.
#
#   bench/vm.sh                  # 1 warm-up and 10 measured runs of each row
#   BENCH_RUNS=20 bench/vm.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path
apt_install_missing hyperfine python3 busybox-static cpio xz-utils
as_root scripts/install-vm.sh
step "cargo build --release"
cargo build --release
labrun=$(labrun_bin)
out=bench/out
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
results=$out/vm.json
table=$out/vm.md
book=book/src/design/benchmarks.md
runs=${BENCH_RUNS:-10}

dest=/usr/local/lib/labrun/vm
qemu=$(command -v qemu-system-x86_64 || echo "$dest/qemu/usr/bin/qemu-system-x86_64")
datadir=()
[ -d "$dest/qemu/usr/share/qemu" ] && datadir=(-L "$dest/qemu/usr/share/qemu")
bzimage=$(ls "$dest"/boot/vmlinuz-* | tail -1)
# The kernel unpacked as labrun unpacks it: the xz stream inside the bzImage.
python3 - "$bzimage" "$work/vmlinux" <<'PY'
import subprocess, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
out = subprocess.run(["xz", "-dc"], input=data[start:], capture_output=True).stdout
open(sys.argv[2], "wb").write(out)
PY

# The floor: a busybox /init that prints, then powers the machine off.
mkdir -p "$work/initrd/bin"
cp "$(command -v busybox)" "$work/initrd/bin/busybox"
printf '#!/bin/busybox sh\n/bin/busybox echo hi\n/bin/busybox poweroff -f\n' >"$work/initrd/init"
chmod +x "$work/initrd/init"
(cd "$work/initrd" && find . | cpio -o -H newc --quiet) >"$work/initrd.cpio"
# The kernel command line labrun boots with (src/env/vm/qemu.rs).
append="console=ttyS0 quiet loglevel=4 tsc_early_khz=2000000 tsc=reliable panic=-1 pci=off rdinit=/init 8250.nr_uarts=1 cryptomgr.notests random.trust_cpu=on"
floor() { # KERNEL
    printf '%q ' "$qemu" "${datadir[@]}" -M microvm -accel tcg -m 512M -smp 1 -nodefaults \
        -no-user-config -nographic -no-reboot -serial stdio -kernel "$1" \
        -initrd "$work/initrd.cpio" -append "$append"
}
"$(dirname "$qemu")"/qemu-system-x86_64 --version >/dev/null

printf -- '---\nlabrun:\n  image: busybox\n---\n# One\n\n```console\n$ echo hi\nhi\n```\n' >"$work/one.md"
"$labrun" -q --backend vm "$work/one.md"

step "hyperfine: boot to the first output ($runs runs each)"
q() { printf '%q' "$1"; }
hyperfine -N --warmup 1 --runs "$runs" --export-json "$results" \
    -n "labrun, vm backend, warm" "$(q "$labrun") -q --backend vm $(q "$work/one.md")" \
    -n "labrun, vm backend, cold" "env LABRUN_VM_SNAPSHOT=0 $(q "$labrun") -q --backend vm $(q "$work/one.md")" \
    -n "qemu alone, unpacked kernel" "$(floor "$work/vmlinux")" \
    -n "qemu alone, bzImage" "$(floor "$bzimage")" \
    -n "labrun, container backend" "$(q "$labrun") -q --backend container $(q "$work/one.md")"

step "table ($table)"
machine=$(machine_description)
versions="$("$labrun" --version 2>/dev/null | head -1); $("$qemu" "${datadir[@]}" --version | head -1); kernel $(basename "$bzimage"); accelerator tcg; $(hyperfine --version)"
python3 bench/table.py "$results" "$table" \
    --reference "qemu alone, unpacked kernel" --ratio "qemu alone" \
    --what "labrun, vm backend, warm=a one-cell notebook in a fresh guest restored from labrun's snapshot: restore, root over 9p, the cell, power off" \
    --what "labrun, vm backend, cold=the same, the guest booted (LABRUN_VM_SNAPSHOT=0): boot, modules, agent, root, the cell" \
    --what "qemu alone, unpacked kernel=the same kernel and qemu flags, a busybox /init that prints and powers off" \
    --what "qemu alone, bzImage=the same, booting the compressed image (it unpacks itself in the guest)" \
    --what "labrun, container backend=the same notebook in a fresh container" \
    --footer "Measured $(date +%F) by \`bench/vm.sh\`: one hyperfine invocation, \`-N\`, 1 warm-up and $runs measured runs of each row. Machine: $machine. Versions: $versions." >/dev/null
cat "$table"
replace_between "$book" "<!-- vm:begin -->" "<!-- vm:end -->" "$table"
