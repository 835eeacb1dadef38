"""`flairhub_nb.demo.run_demo` end to end on a tiny setting (4/2/2 toy patches, 1 epoch, a 409.6 m zone of 256 px,
the demo's zonal tile size: a zone smaller than a tile is mostly padding and came out as one class): the summary's
lines, the zonal picture, and the zonal scores printed against an independent computation from the written class map
(COG) and the toy zone's label raster."""
import contextlib, io, re
import numpy as np, pytest, rasterio
from PIL import Image
from flairhub_nb.config import model_spec, resolve_config
from flairhub_nb.demo import run_demo, zonal_picture

TASK = 'AERIAL_LABEL-COSIA'
NUM = r'(\d+\.\d+)'


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): res = run_demo(out, epochs=1, n_train=4, n_val=2, n_test=2, zone_size_m=409.6)
    return out, res, buf.getvalue().splitlines()


def _line(lines, start):
    hits = [l for l in lines if l.startswith(start)]
    assert len(hits) == 1, f"expected one summary line starting {start!r}, got {hits}"
    return hits[0]


def test_wall_time_per_step(demo):
    _, res, lines = demo
    m = re.fullmatch(rf"wall time per step: training {NUM} s, toy zone {NUM} s, zonal inference {NUM} s, "
                     rf"scoring and picture {NUM} s \(total {NUM} s\)", _line(lines, 'wall time per step:'))
    assert m, lines
    steps = [float(v) for v in m.groups()]
    assert all(v >= 0 for v in steps) and steps[0] > 0
    assert abs(sum(steps[:4]) - steps[4]) <= 0.25  # each figure rounded to 0.1 s
    assert list(res['seconds']) == ['training', 'toy zone', 'zonal inference', 'scoring and picture']


def test_test_split_line_is_the_runs_metrics(demo):
    _, res, lines = demo
    m = res['metrics'][TASK]
    avg = dict(zip(m['Avg_metrics_name'], m['Avg_metrics']))
    line = _line(lines, f"{TASK} test split (2 toy patches of 64 px")
    assert line.endswith(f"mIoU {avg['mIoU']:.2f} %, overall accuracy {avg['Overall Accuracy']:.2f} %"), line
    over = lines[lines.index(line) + 1]
    cm = res['test'][TASK]['confmat']
    assert cm.sum() == 2 * 64 * 64  # every test pixel is in the matrix
    assert over.startswith(f"  over {cm[:15, :15].sum():,} of {2 * 64 * 64:,} px"), over


def _independent_scores(pred_path, label_path, scored):
    with rasterio.open(pred_path) as p, rasterio.open(label_path) as t:
        assert (p.crs, p.transform, p.shape) == (t.crs, t.transform, t.shape)
        q, y = p.read(1).astype(int), t.read(1).astype(int)
    on = np.isin(y, scored) & np.isin(q, scored)
    oa = 100 * (y == q)[on].mean()
    ious = []
    for c in scored:
        union = ((y == c) | (q == c)) & on
        ious.append(((y == c) & (q == c) & on).sum() / union.sum() if union.any() else 0.0)
    return oa, 100 * np.mean(ious), int(on.sum()), y.size


def test_zonal_scores_match_an_independent_computation(demo):
    out, res, lines = demo
    pred, label = res['zonal_outputs'][TASK], out/'zone'/f'TOY_ZONE_{TASK}.tif'
    assert pred.suffix == '.tif' and label.is_file()
    scored = model_spec(resolve_config(res['run_dir']/'used_csv_and_config'/'config.yaml')).tasks[TASK].scored
    assert scored == list(range(15))  # COSIA: the 15 classes with a non-zero weight (reference metrics)
    oa, miou, n_on, n = _independent_scores(pred, label, scored)
    line = _line(lines, f"{TASK} zonal map vs the toy zone's label (409.6 m side)")
    assert line.endswith(f"mIoU {miou:.2f} %, overall accuracy {oa:.2f} %"), line
    assert lines[lines.index(line) + 1].startswith(f"  over {n_on:,} of {n:,} px"), lines[lines.index(line) + 1]


def test_zonal_picture_is_a_png_in_the_output_folder(demo):
    out, res, lines = demo
    png = res['pictures'][TASK]
    assert png.parent == out and png.is_file()
    assert _line(lines, 'zonal prediction beside the label:') == f"zonal prediction beside the label: {png}"
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == 'PNG' and im.width > 2 * im.height  # image, label, prediction, errors side by side
    assert not list(out.glob('*.part'))


def test_zonal_picture_is_deterministic(demo, tmp_path):
    out, res, _ = demo
    zone = out/'zone'
    args = (zone/'TOY_ZONE_AERIAL_RGBI.tif', zone/f'TOY_ZONE_{TASK}.tif', res['zonal_outputs'][TASK], TASK)
    again = zonal_picture(*args, tmp_path/'again.png')
    assert again.read_bytes() == res['pictures'][TASK].read_bytes()

