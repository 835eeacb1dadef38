#!/usr/bin/env python3
"""Move the top-level import lines of a notebook's example/test cells into its hidden import cell.

nbdev's docs processing runs every cell that holds an import; a cell that also uses names defined by earlier cells
then fails the page. Usage: python tools/nb_imports.py nbs/X.ipynb [...]
"""
import json, re, sys
from pathlib import Path

IMPORT = re.compile(r'^(import \S|from \S+ import )')

for f in map(Path, sys.argv[1:]):
    nb = json.loads(f.read_text())
    cells = [c for c in nb['cells'] if c['cell_type'] == 'code']
    home = next((c for c in cells if ''.join(c['source']).startswith('#| hide') and 'nbdev.showdoc' in ''.join(c['source'])), None)
    if home is None: print(f"{f}: no hidden import cell"); continue
    moved = []
    for c in cells:
        s = ''.join(c['source'])
        if c is home or re.match(r'#\|\s*(export|default_exp)', s): continue
        lines = s.split('\n')
        keep = [l for l in lines if not IMPORT.match(l)]
        got = [l for l in lines if IMPORT.match(l) and '(' not in l or (IMPORT.match(l) and l.rstrip().endswith(')'))]
        if not got: continue
        keep = [l for l in lines if l not in got]
        moved += [l for l in got if l not in moved]
        c['source'] = '\n'.join(keep).strip('\n').splitlines(keepends=True)
    if moved:
        home['source'] = (''.join(home['source']).rstrip('\n') + '\n' + '\n'.join(moved)).splitlines(keepends=True)
        nb['cells'] = [c for c in nb['cells'] if c['cell_type'] != 'code' or ''.join(c['source']).strip()]
        f.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    print(f"{f}: moved {len(moved)} import line(s)")
