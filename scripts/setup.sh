#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian 12 machine. Safe to run again: it only
# installs what is missing. Run as root, or as a user with sudo for the apt part.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path

# busybox-static: the busybox image of the container backend (and its tests)
# debootstrap:    the debian:<suite> image (notebooks/debian.md, tests/debian_image.rs)
# hyperfine:      the benchmarks
# libxml2-utils:  xmllint, to validate report files in tests
# procps:         ps/pgrep, to check that no process outlives a run
# gcc, libc6-dev: the linker Rust needs, and the C library's files it links against
# python3:        the book's small mdbook preprocessor (book/fences.py)
# uidmap:         newuidmap/newgidmap, so rootless containers map subordinate ids
# util-linux:     nsenter, unshare (tests of --keep)
# iproute2:       ip, in the several-machine tests and notebooks
# docker-registry, umoci, skopeo, openssl, apache2-utils (htpasswd): the registry tests
#                 (tests/registry.rs) and bench/pull.sh run a real registry on 127.0.0.1
# slurmctld, slurmd, slurm-client, munge: tests/slurm.rs and bench/slurm.sh start a real
#                 single-node Slurm cluster (`grade --slurm`)
# cpio:           reads back the vm backend's initramfs in a unit test
# binutils:       strip, which keeps the vm's agent (labrun itself) small in its initramfs
# xz-utils:       unpacks the vm backend's kernel from its bzImage (once) for a direct boot
# (bench/container.sh installs the container runtimes it compares labrun with.)
apt_install_missing busybox-static debootstrap hyperfine uidmap util-linux libxml2-utils procps \
    gcc libc6-dev python3 iproute2 docker-registry umoci skopeo openssl apache2-utils \
    slurmctld slurmd slurm-client munge cpio binutils xz-utils

# The vm backend: qemu and a Debian kernel under /usr/local/lib/labrun/vm.
step "scripts/install-vm.sh"
as_root scripts/install-vm.sh

# Toolchain components used by .ci/run.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    step "rustup component add rustfmt clippy"
    rustup component add rustfmt clippy
fi

# .cargo/config.toml names the target `host-tuple`: cargo knows it since 1.91, cargo-nextest
# since early 2026 (0.9.143 is the oldest version checked here).
version_at_least() { # HAVE WANT
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}
rust=$(rustc --version | awk '{print $2}')
if ! version_at_least "$rust" 1.91.0; then
    step "rustup update stable (rustc $rust is older than 1.91)"
    rustup update stable
fi
nextest=$(cargo nextest --version 2>/dev/null | awk 'NR == 1 {print $2}')
if [ -z "$nextest" ] || ! version_at_least "$nextest" 0.9.143; then
    step "cargo install --locked cargo-nextest"
    cargo install --locked cargo-nextest
fi

# mdbook is not packaged by Debian; the book needs the 0.5 series.
if ! mdbook --version 2>/dev/null | grep -q '^mdbook v0\.5\.'; then
    step "cargo install --locked mdbook (0.5)"
    cargo install --locked mdbook --version '^0.5'
fi

# scrut: scripts/test.sh checks that notebooks/scrut-compat.md is still valid scrut.
if ! command -v scrut >/dev/null 2>&1; then
    step "cargo install --locked scrut"
    cargo install --locked scrut
fi

step "setup complete"
