#!/usr/bin/env python
"""Offline documentation build for flairhub_nb (the `make docs` fallback when quarto is not installed).

What it does (and why):

1. Processes the notebooks the way `nbdev-proc-nbs` does (nbdev's own `serve_drv` + `FilterDefaults` processors, into
   `<root>/_proc/`): front matter from the title cell, `#| hide` cells removed, exported code folded away and
   `show_doc` cells added *and executed*, so every page has its API docs (signatures, docstrings, parameter tables).
   We do not call the `nbdev-proc-nbs` command: it first tries to install quarto with `sudo` (a password prompt or a
   network download), which a fallback must never do, and one notebook failing to process stops all of them. Here
   each notebook is processed in its own worker; one that nbdev cannot process (nbdev executes every cell holding an
   import while processing, so a test cell mixing imports with names from other cells fails) is rendered from its
   source with a note, and listed in `build_report.json`.
2. Shows the outputs stored in the notebooks, as quarto does (nbdev-docs renders stored outputs and does not execute):
   the notebooks are committed with their results (`tests/test_notebook_outputs.py` keeps them equal to a fresh run).
   Only notebooks that display widgets are executed by default, because nbdev-clean drops the widget state the page
   needs to render them; `--execute GLOB` picks the notebooks to run instead (`--execute '*'`: all), `--no-execute`
   runs none. An executed notebook is run with nbclient, in `nbs/`, *without the cells flagged `slow`/`gpu`/`notest`*
   (exactly the cells `nbdev-test` runs by default), with a per-cell timeout, and its fresh outputs replace the stored
   ones on the matching cells. A notebook that fails or times out is rendered without outputs, with a note at the
   top of its page saying so; the whole site is still written (so the failure can be read in its page), but the
   build then **exits non-zero** naming the failed pages (`--keep-going` exits 0).
   Notes and outputs carry no ANSI colour codes and no path of the building machine (the project root, the
   Python prefix and the home folder are replaced by relative or neutral names).
3. Renders every processed notebook to HTML with nbconvert's `HTMLExporter` (lab template, figures inlined as
   PNG data), quarto cell options honoured (`echo: false`, `output: false`, `include: false`), quarto-only link
   attributes removed, links to the published site made relative, and a sidebar linking every page. `index.ipynb`
   becomes `index.html` (a generated page list when there is none). Output: `<root>/_docs/` (or `--out`).

`--readme-only` renders the README notebook (`readme_nb`, `nbs/index.ipynb`) to `<root>/README.md` with
nbconvert's `MarkdownExporter` after the same processing and execution, because `nbdev-readme` needs quarto.
"""
from __future__ import annotations

import argparse
import copy
import fnmatch
import html
import json
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
_DIRECTIVE = re.compile(r'^\s*#\s*\|\s*(.*)$')


def log(*a): print('[build_docs]', *a, file=sys.stderr, flush=True)


_ANSI = re.compile(r'\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]')


def strip_ansi(text: str) -> str:
    "Text without ANSI escape sequences (terminal colours in tracebacks and progress bars)"
    return _ANSI.sub('', text)


