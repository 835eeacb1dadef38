"Models: mono-temporal encoders, U-TAE, fusion, checkpoints; importing the package adds `FlairHubModel.from_pretrained` (models.hub)."
from . import hub as _hub  # noqa: F401 -- patches FlairHubModel.from_pretrained
