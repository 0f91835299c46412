#!/usr/bin/env python3
"""Runs a command and prints one JSON line: its wall time in seconds, its exit status, and the
peak resident memory (VmHWM) of that process itself (not its children), polled every 10 ms
while it runs; the last reading is the peak of its whole life but its final 10 ms."""
import json, subprocess, sys, time

cmd = sys.argv[1:]
started = time.monotonic()
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
peak_kib = 0
while proc.poll() is None:
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
    except OSError:
        pass
    time.sleep(0.01)
print(json.dumps({"seconds": time.monotonic() - started, "status": proc.returncode,
                  "peak_rss_kib": peak_kib}))