_EXTERNAL_SCRIPT = re.compile(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>')


def offline_page(page: str) -> str:
    "A page without scripts loaded from other hosts (nbconvert's MathJax from a CDN): the site works offline"
    return _EXTERNAL_SCRIPT.sub('', page)


def scrub_paths(text: str, root: Path) -> str:
    "Text without the building machine's paths: project root -> relative, Python prefix -> <python>, home -> ~"
    for prefix, name in ((str(Path(root).resolve()), '.'), (str(Path(sys.prefix).resolve()), '<python>'),
                         (sys.prefix, '<python>'), (str(Path.home()), '~')):
        if prefix and prefix not in ('/', '.'):
            text = text.replace(prefix + '/', '' if name == '.' else name + '/').replace(prefix, name)
    return text


# ----------------------------------------------------------------------------------------------------------- config
def nbdev_cfg(root: Path):
    "nbdev's config for the project at `root` (read with `root` as working directory)"
    from nbdev.config import get_config
    cwd = os.getcwd(); os.chdir(root)
    try: return get_config()
    finally: os.chdir(cwd)


# ------------------------------------------------------------------------------------------------------- processing
def _proc_one(args) -> str | None:
    "Process one notebook like nbdev's docs processing (run in a worker process); the error message or None"
    root, src, dst = args
    os.chdir(root)
    try:
        import nbdev.serve_drv
        from nbdev.processors import FilterDefaults
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        nbdev.serve_drv.main((Path(src), Path(dst), FilterDefaults))
        return None
    except BaseException as e:  # noqa: BLE001 (a notebook's own error, reported per page)
        Path(dst).unlink(missing_ok=True)
        lines = [l for l in strip_ansi(str(e)).strip().splitlines() if l.strip()]
        return f"{type(e).__name__}: {lines[-1] if lines else ''}"


def source_notebooks(nbs: Path, file_glob: str = '') -> list[Path]:
    "Notebooks under `nbs/` as nbdev sees them (folders and files starting with '_' or '.' skipped)"
    out = []
    for p in sorted(nbs.rglob('*.ipynb')):
        rel = p.relative_to(nbs)
        if any(part.startswith(('_', '.')) for part in rel.parts): continue
        if file_glob and not fnmatch.fnmatch(p.name, file_glob): continue
        out.append(p)
    return out


def process_notebooks(root: Path, file_glob: str = '', n_workers: int = 2) -> tuple[Path, dict]:
    """Process the notebooks like `nbdev-proc-nbs` into `<root>/_proc` (front matter, show_doc cells executed), one
    worker process per notebook so that one notebook failing to process does not stop the others.
    Returns the folder and {notebook: error} for the notebooks nbdev could not process."""
    import subprocess
    cfg = nbdev_cfg(root)
    nbs, cache = Path(cfg.nbs_path), root/'_proc'
    shutil.rmtree(cache, ignore_errors=True); cache.mkdir(parents=True)
    for f in nbs.iterdir():  # quarto/site files, images and styles, as nbdev copies them
        if f.is_file() and f.suffix != '.ipynb': shutil.copy2(f, cache/f.name)
    for d in nbs.iterdir():
        if d.is_dir() and not d.name.startswith(('_', '.')): shutil.copytree(d, cache/d.name, ignore=shutil.ignore_patterns('*.ipynb', '.*'))
    srcs = source_notebooks(nbs, file_glob)
    # a few long-lived workers, each processing its share of notebooks in turn (module imports such as torch are
    # paid once per worker, as with nbdev's process pool); each notebook's error is reported on its own line
    batches = [srcs[i::max(1, n_workers)] for i in range(max(1, n_workers))]
    def run(batch: list[Path]) -> dict:
        if not batch: return {}
        jobs = json.dumps([[str(s), str(cache/s.relative_to(nbs))] for s in batch])
        r = subprocess.run([sys.executable, __file__, '--proc-batch', str(root), jobs], capture_output=True, text=True, check=False)
        res = {}
        for line in r.stdout.splitlines():
            if line.startswith('PROC-RESULT '): src, err = json.loads(line[len('PROC-RESULT '):]); res[src] = err
        for s in batch:  # a worker that died leaves its remaining notebooks without result
            res.setdefault(str(s), f"worker exited with {r.returncode}: {r.stderr.strip()[-300:]}")
        return res
    errors = {}
    with ThreadPoolExecutor(len(batches)) as ex:
        for res in ex.map(run, batches): errors.update({str(Path(k).relative_to(nbs)): v for k, v in res.items()})
    failed = {k: v for k, v in errors.items() if v}
    for k, v in failed.items(): log(f"nbdev could not process {k} ({v}); rendering its source without API docs")
    return cache, failed


def unprocessed(src: Path, error: str) -> nbformat.NotebookNode:
    "A notebook nbdev could not process, prepared by hand: hidden cells dropped, title cell as front matter"
    nb = nbformat.read(src, as_version=4)
    cells, fm = [], {}
    for c in nb.cells:
        ds = directives(c.source) if c.cell_type == 'code' else []
        if any(d.split(':')[0].strip() in ('hide', 'default_exp') for d in ds): continue
        if not fm and c.cell_type == 'markdown' and c.source.lstrip().startswith('# '):
            lines = c.source.strip().splitlines()
            fm['title'] = lines[0].lstrip('# ').strip()
            desc = [l.lstrip('> ').strip() for l in lines[1:] if l.startswith('>')]
            if desc: fm['description'] = ' '.join(desc)
            rest = '\n'.join(l for l in lines[1:] if not l.startswith('>')).strip()
            if rest: cells.append(nbformat.v4.new_markdown_cell(rest))
            continue
        cells.append(c)
    fm['output-file'] = re.sub(r'^\d+_', '', src.stem) + '.html'  # nbdev's page name: no number prefix
    import yaml
    head = nbformat.v4.new_raw_cell('---\n' + yaml.safe_dump(fm) + '---\n')
    nb.cells = [head] + cells
    nb.metadata['fh_processing_error'] = error
    return nb


# -------------------------------------------------------------------------------------------------------- execution
def directives(source: str) -> list[str]:
    "The `#| ...` directive lines at the top of a cell, without the `#|` prefix"
    out = []
    for line in source.splitlines():
        m = _DIRECTIVE.match(line)
        if m: out.append(m.group(1).strip())
        elif line.strip(): break
    return out


def strip_directives(source: str) -> str:
    lines = source.splitlines()
    while lines and (_DIRECTIVE.match(lines[0]) or not lines[0].strip()): lines.pop(0)
    return '\n'.join(lines).strip()


def runnable(nb, skip_flags) -> nbformat.NotebookNode:
    "A copy of `nb` without the cells nbdev-test skips (flagged cells, `eval: false`)"
    nb = copy.deepcopy(nb)
    keep = []
    for c in nb.cells:
        if c.cell_type == 'code':
            ds = directives(c.source)
            words = {w for d in ds for w in re.split(r'[\s:]+', d) if w}
            if words & set(skip_flags) or any(re.match(r'eval\s*:\s*false', d) for d in ds): continue
        keep.append(c)
    nb.cells = keep
    return nb


def execute(nb_path: Path, skip_flags, timeout: int) -> tuple[nbformat.NotebookNode | None, str | None, float]:
    "Execute the runnable cells of a source notebook in its folder; (executed nb, error message, seconds)"
    from nbclient import NotebookClient
    t0 = time.perf_counter()
    nb = runnable(nbformat.read(nb_path, as_version=4), skip_flags)
    env_backend = os.environ.pop('MPLBACKEND', None)  # let the kernel use its inline backend so figures are kept
    try:
        NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(nb_path.parent)}}).execute()
        return nb, None, time.perf_counter() - t0
    except Exception as e:
        lines = [l for l in strip_ansi(str(e)).strip().splitlines() if l.strip()]
        return None, f"{type(e).__name__}: {lines[-1] if lines else ''}", time.perf_counter() - t0
    finally:
        if env_backend is not None: os.environ['MPLBACKEND'] = env_backend


