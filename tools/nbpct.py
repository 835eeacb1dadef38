#!/usr/bin/env python3
"""Convert between percent-format scripts and notebooks (authoring aid; notebooks stay the source of truth).

Usage: python tools/nbpct.py to-nb SRC.py [DST.ipynb]   |   python tools/nbpct.py to-py SRC.ipynb [DST.py]

Percent format: `# %%` starts a code cell, `# %% [markdown]` a markdown cell whose lines start with `# `;
`# %% tags=["parameters"]` adds cell tags.
"""
import hashlib, json, re, sys
from pathlib import Path

def _cell(kind, lines, tags):
    while lines and not lines[-1].strip(): lines.pop()
    while lines and not lines[0].strip(): lines.pop(0)
    src = "\n".join(lines)
    meta = {"tags": tags} if tags else {}
    if kind == "markdown":
        return {"cell_type": "markdown", "metadata": meta, "source": src}
    return {"cell_type": "code", "execution_count": None, "metadata": meta, "outputs": [], "source": src}

def to_nb(src: Path, dst: Path):
    cells, kind, lines, tags = [], None, [], []
    for line in src.read_text().splitlines():
        m = re.match(r"^# %%\s*(\[markdown\])?\s*(tags=(\[.*\]))?\s*$", line)
        if m:
            if kind is not None: cells.append(_cell(kind, lines, tags))
            kind = "markdown" if m.group(1) else "code"
            tags = json.loads(m.group(3)) if m.group(3) else []
            lines = []
            continue
        if kind is None:
            if not line.strip(): continue
            kind = "code"
        if kind == "markdown":
            line = line[2:] if line.startswith("# ") else ("" if line.strip() == "#" else line)
        lines.append(line)
    if kind is not None: cells.append(_cell(kind, lines, tags))
    cells = [c for c in cells if c["source"].strip()]
    seen = set()
    for c in cells:  # ids from the cell's content: unchanged cells keep their id across conversions
        h = hashlib.sha1((c["cell_type"] + c["source"]).encode()).hexdigest()
        i = 0
        while h[i:i+8] in seen: i += 1
        c["id"] = h[i:i+8]; seen.add(c["id"])
        c["source"] = [l + "\n" for l in c["source"].split("\n")]
        c["source"][-1] = c["source"][-1][:-1]
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")

def to_py(src: Path, dst: Path):
    nb = json.loads(src.read_text())
    out = []
    for c in nb["cells"]:
        s = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        tags = c.get("metadata", {}).get("tags")
        t = f" tags={json.dumps(tags)}" if tags else ""
        if c["cell_type"] == "markdown":
            out.append(f"# %% [markdown]{t}")
            out += [("# " + l) if l else "#" for l in s.split("\n")]
        else:
            out.append(f"# %%{t}")
            out.append(s)
        out.append("")
    dst.write_text("\n".join(out))

if __name__ == "__main__":
    cmd, src = sys.argv[1], Path(sys.argv[2])
    if cmd == "to-nb": to_nb(src, Path(sys.argv[3]) if len(sys.argv) > 3 else src.with_suffix(".ipynb"))
    elif cmd == "to-py": to_py(src, Path(sys.argv[3]) if len(sys.argv) > 3 else src.with_suffix(".py"))
    else: sys.exit(__doc__)
