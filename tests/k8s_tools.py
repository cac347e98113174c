"""Helm, kubeconform and the JSON schemas the chart is validated against, at pinned versions.

``python tests/k8s_tools.py`` (``make k8s-tools``) builds helm and kubeconform with ``go install``
and turns schemas from Go modules into kubeconform's layout, all under ``~/.cache/streamscore/k8s``
(``STREAMSCORE_K8S_CACHE``). Everything comes from the Go module proxy:

- the Kubernetes API: ``api/openapi-spec/swagger.json`` of the ``k8s.io/kubernetes`` module;
- KEDA's CRDs: ``config/crd/bases`` of ``github.com/kedacore/keda/v2``;
- prometheus-operator's CRDs: ``example/prometheus-operator-crd`` of its module.

The conversion follows kubeconform's ``scripts/openapi2jsonschema.py``: objects with properties
refuse unknown fields (kubectl's strict validation), ``int-or-string`` becomes string or integer
(and a Quantity string or number). Kubernetes kinds refer to one ``_definitions.json``. Nothing is
fetched again once the versioned folders exist; the tests never fetch.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import yaml

HELM = ("helm.sh/helm/v3/cmd/helm", "v3.22.0")
KUBECONFORM = ("github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0")
KUBERNETES = ("k8s.io/kubernetes", "v1.37.2")
KEDA = ("github.com/kedacore/keda/v2", "v2.21.0")
PROMETHEUS_OPERATOR = ("github.com/prometheus-operator/prometheus-operator", "v0.85.0")
GO = "1.26.8"  # fetched from the module proxy (golang.org/toolchain) only when no go is installed

CACHE = Path(os.environ.get("STREAMSCORE_K8S_CACHE", Path.home() / ".cache" / "streamscore" / "k8s"))
HELM_BIN = CACHE / f"helm-{HELM[1]}" / "helm"
KUBECONFORM_BIN = CACHE / f"kubeconform-{KUBECONFORM[1]}" / "kubeconform"
SCHEMAS = CACHE / f"schemas-k8s-{KUBERNETES[1]}-keda-{KEDA[1]}-prometheus-operator-{PROMETHEUS_OPERATOR[1]}"
# kubeconform names a kind's schema by this template: ConfigMap v1 -> configmap-v1.json,
# ScaledObject keda.sh/v1alpha1 -> scaledobject-keda-v1alpha1.json
SCHEMA_LOCATION = str(SCHEMAS / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
KUBERNETES_VERSION = KUBERNETES[1].removeprefix("v")
_DEFINITIONS = "_definitions.json"


def ready() -> bool:
    return HELM_BIN.exists() and KUBECONFORM_BIN.exists() and (SCHEMAS / _DEFINITIONS).exists()


def go_tool() -> Path | None:
    found = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if Path(p).exists()), None)
    toolchain = CACHE / f"go{GO}" / "bin" / "go"
    return Path(found) if found else (toolchain if toolchain.exists() else None)


def fetch_go() -> Path:
    """The Go toolchain as the module proxy serves it (what ``GOTOOLCHAIN`` switching downloads)."""
    version = f"v0.0.1-go{GO}.linux-amd64"
    url = f"https://proxy.golang.org/golang.org/toolchain/@v/{version}.zip"
    print(f"fetching {url}", flush=True)
    with urllib.request.urlopen(url, timeout=600) as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    root = CACHE / f"go{GO}"
    prefix = f"golang.org/toolchain@{version}/"
    for member in archive.infolist():
        if member.is_dir() or not member.filename.startswith(prefix):
            continue
        target = root / member.filename.removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(member))
        if target.parent.name == "bin" or "/pkg/tool/" in member.filename:
            target.chmod(0o755)
    return root / "bin" / "go"


def _module_dir(go: Path, module: tuple[str, str]) -> Path:
    done = subprocess.run(
        [go, "mod", "download", "-json", f"{module[0]}@{module[1]}"],
        capture_output=True, text=True, check=True, cwd=CACHE,
        env=os.environ | {"GOFLAGS": "-mod=mod"},
    )  # fmt: skip
    return Path(json.loads(done.stdout)["Dir"])


def go_install(go: Path, package: tuple[str, str], binary: Path) -> None:
    if binary.exists():
        return
    print(f"go install {package[0]}@{package[1]}", flush=True)
    subprocess.run([go, "install", f"{package[0]}@{package[1]}"], check=True, cwd=CACHE,
                   env=os.environ | {"GOBIN": str(binary.parent), "CGO_ENABLED": "0"})  # fmt: skip


def strict(schema: Any, root: bool = True) -> Any:
    """kubeconform's conversion: unknown fields refused below the root, int-or-string widened."""
    if isinstance(schema, list):
        return [strict(item, root=False) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("format") == "int-or-string":
        return {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    out = {key: strict(value, root=False) for key, value in schema.items()}
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def _refs(schema: Any, prefix: str) -> Any:
    if isinstance(schema, list):
        return [_refs(item, prefix) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _refs(value, prefix) for key, value in schema.items()}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/definitions/", f"{prefix}#/definitions/")
    return out


def _suffix(group: str, version: str) -> str:
    return f"-{group.split('.')[0]}-{version}" if group else f"-{version}"


def kubernetes_schemas(swagger: Path, out: Path) -> int:
    definitions = json.loads(swagger.read_text())["definitions"]
    converted = {}
    for name, schema in definitions.items():
        if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
            schema = {"oneOf": [{"type": "string"}, {"type": "number"}]}
        converted[name] = strict(schema, root=False)
    (out / _DEFINITIONS).write_text(json.dumps({"definitions": converted}))
    count = 0
    for name in converted:
        for gvk in definitions[name].get("x-kubernetes-group-version-kind", []):
            kind = {
                "$ref": f"{_DEFINITIONS}#/definitions/{name}",
                "properties": {
                    "apiVersion": {"enum": ["/".join(filter(None, (gvk["group"], gvk["version"])))]},
                    "kind": {"enum": [gvk["kind"]]},
                },
            }
            path = out / f"{gvk['kind'].lower()}{_suffix(gvk['group'], gvk['version'])}.json"
            path.write_text(json.dumps(kind))
            count += 1
    return count


class _CrdLoader(yaml.SafeLoader):
    """YAML 1.1 reads a lone ``=`` as a "value" tag; CRDs mean the string (as in kubeconform's script)."""


_CrdLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: str(node.value))


def crd_schemas(crds: list[Path], out: Path) -> int:
    count = 0
    for crd_file in crds:
        for crd in yaml.load_all(crd_file.read_text(), Loader=_CrdLoader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                schema = strict(version["schema"]["openAPIV3Schema"])
                name = f"{spec['names']['kind'].lower()}{_suffix(spec['group'], version['name'])}.json"
                (out / name).write_text(json.dumps(schema))
                count += 1
    return count


def main() -> int:
    if ready():
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    go = go_tool()
    if go is None:
        if "--fetch-go" not in sys.argv:
            print("k8s-tools: no go found: the Helm chart tests will be skipped (.ci/run fetches Go)")
            return 0
        go = fetch_go()
    go_install(go, HELM, HELM_BIN)
    go_install(go, KUBECONFORM, KUBECONFORM_BIN)
    if not (SCHEMAS / _DEFINITIONS).exists():
        partial = SCHEMAS.with_name(SCHEMAS.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        kinds = kubernetes_schemas(_module_dir(go, KUBERNETES) / "api/openapi-spec/swagger.json", partial)
        keda = sorted((_module_dir(go, KEDA) / "config/crd/bases").glob("keda.sh_*.yaml"))
        operator = _module_dir(go, PROMETHEUS_OPERATOR) / "example/prometheus-operator-crd"
        kinds += crd_schemas(keda + sorted(operator.glob("monitoring.coreos.com_*.yaml")), partial)
        partial.rename(SCHEMAS)
        print(f"k8s-tools: {kinds} schemas in {SCHEMAS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
