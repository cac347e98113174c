"""Model URIs: MLflow's models:/ forms and the folder registry's, and the one-line errors."""

from __future__ import annotations

import sys

import pytest
from model_versions import NAME, registry

from stream.errors import ConfigError, ModelError
from stream.lifecycle.sources import champion_uri
from stream.lifecycle.uris import ModelUri, parse
from stream.settings import Settings


def test_mlflow_alias_and_version():
    assert parse("models:/loan-approval@champion") == ModelUri("mlflow", "loan-approval", alias="champion")
    uri = parse("models:/loan-approval/3")
    assert uri == ModelUri("mlflow", "loan-approval", version="3") and not uri.moves
    assert str(uri) == "models:/loan-approval/3"


@pytest.mark.parametrize(
    "text", ["models:/", "models:/x/latest", "models:/x@", "models:/x/1/2", "models:/@a"]
)
def test_malformed_mlflow_uris_say_the_forms(text):
    with pytest.raises(ModelError, match="models:/NAME@ALIAS or models:/NAME/VERSION"):
        parse(text)


def test_folder_forms(tmp_path):
    root = registry(tmp_path)
    assert parse(f"{root}/{NAME}@champion") == ModelUri("folder", NAME, alias="champion", root=root)
    assert parse(f"{root}/{NAME}/1") == ModelUri("folder", NAME, version="1", root=root)
    latest = parse(f"{root}/{NAME}/")
    assert latest == ModelUri("folder", NAME, root=root) and latest.moves
    with pytest.raises(ModelError, match="names no model"):
        parse(str(tmp_path / "nothing" / "here"))


def test_settings_without_a_uri_name_the_folder_registry(tmp_path):
    settings = Settings(model_dir=tmp_path, model_name=NAME, model_version="2")
    assert champion_uri(settings) == ModelUri("folder", NAME, version="2", root=tmp_path)
    assert champion_uri(Settings(model_uri="models:/m@champion")).registry == "mlflow"


def test_a_models_uri_without_mlflow_names_the_extra(monkeypatch):
    from stream.lifecycle import mlflow_registry

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    with pytest.raises(
        ConfigError, match=r"needs MLflow, an optional extra: pip install 'streamscore\[mlflow\]'"
    ):
        mlflow_registry.client("http://127.0.0.1:1")
    with pytest.raises(ConfigError, match="needs MLFLOW_TRACKING_URI"):
        mlflow_registry.client(None)