def transfer_outputs(executed, processed) -> int:
    "Outputs of executed source cells onto the processed cells with the same code (replacing stored ones); returns the cells filled"
    by_src: dict[str, list] = {}
    for c in executed.cells:
        if c.cell_type == 'code' and c.get('outputs'): by_src.setdefault(strip_directives(c.source), []).append(c)
    n = 0
    for c in processed.cells:
        if c.cell_type != 'code': continue
        hits = by_src.get(strip_directives(c.source))
        if hits:
            src = hits.pop(0); c.outputs = copy.deepcopy(src.outputs); c.execution_count = src.get('execution_count'); n += 1
    return n


# ---------------------------------------------------------------------------------------------------------- widgets
HTML_MANAGER, REQUIREJS = '@jupyter-widgets/html-manager@1.0.15', 'requirejs@2.3.8'
WIDGETS_DIR = '_static/widgets'


def _npm_file(spec: str, member: str, cache: Path) -> Path | None:
    "A file of an npm package (`npm pack` into `cache`, once); None when npm is missing or fails"
    import subprocess
    import tarfile
    name = spec.rsplit('@', 1)[0].lstrip('@').replace('/', '-') + '-' + spec.rsplit('@', 1)[1] + '.tgz'
    tgz = cache/name
    if not tgz.exists():
        if not shutil.which('npm'): return None
        cache.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(['npm', 'pack', spec, '--silent', '--pack-destination', str(cache)], capture_output=True, text=True)
        if r.returncode or not tgz.exists(): log(f"npm pack {spec} failed: {r.stderr.strip()[-300:]}"); return None
    dest = cache/name.removesuffix('.tgz')
    if not (dest/member).exists():
        with tarfile.open(tgz) as t: t.extractall(dest, filter='data')
    return dest/member


