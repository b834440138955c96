"""Regenerate the generated blocks of a markdown file in place (shared by the scripts
that write tables into docs/: ptb_progress.py, svae_table.py).

A block runs from `<!-- begin TOOL ARGS -->` to `<!-- end TOOL -->`; `update` replaces
what lies between with `render(ARGS)` and keeps the rest of the file (the reading).
"""
import os
import re
import sys


def update(path, tool, render):
    """Rewrite every TOOL block of the file at `path` with `render(args)` (a list of
    lines); exits with a message naming the file (and line) when it cannot be read, a
    block has no end or the file has no block."""
    begin = re.compile(rf"^<!-- begin {re.escape(tool)} (.*) -->$")
    end_line = f"<!-- end {tool} -->"
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError as e:
        sys.exit(f"{path}: cannot read it ({e.strerror}): name a markdown file with a "
                 "block to update")
    out, i, blocks = [], 0, 0
    while i < len(lines):
        m = begin.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        try:
            end = lines.index(end_line, i + 1)
        except ValueError:
            sys.exit(f"{path}: line {i + 1} begins a block of {tool} that no `{end_line}` ends")
        out += [lines[i]] + render(m.group(1)) + [end_line]
        i = end + 1
        blocks += 1
    if blocks == 0:
        sys.exit(f"{path}: no `<!-- begin {tool} ... -->` line to update")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out))
    os.replace(tmp, path)  # a crash mid-write leaves the old file, not half a page
