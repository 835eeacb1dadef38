"""Multimodal land-cover and crop mapping on FLAIR-HUB, written in notebooks: config, data, fusion model, training, zonal inference, maps.

Modules:

- `flairhub_nb.cli`: `flairhub`, `flairhub_zonal`, `flairhub_toy`, `flairhub_download`: parse arguments, load and check the config, hand over to the library, and map every failure to one clear line and a non-zero exit status.
- `flairhub_nb.config`: Load the reference's YAML configs (one file or a folder of files), merge documented defaults, resolve paths, apply overrides and validate everything, reporting every problem with its key path.
- `flairhub_nb.models.hub`: `FlairHubModel.from_pretrained("IGNF/FLAIR-HUB_LC-A_RGB_swinbase-upernet")`: the weights and the training config shipped with a released model, through the Hugging Face cache (offline too), built strictly.
- `flairhub_nb.toy.hub`: Released-model repositories rebuilt offline from the checkpoint manifests: the key names and shapes of the real `.safetensors` files (random values) and the training configs split as the repositories ship them.
- `flairhub_nb.train.callbacks`: Checkpoints that are whole or absent, a `last.ckpt` that is always the last completed epoch, random states saved for exact resumes, a loud stop on a non-finite loss, a resumable checkpoint on Ctrl-C, and one line per epoch.
- `flairhub_nb.train.writer`: Per-patch predictions as georeferenced uint8 GeoTIFFs with a colour table and a QGIS style, test metrics from the accumulated confusion matrices, and re-scoring of written predictions (`metrics_only`)."""

__version__ = "0.1.0"