def vendor_widgets(out: Path, cache: Path) -> dict | None:
    """Copy a widget manager into the site, so pages with widget state render their widgets with no CDN: the
    @jupyter-widgets/html-manager AMD bundle and require.js from the npm registry (cached), and the AMD bundles of the
    widget libraries installed in this Python (`share/jupyter/nbextensions/<name>/index.js`: jupyter-leaflet, ...).
    Returns the exporter settings and the require.js paths, or None when npm is not available."""
    embed, req = _npm_file(HTML_MANAGER, 'package/dist/embed-amd.js', cache), _npm_file(REQUIREJS, 'package/require.js', cache)
    if embed is None or req is None: return None
    dst = out/WIDGETS_DIR
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(embed.parent, dst/'html-manager', ignore=shutil.ignore_patterns('*.map'))
    shutil.copy2(req, dst/'require.js')
    paths = {}
    for d in sorted((Path(sys.prefix)/'share'/'jupyter'/'nbextensions').glob('*/index.js')):
        shutil.copytree(d.parent, dst/d.parent.name, ignore=shutil.ignore_patterns('*.map'), dirs_exist_ok=True)
        paths[d.parent.name] = f'{WIDGETS_DIR}/{d.parent.name}/index'
    return dict(require_js_url=f'{WIDGETS_DIR}/require.js', widget_renderer_url=f'{WIDGETS_DIR}/html-manager/embed-amd.js',
                paths=paths)


def require_config(paths: dict) -> str:
    "A script telling require.js where the vendored widget libraries are (the manager asks require.js first)"
    return f"<script>require.config({{paths: {json.dumps(paths)}}});</script>"


# ----------------------------------------------------------------------------------------------------------- render
def front_matter(nb) -> dict:
    "The YAML front matter nbdev puts in the first raw cell (title, description, output-file)"
    import yaml
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'):
            body = c.source.strip().strip('-').strip()
            try: return yaml.safe_load(body) or {}
            except yaml.YAMLError: return {}
    return {}


_ATTR = re.compile(r'(\]\([^)]*\))\{[^}]*\}')  # quarto link attributes: [source](url){target="_blank" ...}


