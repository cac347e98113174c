"""Zoo models together with the fitted model each ONNX file was converted from, and their imports.

The converters' entry points are wrapped while a zoo function runs, so the fitted estimator handed
to skl2onnx or onnxmltools is the one returned: the same object, not a model trained again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zoo

from stream.lifecycle.importer import Options, import_model
from stream.scoring.model import LoadedModel, load_folder

CONVERTERS = {
    "onnxmltools": ("convert_xgboost", "convert_lightgbm"),
    "skl2onnx": ("convert_sklearn",),
}


def with_source(kind: str, folder: Path) -> tuple[zoo.Zoo, Any]:
    """Zoo model ``kind`` written into ``folder``, and the fitted model it was converted from."""
    import onnxmltools
    import skl2onnx

    seen: list[Any] = []
    modules = {"onnxmltools": onnxmltools, "skl2onnx": skl2onnx}
    with pytest.MonkeyPatch.context() as patch:
        for module, names in CONVERTERS.items():
            for name in names:
                original = getattr(modules[module], name)

                def spy(model: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
                    seen.append(model)
                    return _original(model, *args, **kwargs)

                patch.setattr(modules[module], name, spy)
        made = zoo.MAKERS[kind](folder)
    return made, seen[-1]


def imported(made: zoo.Zoo, registry: Path, name: str, **options: Any) -> LoadedModel:
    """``made`` imported into ``registry`` with its label column, and loaded."""
    folder = import_model(
        made.model, made.reference, registry, name, options=Options(label=made.label, **options)
    )
    return load_folder(folder)
