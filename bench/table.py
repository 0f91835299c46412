#!/usr/bin/env python3
"""Renders a hyperfine JSON export as the book's markdown table: one row per command with
what it runs, its median, mean ± σ, min … max, and its median over a reference row's.

    table.py RESULTS TABLE --reference NAME --ratio LABEL --footer TEXT \
        [--code] --what NAME=TEXT [--what NAME=TEXT ...]

RESULTS is hyperfine's `--export-json` file; the table (with FOOTER after a blank line) is
written to TABLE and printed. Every command in RESULTS needs a `--what`; `--code` shows the
command names as code. The bench scripts that compare peers row by row share it.
"""
import argparse
import json
import sys


def duration(seconds):
    """A time with three significant figures or so, in ms below one second."""
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    ms = seconds * 1000
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def render(results, reference, ratio, whats, footer, code=False):
    by_name = {r["command"]: r for r in results}
    if reference not in by_name:
        sys.exit(f"table.py: no row named {reference!r} to compare with")
    peer = by_name[reference]["median"]
    rows = [
        f"| row | what runs | median | mean ± σ | min … max | median / {ratio} |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        name = r["command"]
        if name not in whats:
            sys.exit(f"table.py: no --what for the row {name!r}")
        shown = f"`{name}`" if code else name
        rows.append(
            f"| {shown} | {whats[name]} | {duration(r['median'])} | "
            f"{duration(r['mean'])} ± {duration(r['stddev'] or 0)} | "
            f"{duration(r['min'])} … {duration(r['max'])} | {r['median'] / peer:.2f} |"
        )
    return "\n".join(rows) + "\n\n" + footer + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("table")
    parser.add_argument("--reference", required=True, help="the row the others are divided by")
    parser.add_argument("--ratio", required=True, help="that row's name in the last header")
    parser.add_argument("--footer", required=True)
    parser.add_argument("--code", action="store_true", help="show command names as code")
    parser.add_argument("--what", action="append", default=[], metavar="NAME=TEXT")
    args = parser.parse_args()
    whats = dict(w.split("=", 1) for w in args.what)
    with open(args.results) as f:
        results = json.load(f)["results"]
    text = render(results, args.reference, args.ratio, whats, args.footer, args.code)
    with open(args.table, "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