def prepare(nb, site_url: str | None, note: str | None = None) -> nbformat.NotebookNode:
    "Quarto-isms to plain notebook: front matter as a title cell, cell options as tags, relative links"
    nb = copy.deepcopy(nb)
    fm = front_matter(nb)
    cells = []
    head = f"# {fm.get('title', '')}\n\n" + (f"> {fm['description']}\n" if fm.get('description') else '')
    if note: head += f"\n<div class='fh-note'>{html.escape(strip_ansi(note))}</div>\n"
    if fm.get('title'): cells.append(nbformat.v4.new_markdown_cell(head))

    def fix(text: str) -> str:
        text = _ATTR.sub(r'\1', text)
        if site_url: text = text.replace(site_url.rstrip('/') + '/', '')
        return text.replace('<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->', '')

    std = {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}
    for c in nb.cells:
        for k in [k for k in c if k not in std]: del c[k]  # nbdev's processing marks (e.g. `has_sd`)
        c.metadata = nbformat.NotebookNode({k: v for k, v in c.metadata.items() if k == 'tags'})
        if c.cell_type == 'raw': continue
        if c.cell_type == 'markdown':
            c.source = fix(c.source)
            if c.source.strip(): cells.append(c)
            continue
        opts = {}
        for d in directives(c.source):
            if ':' in d: k, v = d.split(':', 1); opts[k.strip()] = v.strip().lower()
        if opts.get('include') == 'false': continue
        tags = set(c.metadata.get('tags', []))
        if opts.get('echo') == 'false': tags.add('remove_input')
        if opts.get('output') == 'false': tags.add('remove_output')
        c.metadata['tags'] = sorted(tags)
        c.source = strip_directives(c.source)
        for o in c.get('outputs', []):
            if 'text' in o: o['text'] = strip_ansi(''.join(o['text']) if isinstance(o['text'], list) else o['text'])
            if 'traceback' in o: o['traceback'] = [strip_ansi(t) for t in o['traceback']]
            if 'text/plain' in o.get('data', {}):
                v = o['data']['text/plain']; o['data']['text/plain'] = strip_ansi(''.join(v) if isinstance(v, list) else v)
            for k in ('text/markdown', 'text/html'):
                if k in o.get('data', {}):
                    v = o['data'][k]; o['data'][k] = fix(''.join(v) if isinstance(v, list) else v)
        if not c.source and not c.get('outputs'): continue
        cells.append(c)
    nb.cells = cells
    return nb


CSS = """
body { margin: 0; }
.fh-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 250px; overflow-y: auto; padding: 16px 12px;
  background: #f6f8fa; border-right: 1px solid #ddd; font: 14px/1.5 system-ui, sans-serif; box-sizing: border-box; }
.fh-sidebar h2 { font-size: 18px; margin: 0 0 12px; } .fh-sidebar h2 a { color: #222; text-decoration: none; }
.fh-sidebar ul { list-style: none; padding: 0; margin: 0; } .fh-sidebar li { margin: 2px 0; }
.fh-sidebar a { color: #0b5cad; text-decoration: none; } .fh-sidebar a.fh-current { font-weight: bold; color: #222; }
.fh-sidebar .fh-group { margin-top: 10px; font-size: 12px; text-transform: uppercase; color: #666; }
.fh-main { margin-left: 260px; max-width: 1100px; padding: 0 16px; }
.fh-note { background: #fff4e5; border: 1px solid #f0b429; padding: 6px 10px; font-size: 13px; border-radius: 4px; }
.fh-pages dt { font-weight: bold; margin-top: 8px; } .fh-pages dd { margin-left: 16px; color: #444; }
"""


def sidebar(pages: list[dict], current: str, title: str) -> str:
    items, group = [], None
    for p in pages:
        g = p['group']
        if g != group:
            items.append(f"<li class='fh-group'>{html.escape(g)}</li>"); group = g
        cls = " class='fh-current'" if p['file'] == current else ''
        items.append(f"<li><a href='{p['file']}'{cls}>{html.escape(p['title'])}</a></li>")
    return (f"<nav class='fh-sidebar' id='fh-sidebar'><h2><a href='index.html'>{html.escape(title)}</a></h2>"
            f"<ul>{''.join(items)}</ul></nav>")


def wrap_page(body_html: str, nav: str, title: str) -> str:
    "Insert the sidebar and our CSS into an nbconvert lab-template page"
    out = body_html.replace('</head>', f"<style>{CSS}</style>\n</head>", 1)
    out = re.sub(r'<title>.*?</title>', f'<title>{html.escape(title)}</title>', out, count=1, flags=re.DOTALL)
    out = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + nav + "<div class='fh-main'>", out, count=1)
    return out.replace('</body>', '</div></body>', 1)


