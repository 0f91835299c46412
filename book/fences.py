#!/usr/bin/env python3
"""mdbook preprocessor: show the opening fence of every labrun cell above its code block.

mdbook renders a code block's body but drops its info string, and in this book the info
string is the point: `bash | {type: 'file', path: 'x'}` or `console` is what a reader must
type. This adds a small caption holding the fence line as written, for blocks labrun treats
specially: annotated blocks (a `|` in the info string), transcripts, `output` blocks and blocks
marked `ignore`. It changes only the rendered book, never the pages, so labrun still runs the
pages exactly as they are.
"""
import html
import json
import re
import sys

SHOWN = {"console", "shell-session", "sh-session", "scrut", "output"}
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def shown(info):
    words = info.split()
    return bool(words) and ("|" in info or words[0] in SHOWN or "ignore" in words[1:])


def caption(content):
    out, fence = [], None
    for line in content.split("\n"):
        m = FENCE.match(line)
        if fence is None and m and not (m.group(2)[0] == "`" and "`" in m.group(3)):
            indent, marks, info = m.groups()
            fence = marks
            if shown(info.strip()):
                label = html.escape(marks + info.rstrip(), quote=False)
                out.append(f'{indent}<div class="labrun-fence"><code>{label}</code></div>')
                out.append("")
        elif fence is not None and m and m.group(2)[0] == fence[0] \
                and len(m.group(2)) >= len(fence) and not m.group(3).strip():
            fence = None
        out.append(line)
    return "\n".join(out)


def walk(items):
    for item in items:
        chapter = item.get("Chapter") if isinstance(item, dict) else None
        if chapter:
            chapter["content"] = caption(chapter["content"])
            walk(chapter.get("sub_items", []))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "supports":
        sys.exit(0 if sys.argv[2:] in (["html"], []) else 1)
    _context, book = json.load(sys.stdin)
    walk(book.get("items", book.get("sections", [])))
    json.dump(book, sys.stdout)


if __name__ == "__main__":
    main()
