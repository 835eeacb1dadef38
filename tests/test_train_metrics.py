"""Metrics parity with the reference: from the stored ground truth / predictions to `metrics.json`, written by the
same function the prediction writer uses, equal to the reference's file for both cases."""
import json
import numpy as np, pytest, torch, yaml
from flairhub_nb.config import model_spec
from flairhub_nb.testing import reference_dir, load_safetensors
from flairhub_nb.train.metrics import ConfusionMatrix, save_metrics

@pytest.mark.parametrize('case,task,k', [('COSIA', 'AERIAL_LABEL-COSIA', 19), ('LPIS', 'ALL_LABEL-LPIS', 23)])
def test_metrics_json_equals_reference(tmp_path, case, task, k):
    d = reference_dir()/'metrics'/case
    inp, cfg = load_safetensors(d/'inputs.safetensors'), yaml.safe_load((d/'config.yaml').read_text())
    acc = ConfusionMatrix(k)
    for g, p in zip(inp['gt'], inp['pred']): acc.update(p, g)      # one "patch" at a time, like the writer
    assert torch.equal(acc.reduce(), load_safetensors(d/'confmat.safetensors')['confmat'])
    save_metrics(acc.confmat, model_spec(cfg).tasks[task], tmp_path, mode='predict')
    got, ref = json.loads((tmp_path/'metrics.json').read_text()), json.loads((d/'metrics.json').read_text())
    assert got == ref
    assert list(got) == list(ref) and list(got['per_class_modality_weights']) == list(ref['per_class_modality_weights'])
    assert np.array_equal(np.load(tmp_path/'confmat_predict.npy'), acc.confmat.numpy())

def test_out_of_range_values_are_errors():
    acc = ConfusionMatrix(19)
    acc.update(torch.tensor([0, 1]), torch.tensor([0, 19]))   # counted on the device without a host sync ...
    with pytest.raises(ValueError, match='outside 0..18'): acc.reduce()   # ... and reported once per epoch