def group_of(name: str) -> str:
    m = re.match(r'^(\d+)_([a-z]+)', name)
    if not m: return 'Notebooks' if name != 'index.ipynb' else 'Home'
    return {'0': 'Core', '1': 'Data', '2': 'Models', '3': 'Training', '4': 'Zonal inference', '5': 'Visualisation',
            '6': 'Hub'}.get(m.group(1)[0], 'Modules')


def sidebar_order(nbs: Path) -> dict[str, tuple[int, str]]:
    "{notebook path relative to nbs/: (position, section)} from the quarto sidebar `nbs/sidebar.yml` (empty without one)"
    import yaml
    f = nbs/'sidebar.yml'
    if not f.is_file(): return {}
    out: dict[str, tuple[int, str]] = {}
    def walk(items, section):
        for it in items or []:
            if isinstance(it, str): out.setdefault(it, (len(out), section))
            elif isinstance(it, dict) and 'contents' in it: walk(it['contents'], it.get('section', section))
            elif isinstance(it, dict) and 'href' in it: out.setdefault(it['href'], (len(out), it.get('text', section)))
    walk(((yaml.safe_load(f.read_text()) or {}).get('website') or {}).get('sidebar', {}).get('contents'), 'Home')
    return out


def shows_widgets(nb_path: Path) -> bool:
    "Whether a notebook's stored outputs display ipywidgets (their state is not stored, so the page must run it)"
    nb = nbformat.read(nb_path, as_version=4)
    return any('application/vnd.jupyter.widget-view+json' in o.get('data', {})
               for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []))


