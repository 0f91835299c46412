# Shared helpers for scripts/*.sh and bench/*.sh. Source it; it defines functions only.
# shellcheck shell=bash

# Print a step the way the scripts announce what they do.
step() {
    printf '\n==> %s\n' "$*" >&2
}

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: '$*' needs root and sudo is not installed" >&2
        return 1
    fi
}

# Make binaries installed by `cargo install` reachable.
cargo_bin_on_path() {
    local bin="${CARGO_HOME:-$HOME/.cargo}/bin"
    case ":$PATH:" in
        *":$bin:"*) ;;
        *) PATH="$bin:$PATH" ;;
    esac
    export PATH
}

# Install Debian packages that are missing (apt-get update only when something is).
apt_install_missing() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        step "apt-get install ${missing[*]}"
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}

# The release binary, wherever cargo puts it.
labrun_bin() {
    printf '%s/%s/release/labrun\n' "${CARGO_TARGET_DIR:-target}" "$(host_triple)"
}

# This machine's target triple: .cargo/config.toml names the target, so cargo builds into
# target/<triple>/.
host_triple() {
    rustc -vV | sed -n 's/^host: //p'
}

# Replaces what lies between the lines BEGIN and END of FILE with CONTENT-FILE's text (the
# benchmarks write their tables into the book this way, so a rerun refreshes the page).
# What the benchmarks say they ran on: CPU, cores, distribution, kernel.
machine_description() {
    local cpu
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    # shellcheck source=/dev/null
    echo "$cpu, $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
}

replace_between() { # FILE BEGIN END CONTENT-FILE
    python3 - "$@" <<'EOF'
import sys
path, begin, end, content = sys.argv[1:]
page = open(path).read()
if begin not in page or end not in page:
    sys.exit(f"{path}: no {begin} ... {end} markers; the table is in {content}")
head, rest = page.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + begin + "\n" + open(content).read() + end + tail)
EOF
}
