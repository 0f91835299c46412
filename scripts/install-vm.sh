#!/usr/bin/env bash
# What the vm backend needs on a Debian machine, installed under /usr/local/lib/labrun/vm:
#   - qemu, unless one is on the PATH: Debian's qemu-system-x86 and the packages it needs
#     (common, data, seabios) downloaded and unpacked there, with their shared libraries
#     installed by apt. Not `apt-get install qemu-system-x86`: on this project's build
#     machines it conflicts with a newer qemu-utils backport, and apt would remove that.
#   - a kernel: Debian's linux-image-amd64, unpacked (boot/vmlinuz-* and lib/modules/*), so
#     the guest's virtio, 9p and overlay modules come with it.
# Idempotent; run as root. On another distribution, install its qemu-system-x86 package and
# point labrun at a kernel with `kernel:` or --kernel (see book/src/vm.md).
set -euo pipefail
dest=/usr/local/lib/labrun/vm
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
chmod 755 "$work" # apt's _apt user downloads into it

# apt-get download, after an update of the package lists when they are missing or stale.
download() {
    apt-get download -q "$@" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download -q "$@" >/dev/null; }
}

# The package lists, for apt-cache below.
apt-cache show linux-image-amd64 >/dev/null 2>&1 || apt-get update -q >/dev/null

have_qemu() {
    command -v qemu-system-x86_64 >/dev/null || [ -x "$dest/qemu/usr/bin/qemu-system-x86_64" ]
}

if ! have_qemu; then
    if [ ! -x "$dest/qemu/usr/bin/qemu-system-x86_64" ]; then
        echo "install-vm: unpacking Debian's qemu-system-x86 under $dest/qemu"
        download qemu-system-x86 qemu-system-common qemu-system-data seabios
        # Its shared libraries, from its own Depends line (the qemu packages themselves aside).
        deps=$(dpkg-deb -f qemu-system-x86_*.deb Depends | tr ',' '\n' |
            sed 's/(.*)//; s/|.*//; s/ //g' | grep -vE '^(qemu-|seabios|ipxe-qemu)' | sort -u)
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-remove $deps >/dev/null
        rm -rf "$dest/qemu.new"
        for deb in ./*.deb; do dpkg-deb -x "$deb" "$dest/qemu.new"; done
        rm -rf "$dest/qemu"
        mv "$dest/qemu.new" "$dest/qemu"
    fi
fi
if ! have_qemu || ! { command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version >/dev/null ||
    "$dest/qemu/usr/bin/qemu-system-x86_64" --version >/dev/null; }; then
    echo "install-vm: qemu does not run" >&2
    exit 1
fi

if ! ls "$dest"/boot/vmlinuz-* >/dev/null 2>&1; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    echo "install-vm: unpacking $pkg under $dest"
    download "$pkg"
    rm -rf "$dest/kernel.new"
    dpkg-deb -x ./"$pkg"_*.deb "$dest/kernel.new"
    mkdir -p "$dest/boot" "$dest/lib/modules"
    version=${pkg#linux-image-}
    rm -rf "$dest/lib/modules/$version"
    mv "$dest/kernel.new/lib/modules/$version" "$dest/lib/modules/$version"
    mv "$dest/kernel.new/boot/vmlinuz-$version" "$dest/boot/vmlinuz-$version.part"
    mv "$dest/boot/vmlinuz-$version.part" "$dest/boot/vmlinuz-$version"
    rm -rf "$dest/kernel.new"
fi
# modules.dep, so that modprobe finds a module and what it needs in the guest.
for dir in "$dest"/lib/modules/*; do
    if [ ! -s "$dir/modules.dep" ]; then
        command -v depmod >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kmod >/dev/null
        depmod -b "$dest" "$(basename "$dir")"
    fi
done
echo "install-vm: qemu $(command -v qemu-system-x86_64 || echo "$dest/qemu/usr/bin/qemu-system-x86_64"), kernel $(ls "$dest"/boot/vmlinuz-*)"
