#!/usr/bin/env python3
"""Notebook style checks and one mechanical fix.

Usage: python tools/nb_style.py report nbs/*.ipynb      exported cells over 40 non-blank lines, `;` chains, hidden test share
       (`chained_lines`: lines `split-chains` can split; `semicolon_lines`: every line with a `;` between statements,
       also after a one-line `if x:` / `for ...:` / `def f():`, which need a hand edit)
       python tools/nb_style.py split-chains nbs/X.ipynb  put `a; b` statements on their own lines (simple statements only)
"""
from __future__ import annotations
import io, json, re, sys, tokenize
from pathlib import Path


_COMPOUND = {'if', 'elif', 'else', 'for', 'while', 'with', 'try', 'except', 'finally', 'def', 'class', 'async'}


def _split_compound(line: str, toks: list) -> list[str] | None:
    "`if x: a; b` -> the header, then `a` and `b` on their own lines one level deeper (None: not such a line)"
    first = next((t for t in toks if t.type not in (tokenize.INDENT, tokenize.DEDENT)), None)
    if first is None or first.type != tokenize.NAME or first.string not in _COMPOUND: return None
    depth = 0
    for t in toks:
        if t.type == tokenize.OP:
            if t.string in '([{': depth += 1
            elif t.string in ')]}': depth -= 1
            elif t.string == ':' and depth == 0:
                head, body = line[:t.start[1] + 1].rstrip(), line[t.start[1] + 1:].strip()
                if not body or body.startswith('#'): return None
                indent = line[:len(line) - len(line.lstrip())] + '    '
                parts = _split_line(indent + body)
                return [head] + parts if len(parts) > 1 else None
    return None


def _split_line(line: str) -> list[str]:
    "A physical line split at its top-level `;` (simple statements, or the body of a one-line `if x:` / `for ...:`)"
    try: toks = list(tokenize.generate_tokens(io.StringIO(line).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError): return [line]
    compound = _split_compound(line, toks)
    if compound is not None: return compound
    depth, cuts = 0, []
    for t in toks:
        if t.type == tokenize.OP:
            if t.string in '([{': depth += 1
            elif t.string in ')]}': depth -= 1
            elif t.string == ':' and depth == 0: return [line]  # compound statement or lambda: leave it
            elif t.string == ';' and depth == 0: cuts.append(t.start[1])
        if t.type == tokenize.NAME and t.string == 'lambda' and depth == 0: return [line]
    if not cuts: return [line]
    indent = line[:len(line) - len(line.lstrip())]
    parts, prev = [], 0
    for c in cuts: parts.append(line[prev:c].strip()); prev = c + 1
    parts.append(line[prev:].strip())
    return [indent + p for p in parts if p]


def split_chains(src: str) -> str:
    out = []
    for line in src.split('\n'):
        if ';' in line and not line.lstrip().startswith(('#', '%', '!')): out += _split_line(line)
        else: out.append(line)
    return '\n'.join(out)


def _cells(fn: Path): return json.loads(fn.read_text())['cells']


def semicolons(src: str) -> list[int]:
    "1-based lines of a code cell holding a statement-separating `;` (also after `if x:`/`def f():` on one line)"
    code = '\n'.join('' if l.lstrip().startswith(('%', '!')) else l for l in src.split('\n'))
    try: toks = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError): return []
    return sorted({t.start[0] for t in toks if t.type == tokenize.OP and t.string == ';'})


def report(fn: Path) -> dict:
    cells = [c for c in _cells(fn) if c['cell_type'] == 'code']
    src = [''.join(c['source']) for c in cells]
    exp = [s for s in src if re.match(r'#\|\s*export', s)]
    sizes = [sum(1 for l in s.splitlines() if l.strip()) for s in exp]
    tests = [s for s in src if not re.match(r'#\|\s*export', s) and re.search(r'\b(test_eq|test_fail|test_close|assert)\b', s)]
    hidden = [s for s in tests if re.search(r'^#\|\s*hide', s, re.M)]
    chains = sum(1 for s in src for l in s.splitlines() if split_chains(l) != l)
    return dict(exported=len(exp), over40=sum(n > 40 for n in sizes), mean=round(sum(sizes) / max(1, len(sizes)), 1),
                tests=len(tests), hidden_tests=len(hidden), chained_lines=chains,
                semicolon_lines=sum(len(semicolons(s)) for s in src))


if __name__ == '__main__':
    cmd, *files = sys.argv[1:] or ['--help']
    if cmd == 'report':
        for f in files: print(Path(f).name, report(Path(f)))
    elif cmd == 'split-chains':
        for f in map(Path, files):
            nb = json.loads(f.read_text())
            for c in nb['cells']:
                if c['cell_type'] == 'code':
                    s = ''.join(c['source']); t = split_chains(s)
                    if t != s: c['source'] = t.splitlines(keepends=True)
            f.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    else: print(__doc__); sys.exit(2)
