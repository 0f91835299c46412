#!/usr/bin/env bash
# Side-by-side benchmark: pulling a ~100 MB image from a registry on 127.0.0.1, with labrun
# (a one-cell notebook on that image, into an empty cache each run) and with `skopeo copy` of
# the same image into an OCI layout (with and without `umoci unpack`, which does the unpacking
# labrun does too). One hyperfine invocation holds every row; the table goes to
# bench/out/pull.md and between the registry-pull markers of book/src/design/benchmarks.md.
#
#   bench/pull.sh                 # 2 warm-up runs, then 10 measured runs of each row
#   BENCH_RUNS=30 bench/pull.sh   # more runs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cargo_bin_on_path

apt_install_missing hyperfine docker-registry umoci skopeo busybox-static python3

step "cargo build --release"
cargo build --release
labrun=$(labrun_bin)

out=bench/out
work=$(mktemp -d)
mkdir -p "$out"
results=$out/pull.json
table=$out/pull.md
book=book/src/design/benchmarks.md
runs=${BENCH_RUNS:-10}
registry_pid=
cleanup() {
    if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

step "a registry on 127.0.0.1"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/store
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
done

step "a ~100 MB image: busybox, 70 MB of random bytes, 80 MB of this machine's libraries"
layers=$work/layers
mkdir -p "$layers/base/bin" "$layers/base/tmp" "$layers/random" "$layers/libs"
cp /bin/busybox "$layers/base/bin/busybox"
for applet in sh cat echo; do ln -s busybox "$layers/base/bin/$applet"; done
for i in 1 2 3 4 5 6 7; do head -c 10M /dev/urandom >"$layers/random/blob$i"; done
find /usr/lib/x86_64-linux-gnu /usr/lib -maxdepth 1 -type f -printf '%s %p\n' 2>/dev/null |
    sort -k2 | awk '{ total += $1; if (total > 80 * 1024 * 1024) exit; print $2 }' |
    while read -r f; do cp "$f" "$layers/libs/"; done
layout=$work/oci
umoci init --layout "$layout"
umoci new --image "$layout:big"
umoci config --image "$layout:big" --architecture amd64
for l in base random libs; do
    tar --numeric-owner --owner=0 --group=0 -C "$layers/$l" -cf "$work/$l.tar" .
    umoci raw add-layer --image "$layout:big" "$work/$l.tar"
done
image=127.0.0.1:$port/bench/big:1
export REGISTRY_AUTH_FILE=$work/skopeo-auth.json
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:big" "docker://$image"
size=$(du -sb "$work/store" | cut -f1)

notebook=$work/pull.md
printf -- '---\nlabrun:\n  image: %s\n---\n\n```console\n$ echo hi\nhi\n```\n' "$image" >"$notebook"
cache=$work/cache
fresh=$work/skopeo-out
env LABRUN_CACHE="$cache" "$labrun" -q "$notebook"

step "hyperfine: pull ($runs runs each)"
q() { printf '%q' "$1"; }
hyperfine -N --warmup 2 --runs "$runs" --export-json "$results" \
    --prepare "rm -rf $(q "$cache")" \
    -n "labrun" "env LABRUN_CACHE=$(q "$cache") $(q "$labrun") -q $(q "$notebook")" \
    --prepare "rm -rf $(q "$fresh")" \
    -n "skopeo copy" "skopeo copy --quiet --src-tls-verify=false docker://$image oci:$(q "$fresh"):big" \
    --prepare "rm -rf $(q "$fresh")" \
    -n "skopeo copy + umoci unpack" \
    "sh -c 'skopeo copy --quiet --src-tls-verify=false docker://$image oci:$fresh:big && umoci unpack --image $fresh:big $fresh/bundle >/dev/null'" \
    --prepare "true" \
    -n "labrun, layers cached" "env LABRUN_CACHE=$(q "$cache") $(q "$labrun") -q $(q "$notebook")"

step "table ($table)"
machine=$(machine_description)
versions="$("$labrun" --version 2>/dev/null | head -1); skopeo $(skopeo --version | awk '{print $3}')"
versions+="; umoci $(umoci --version | awk '{print $3}'); $(docker-registry --version | awk '{print $1, $3}')"
versions+="; $(hyperfine --version)"
mb=$(( size / 1000000 ))
python3 bench/table.py "$results" "$table" --code --reference "skopeo copy" --ratio "skopeo copy" \
    --what "labrun=one-cell notebook on the image, empty cache: pull, verify, unpack, run" \
    --what "skopeo copy=the same image into an OCI layout (blobs verified, not unpacked)" \
    --what "skopeo copy + umoci unpack=the same, then unpacked to a root filesystem" \
    --what "labrun, layers cached=the notebook again with the layers cached (manifest only)" \
    --footer "Measured $(date +%F) by \`bench/pull.sh\`: one hyperfine invocation, \`-N\`, 2 warm-up and $runs measured runs of each row; the registry holds $mb MB (three layers, gzip). Machine: $machine. Versions: $versions."

replace_between "$book" "<!-- registry-pull:begin -->" "<!-- registry-pull:end -->" "$table"
step "written into $book"