def render_site(proc: Path, proc_failed: dict, out: Path, nbs: Path, cfg, execute_globs, timeout: int, workers: int,
                root: Path) -> dict:
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    site_url = f"{cfg.doc_host}{cfg.doc_baseurl}" if cfg.get('doc_host') else None
    skip_flags = list(cfg.get('tst_flags', '') or []) if not isinstance(cfg.get('tst_flags'), str) else cfg.tst_flags.split()
    srcs = source_notebooks(nbs)
    rel = {p: p.relative_to(nbs) for p in srcs}
    if execute_globs is None: todo = [p for p in srcs if shows_widgets(p)]  # default: stored outputs, widget pages run
    else: todo = [p for p in srcs if any(fnmatch.fnmatch(rel[p].name, g) for g in execute_globs)]
    log(f"{len(srcs)} notebooks; executing {len(todo)} (per-cell timeout {timeout} s, {workers} at a time)")
    with ThreadPoolExecutor(max(1, workers)) as ex:
        results = dict(zip(todo, ex.map(lambda p: execute(p, skip_flags, timeout), todo)))
    pages, report = [], {}
    order = sidebar_order(nbs)  # sections and order of the quarto sidebar, when the project has one
    for p in srcs:
        perr = proc_failed.get(str(rel[p]))
        if perr is None and not (proc/rel[p]).exists(): perr = 'not processed (added during the build?)'
        nb = unprocessed(p, perr) if perr else nbformat.read(proc/rel[p], as_version=4)
        fm = front_matter(nb)
        notes = [f"API docs not shown: nbdev could not process this notebook ({perr})."] if perr else []
        if p in results:
            executed, err, secs = results[p]
            if err: notes.append(f"Outputs not shown: executing this notebook failed ({err})."); log(f"FAILED {rel[p]} after {secs:.0f} s: {err}")
            else:
                n = transfer_outputs(executed, nb); log(f"executed {rel[p]} in {secs:.1f} s ({n} cells with outputs)")
                if executed.metadata.get('widgets'): nb.metadata['widgets'] = executed.metadata['widgets']  # widget state
            report[str(rel[p])] = dict(executed=err is None, error=err, seconds=round(secs, 1), processing_error=perr)
        else: report[str(rel[p])] = dict(executed=False, error=None, seconds=0, processing_error=perr)
        fname = 'index.html' if rel[p].name == 'index.ipynb' else fm.get('output-file') or rel[p].with_suffix('.html').name
        pages.append(dict(src=p, nb=prepare(nb, site_url, ' '.join(notes) or None), file=str(Path(fname)),
                          title=fm.get('title') or rel[p].stem, description=fm.get('description', ''),
                          group=order[rel[p].as_posix()][1] if rel[p].as_posix() in order else group_of(rel[p].name)))
    pages.sort(key=lambda d: (d['file'] != 'index.html', order.get(rel[d['src']].as_posix(), (len(order), ''))[0], str(rel[d['src']])))
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    c.TagRemovePreprocessor.remove_all_outputs_tags = {'remove_output'}
    out.mkdir(parents=True, exist_ok=True)
    widgets = vendor_widgets(out, Path(os.environ.get('XDG_CACHE_HOME', Path.home()/'.cache'))/'flairhub_nb'/'npm') if any('widgets' in pg['nb'].metadata for pg in pages if pg['nb']) else None
    if widgets:
        c.HTMLExporter.require_js_url, c.HTMLExporter.widget_renderer_url = widgets['require_js_url'], widgets['widget_renderer_url']
    exporter = HTMLExporter(config=c, template_name='lab')
    exporter.register_preprocessor('nbconvert.preprocessors.TagRemovePreprocessor', enabled=True)
    title = cfg.get('title', 'Documentation')
    if not any(p['file'] == 'index.html' for p in pages): pages.insert(0, dict(src=None, nb=None, file='index.html', title=title,
                                                                                 description='', group='Home'))
    for pg in pages:
        if pg['nb'] is None: continue
        if not widgets: pg['nb'].metadata.pop('widgets', None)  # no manager to render them: the text fallback shows
        body, _ = exporter.from_notebook_node(pg['nb'])
        body = body.replace(f'<script src="{exporter.require_js_url}"></script>', '' if not widgets else
                            f'<script src="{exporter.require_js_url}"></script>' + require_config(widgets['paths']), 1)
        (out/pg['file']).parent.mkdir(parents=True, exist_ok=True)
        page = wrap_page(body, sidebar(pages, pg['file'], title), f"{pg['title']} – {title}")
        (out/pg['file']).write_text(offline_page(scrub_paths(page, root)), encoding='utf-8')
    if pages[0]['nb'] is None:  # no index notebook: a list of pages
        dl = ''.join(f"<dt><a href='{p['file']}'>{html.escape(p['title'])}</a></dt><dd>{html.escape(p['description'])}</dd>"
                     for p in pages[1:])
        page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head>"
                f"<body>{sidebar(pages, 'index.html', title)}<div class='fh-main'><h1>{html.escape(title)}</h1>"
                f"<dl class='fh-pages'>{dl}</dl></div></body></html>")
        (out/'index.html').write_text(page, encoding='utf-8')
    for f in proc.rglob('*'):  # images and other assets referenced by the notebooks
        if f.is_file() and f.suffix.lower() in ('.png', '.jpg', '.jpeg', '.gif', '.svg', '.css') and not f.name.startswith('.'):
            dest = out/f.relative_to(proc); dest.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, dest)
    report = json.loads(scrub_paths(json.dumps(report), root))
    (out/'build_report.json').write_text(json.dumps(report, indent=1))
    return report


