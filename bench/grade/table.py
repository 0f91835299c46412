#!/usr/bin/env python3
"""Turns bench/grade.sh's measurements into the table of book/src/design/benchmarks.md and
writes it between the page's grade markers."""
import datetime, json, statistics, sys

runs_file, reports_file, podman_file, floor_file, n, sample, jobs, machine, versions, out, book = sys.argv[1:]
n, sample = int(n), int(sample)
load = lambda p: [json.loads(l) for l in open(p) if l.strip()]
runs, reports, podman = load(runs_file), load(reports_file), load(podman_file)
floor = load(floor_file)
med = lambda rows: statistics.median(r["seconds"] for r in rows)
rate_labrun = n / med(runs)
rate_reports = n / med(reports)
rate_podman = sample / med(podman) if podman else None
peak = max(r["peak_rss_kib"] for r in runs + reports) / 1024
rows = ["| row | submissions | median wall time | submissions/s | labrun's peak RSS | vs podman |",
        "|---|---|---|---|---|---|"]
ratio = lambda rate: f"{rate / rate_podman:.1f}×" if rate_podman else "n/a"
rows.append(f"| `labrun grade -j {jobs} --format none` (grade book only) | {n} | "
            f"{med(runs):.1f} s | {rate_labrun:.1f} | "
            f"{max(r['peak_rss_kib'] for r in runs) / 1024:.1f} MiB | {ratio(rate_labrun)} |")
rows.append(f"| `labrun grade -j {jobs}` (and the four reports per submission) | {n} | "
            f"{med(reports):.1f} s | {rate_reports:.1f} | "
            f"{max(r['peak_rss_kib'] for r in reports) / 1024:.1f} MiB | {ratio(rate_reports)} |")
if rate_podman:
    rows.append(f"| one `podman run` per submission, {jobs} at once (labrun --backend host inside) | "
                f"{sample} (a sample) | {med(podman):.1f} s | {rate_podman:.1f} | | 1.0× |")
else:
    rows.append("| one `podman run` per submission | n/a: podman could not run here | | | | |")
if floor:
    rate_floor = n / med(floor)
    rows.append(f"| the floor: the lab's commands in plain bash on the host, no container, nothing "
                f"checked, {jobs} at once (`bench/grade/floor.sh`) | {n} | {med(floor):.1f} s | "
                f"{rate_floor:.1f} | | {ratio(rate_floor)} |")
day = datetime.date.today().isoformat()
text = "\n".join(rows) + "\n\n" + (
    f"Measured {day} by `bench/grade.sh`: medians of {len(runs)}, {len(reports)}, "
    f"{len(podman)} and {len(floor)} runs; peak RSS is labrun's own process (VmHWM), not its containers'. "
    f"Machine: {machine}. Versions: {versions}.\n")
open(out, "w").write(text)
print(text, end="")
begin, end = "<!-- grade:begin -->", "<!-- grade:end -->"
page = open(book).read()
if begin not in page or end not in page:
    sys.exit(f"{book}: no {begin} ... {end} markers; the table is in {out}")
head, rest = page.split(begin, 1)
_, tail = rest.split(end, 1)
open(book, "w").write(head + begin + "\n" + text + end + tail)
