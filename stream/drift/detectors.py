"""River's change detectors, loaded from their own modules without ``river.drift``'s package.

``river/drift/__init__.py`` imports every detector (KSWIN imports SciPy's statistics) and its
example data sets, which import ``river.datasets`` and, where installed, scikit-learn, pandas and
pyarrow: tens of MiB and a second of start-up that no worker uses. :func:`_detector_module` runs
only the detector's own module, registered under its own name: a later ``import river.drift``
serves the same classes.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING


def _detector_module(name: str) -> ModuleType:
    """``river.drift.<name>``, without running ``river/drift/__init__.py`` unless it already ran."""
    full = f"river.drift.{name}"
    if "river.drift" in sys.modules or full in sys.modules:
        return importlib.import_module(full)
    package = importlib.util.find_spec("river.drift")  # runs ``river/__init__.py`` only
    assert package is not None and package.submodule_search_locations is not None
    spec = importlib.machinery.PathFinder.find_spec(full, package.submodule_search_locations)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    return module


if TYPE_CHECKING:
    from river.drift import ADWIN, PageHinkley
else:
    ADWIN = _detector_module("adwin").ADWIN
    PageHinkley = _detector_module("page_hinkley").PageHinkley

__all__ = ["ADWIN", "PageHinkley"]
