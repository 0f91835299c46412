#!/usr/bin/env python3
"""Turn the config.json that `runc spec` writes into the benchmark's container.

Usage: oci-config.py BUNDLE

The root is BUNDLE/rootfs (bench/container.sh bind-mounts the host's / there, read-only: runc
cannot pivot_root into / itself), the process is `bash -c 'echo hi'` without a terminal, and the
cgroupfs mount inside the container is dropped, as labrun and bwrap mount none either (and runc
cannot bind the v1 cpu hierarchy on hybrid hosts). Namespaces stay as `runc spec` makes them:
pid, network, ipc, uts and mount; runc and crun still put the container into cgroups.
"""
import json
import sys

path = sys.argv[1] + "/config.json"
with open(path) as f:
    config = json.load(f)
config["root"] = {"path": "rootfs", "readonly": True}
config["process"]["args"] = ["bash", "-c", "echo hi"]
config["process"]["terminal"] = False
config["mounts"] = [m for m in config["mounts"] if m.get("type") != "cgroup"]
with open(path, "w") as f:
    json.dump(config, f, indent=2)
