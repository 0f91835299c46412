#!/usr/bin/env bash
# The container tests again, as an unprivileged user: labrun must work rootless (a user
# namespace, subordinate id ranges through newuidmap, no cgroup delegation). Creates the user
# `labtest` with /etc/subuid and /etc/subgid ranges when it is missing (needs root), copies the
# release test binaries and labrun where that user can read them, and runs them as it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path

user=labtest
if ! id "$user" >/dev/null 2>&1; then
    step "useradd $user"
    as_root useradd --create-home --shell /bin/bash "$user"
fi
for file in /etc/subuid /etc/subgid; do
    if ! grep -q "^$user:" "$file" 2>/dev/null; then
        step "subordinate ids for $user in $file"
        echo "$user:200000:65536" | as_root tee -a "$file" >/dev/null
    fi
done

# The test binaries the container backend concerns (and the registry's, whose layers carry
# overlay whiteouts a rootless mount must read), as cargo built them for the test suite
# (the ci profile).
tests=(conformance container limits targets setup_layers registry vm)
for f in tests/isolation*.rs; do
    [ -e "$f" ] && tests+=("$(basename "$f" .rs)")
done
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
mapfile -t binaries < <(cargo test --profile ci --no-run --message-format=json "${args[@]}" 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')

dir=$(mktemp -d /tmp/labrun-rootless.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cp "$(labrun_bin)" "$dir/labrun"
for b in "${binaries[@]}"; do cp "$b" "$dir/"; done
chmod -R a+rX "$dir"

status=0
for b in "${binaries[@]}"; do
    name=$(basename "$b")
    step "as $user: $name"
    # A home of its own for the cache; tests find labrun through LABRUN_BIN.
    if ! su "$user" -s /bin/bash -c \
        "cd /tmp && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/$user LABRUN_BIN=$dir/labrun $dir/$name --test-threads 2"; then
        status=1
    fi
done
exit "$status"