# ----------------------------------------------------------------------------------------------------------- README
def render_readme(root: Path, proc: Path, cfg, timeout: int) -> Path:
    from nbconvert import MarkdownExporter
    from traitlets.config import Config
    name = cfg.get('readme_nb', 'index.ipynb')
    src, pnb = Path(cfg.nbs_path)/name, proc/name
    if not src.exists() or not pnb.exists(): raise SystemExit(f"build_docs: README notebook {src} not found")
    nb = nbformat.read(pnb, as_version=4)
    executed, err, _ = execute(src, list(cfg.get('tst_flags') or []), timeout)
    if err: log(f"README notebook not executed ({err}); rendering without outputs")
    else: transfer_outputs(executed, nb)
    site_url = f"{cfg.doc_host}{cfg.doc_baseurl}" if cfg.get('doc_host') else None
    nb = prepare(nb, None)
    if site_url:  # README links go to the published site, not to relative pages
        for c in nb.cells:
            if c.cell_type == 'markdown': c.source = _ATTR.sub(r'\1', c.source)
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    c.TagRemovePreprocessor.remove_all_outputs_tags = {'remove_output'}
    exp = MarkdownExporter(config=c)
    exp.register_preprocessor('nbconvert.preprocessors.TagRemovePreprocessor', enabled=True)
    body, res = exp.from_notebook_node(nb, resources={'output_files_dir': 'README_files'})
    for fn, data in (res.get('outputs') or {}).items():
        (root/fn).parent.mkdir(parents=True, exist_ok=True); (root/fn).write_bytes(data)
    # relative links in the notebook are relative to nbs/; the README sits at the project root
    nbs_rel = Path(cfg.nbs_path).resolve().relative_to(Path(root).resolve()).as_posix()
    body = re.sub(r'(!?\[[^\]]*\]\()(?![a-z][a-z0-9+.-]*:|/|#|README_files/)([^)\s]+)', lambda m: f"{m.group(1)}{nbs_rel}/{m.group(2)}", body)
    readme = root/'README.md'
    readme.write_text('<!-- generated from nbs/%s by tools/build_docs.py --readme-only; do not edit -->\n\n%s' % (name, body.lstrip()),
                      encoding='utf-8')
    return readme


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--root', type=Path, default=ROOT, help='project root (holding pyproject.toml and nbs/)')
    p.add_argument('--out', type=Path, default=None, help='site folder (default: <root>/_docs)')
    p.add_argument('--execute', action='append', default=None, metavar='GLOB',
                   help="execute the notebooks whose name matches (repeatable; '*': all); default: only the notebooks "
                        "that display widgets, the others show their stored outputs")
    p.add_argument('--no-execute', action='store_true', help='execute no notebook (prose and API docs only)')
    p.add_argument('--timeout', type=int, default=300, help='per-cell execution timeout in seconds')
    p.add_argument('--workers', type=int, default=2, help='notebooks executed at a time')
    p.add_argument('--keep-going', action='store_true', help='exit 0 even when pages failed (they are still written)')
    p.add_argument('--readme-only', action='store_true', help='only render the README notebook to README.md')
    p.add_argument('--proc-batch', nargs=2, metavar=('ROOT', 'JOBS'), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.proc_batch:  # worker: process a list of [src, dst] notebooks
        wroot, jobs = a.proc_batch
        for src, dst in json.loads(jobs):
            print('PROC-RESULT ' + json.dumps([src, _proc_one((wroot, src, dst))]), flush=True)
        return 0
    root = a.root.resolve()
    cfg = nbdev_cfg(root)
    t0 = time.perf_counter()
    if a.readme_only:
        proc, failed = process_notebooks(root, file_glob=cfg.get('readme_nb', 'index.ipynb'), n_workers=1)
        if failed: raise SystemExit(f"build_docs: nbdev could not process the README notebook: {failed}")
        log(f"wrote {render_readme(root, proc, cfg, a.timeout)}"); return 0
    proc, proc_failed = process_notebooks(root, n_workers=a.workers)
    out = (a.out or root/'_docs').resolve()
    globs = [] if a.no_execute else a.execute  # None: the default choice (widget pages)
    rep = render_site(proc, proc_failed, out, Path(cfg.nbs_path), cfg, globs, a.timeout, a.workers, root)
    ok = sum(v['executed'] for v in rep.values())
    log(f"site in {out} ({len(rep)} pages, {ok} executed) in {time.perf_counter() - t0:.0f} s; open {out/'index.html'}")
    failed = {k: v['error'] or v['processing_error'] for k, v in rep.items() if v['error'] or v['processing_error']}
    if failed:
        log(f"ERROR: {len(failed)} of {len(rep)} pages failed: " + '; '.join(f"{k}: {v}" for k, v in failed.items()))
        return 0 if a.keep_going else 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
