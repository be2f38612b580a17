"""Reusable kernels, data, plots, widgets and the runner behind the workbook notebooks.

Notebooks import what they need from the submodules; the few names used by every
notebook are re-exported here.
"""

import warnings

# TransformerLens 3.x warns that HookedTransformer goes away in 4.0. We pin <4 on
# purpose (attention-only toy models need HookedTransformer), so the warning is
# noise for students. This is the one place it is silenced.
warnings.filterwarnings(
    "ignore",
    message=r".*is deprecated and will be removed in 4\.0.*",
    category=DeprecationWarning,
)

from interp_helpers.params import check_choice, check_parameters, check_range, seed_everything  # noqa: E402
from interp_helpers.results import record  # noqa: E402

__all__ = ["record", "check_parameters", "check_range", "check_choice", "seed_everything"]
__version__ = "0.1.0"
