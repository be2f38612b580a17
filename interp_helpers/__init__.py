"""Reusable kernels, data, plots, widgets and the runner behind the workbook notebooks.

Subpackages, each with a docstring saying what it holds and what it may import:

    core/                  validation, seeding, usage errors, shared JS bundles
    workbook/              the runner: catalog, build, runner, cluster, results, export, cli
    checkers/              exercise checkers, one module per notebook
    modelzoo/              the labelled corpus, tokenizer, zoo models (training, loading)
    superposition/         toy models of superposition
    transformer_circuits/  induction, composition, patching, IOI
    dictionaries/          SAEs, activations, recovery, splitting, dashboards
    probes/                linear and mass-mean probes, control tasks, CCS, steering
    figures/               generic plotly helpers (each topic's figures sit beside it)

The names every notebook uses are re-exported here, and the modules keep their old
short names: `from interp_helpers import sae, zoo, plots` works as it always did.
"""

import importlib
import warnings

# TransformerLens 3.x warns that HookedTransformer goes away in 4.0. We pin <4 on
# purpose (attention-only toy models need HookedTransformer), so the warning is
# noise for students. This is the one place it is silenced.
warnings.filterwarnings(
    "ignore",
    message=r".*is deprecated and will be removed in 4\.0.*",
    category=DeprecationWarning,
)

from interp_helpers.core.validation import check_choice, check_range, seed_everything  # noqa: E402
from interp_helpers.workbook.params import check_parameters  # noqa: E402
from interp_helpers.workbook.results import record  # noqa: E402

__all__ = ["record", "check_parameters", "check_range", "check_choice", "seed_everything"]
__version__ = "0.1.0"

# Old flat module names -> where they live now, so `from interp_helpers import zoo` keeps working.
_MODULES = {
    "catalog": "workbook",
    "cli": "workbook",
    "runner": "workbook",
    "export": "workbook",
    "results": "workbook",
    "build": "workbook",
    "cluster": "workbook",
    "params": "workbook",
    "corpus": "modelzoo",
    "tokenizer": "modelzoo",
    "models": "modelzoo",
    "zoo": "modelzoo",
    "corpus_view": "modelzoo",
    "toy_models": "superposition",
    "induction": "transformer_circuits",
    "circuits": "transformer_circuits",
    "patching": "transformer_circuits",
    "ioi": "transformer_circuits",
    "ioi_circuit": "transformer_circuits",
    "attention_view": "transformer_circuits",
    "sae": "dictionaries",
    "activations": "dictionaries",
    "recovery": "dictionaries",
    "splitting": "dictionaries",
    "matryoshka": "dictionaries",
    "features": "dictionaries",
    "plots": "figures",
}
# Old names whose module moved and was renamed: old name -> full module path.
_RENAMED = {"widgets": "interp_helpers.superposition.explorer"}


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"interp_helpers.{_MODULES[name]}.{name}")
    if name in _RENAMED:
        return importlib.import_module(_RENAMED[name])
    raise AttributeError(f"module 'interp_helpers' has no attribute {name!r}")
