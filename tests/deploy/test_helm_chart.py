"""The Helm chart lints, renders, and every object it renders is valid for Kubernetes, KEDA and
prometheus-operator (kubeconform against schemas from the projects' Go modules, `make k8s-tools`)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import k8s_tools
import pytest
import yaml

from stream.settings import Settings, settings_rows

ROOT = Path(__file__).parents[2]
CHART = ROOT / "deploy/helm/streamscore"
EOS = CHART / "ci/eos-sasl-keda-values.yaml"
# TLS with a client certificate, the model from an image of its own, no outcome worker
TLS_MODEL_IMAGE = ["--set", "kafka.securityProtocol=SSL", "--set", "kafka.tls.secretName=kafka-tls",
                   "--set", "kafka.tls.certKey=tls.crt", "--set", "kafka.tls.keyKey=tls.key",
                   "--set", "model.registry=modelImage", "--set", "model.modelImage.repository=models",
                   "--set", "outcomes.enabled=false", "--set", "autoscaling.enabled=true"]  # fmt: skip
# A schema registry over HTTPS with basic auth and a client certificate: Avro in, JSON Schema out
REGISTRY = ["--set", "schemaRegistry.url=https://registry.kafka.svc:8081",
            "--set", "schemaRegistry.inputFormat=avro", "--set", "schemaRegistry.outputFormat=json-schema",
            "--set", "schemaRegistry.basicAuth=true", "--set", "schemaRegistry.tls.secretName=registry-tls",
            "--set", "schemaRegistry.tls.certKey=tls.crt",
            "--set", "schemaRegistry.tls.keyKey=tls.key"]  # fmt: skip
HTTP_REGISTRY = ["--set", "schemaRegistry.url=http://registry:8081"]
REGISTRY_TLS = "/etc/streamscore/schema-registry-tls"
USER_INFO = "STREAMSCORE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"
WORKERS = ("streamscore-worker", "streamscore-outcomes")
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
RUNGS = json.loads((ROOT / "bench/results/2026-11-29.json").read_text())["ladder"]["rungs"]
BENCH = {rung["key"]: rung for rung in RUNGS}
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


@pytest.fixture(scope="module", autouse=True)
def tools():
    if not k8s_tools.ready():
        message = f"helm, kubeconform or the schemas are not in {k8s_tools.CACHE} (make k8s-tools)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([k8s_tools.HELM_BIN, *args], capture_output=True, text=True, check=False)


def template(*args: str) -> subprocess.CompletedProcess[str]:
    return helm("template", "streamscore", str(CHART), "--namespace", "scoring", *args)


def render(*args: str) -> dict[tuple[str, str], dict]:
    done = template(*args)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def kubeconform(manifests: str) -> dict:
    done = subprocess.run(
        [k8s_tools.KUBECONFORM_BIN, "-strict", "-summary", "-verbose", "-output", "json", "-schema-location",
         k8s_tools.SCHEMA_LOCATION, "-kubernetes-version", k8s_tools.KUBERNETES_VERSION, "-"],
        input=manifests, capture_output=True, text=True, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    report["returncode"] = done.returncode
    return report


def container(objects: dict, name: str) -> dict:
    return objects["StatefulSet", name]["spec"]["template"]["spec"]["containers"][0]


def test_helm_lint():
    for args in ([], ["-f", str(EOS)], REGISTRY):
        done = helm("lint", "--strict", str(CHART), *args)
        assert done.returncode == 0, done.stdout + done.stderr


BASE = {"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"}
KEDA = {"ScaledObject", "TriggerAuthentication"}


@pytest.mark.parametrize(
    ("args", "kinds"),
    [
        ([], BASE),
        (["-f", str(EOS)], BASE | KEDA | {"PodMonitor", "PrometheusRule"}),
        (TLS_MODEL_IMAGE, BASE | KEDA),
        (REGISTRY, BASE),
        (["-f", str(EOS), *REGISTRY], BASE | KEDA | {"PodMonitor", "PrometheusRule"}),
    ],
    ids=["default", "eos-sasl-keda", "tls-model-image", "schema-registry", "eos-schema-registry"],
)
def test_every_rendered_object_is_valid(args, kinds):
    done = template(*args)
    assert done.returncode == 0, done.stderr
    report = kubeconform(done.stdout)
    problems = [r for r in report["resources"] if r["status"] != "statusValid"]
    assert report["returncode"] == 0 and not problems, problems
    assert report["summary"]["skipped"] == 0 and report["summary"]["errors"] == 0
    assert {r["kind"] for r in report["resources"]} == kinds


def test_the_schemas_refuse_what_the_api_server_would():
    """Validation is strict: a misspelt field or a wrong type is caught, in core kinds and CRDs."""
    objects = render("-f", str(EOS))
    worker = objects["StatefulSet", "streamscore-worker"]
    worker["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}  # sic
    scaled = objects["ScaledObject", "streamscore-worker"]
    scaled["spec"]["maxReplicaCount"] = "twelve"
    report = kubeconform(yaml.safe_dump_all([worker, scaled]))
    assert report["summary"]["invalid"] == 2, report
    messages = " ".join(r["msg"] for r in report["resources"])
    assert "livenesProbe" in messages and "maxReplicaCount" in messages


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "autoscaling.enabled=true", "--set", "autoscaling.maxReplicaCount=7"],
         "autoscaling.maxReplicaCount (7) is above topics.inputPartitions (6)"),
        (["-f", str(EOS), "--set", "topics.inputPartitions=8"],
         "autoscaling.maxReplicaCount (12) is above topics.inputPartitions (8)"),
        (["--set", "worker.replicas=7"], "worker.replicas (7) is above topics.inputPartitions (6)"),
        (["--set", "worker.terminationGracePeriodSeconds=30"], "shorter than a worker's shutdown"),
        (["--set", "config.STREAMSCORE_SESSION_TIMEOUT_S=30"], "shorter than a worker's shutdown"),
        (["--set", "kafka.securityProtocol=SASL_SSL"], "needs kafka.sasl.mechanism"),
        (["--set", "kafka.tls.secretName=ca"], "kafka.securityProtocol=PLAINTEXT ignores it"),
        (["--set", "config.STREAMSCORE_SECRET=x"], "config.STREAMSCORE_SECRET is set by the chart"),
        (["--set", "config.KAFKA_SASL_PASSWORD=x"], "only STREAMSCORE_* settings go in config"),
        (["--set", "secrets.name="], "secrets.name is required"),
        (["--set", "model.uri=models:/loan-approval/3"], "not read by this streamscore release"),
        (["--set", "schemaRegistry.inputFormat=thrift"],
         'schemaRegistry.inputFormat "thrift": use json, json-schema, avro or protobuf'),
        ([*HTTP_REGISTRY, "--set", "schemaRegistry.outputFormat=Avro"],
         'schemaRegistry.outputFormat "Avro": use json, json-schema, avro or protobuf'),
        (["--set", "schemaRegistry.inputFormat=protobuf"],
         "schemaRegistry.inputFormat=protobuf needs schemaRegistry.url"),
        (["--set", "schemaRegistry.inputFormat=avro"],
         "schemaRegistry.inputFormat=avro needs schemaRegistry.url"),
        (["--set", "schemaRegistry.outputFormat=json-schema"],
         "schemaRegistry.outputFormat=json-schema needs schemaRegistry.url"),
        (["--set", "schemaRegistry.basicAuth=true"],
         "schemaRegistry.basicAuth is set, but schemaRegistry.url is empty"),
        (["--set", "schemaRegistry.tls.secretName=registry-tls"],
         "schemaRegistry.tls.secretName is set, but schemaRegistry.url is empty"),
        ([*HTTP_REGISTRY, "--set", "schemaRegistry.tls.secretName=registry-tls"],
         'schemaRegistry.url "http://registry:8081" is not https'),
        ([*REGISTRY, "--set", "secrets.schemaRegistryUserInfoKey="],
         "schemaRegistry.basicAuth needs secrets.schemaRegistryUserInfoKey"),
        ([*REGISTRY, "--set", "schemaRegistry.tls.keyKey="],
         "a client certificate needs both schemaRegistry.tls.certKey and schemaRegistry.tls.keyKey"),
        ([*REGISTRY, "--set", "schemaRegistry.tls.secretName="],
         "schemaRegistry.tls.certKey and keyKey need schemaRegistry.tls.secretName"),
        (["--set", "config.STREAMSCORE_INPUT_FORMAT=avro"],
         "config.STREAMSCORE_INPUT_FORMAT is set by the chart from schemaRegistry"),
        (["--set", f"config.{USER_INFO}=user:password"],
         f"config.{USER_INFO} is set by the chart from schemaRegistry"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_fail_rendering(args, message):
    done = template(*args)
    assert done.returncode != 0
    assert message in done.stderr


def test_max_replicas_equal_to_the_partitions_renders():
    objects = render("--set", "autoscaling.enabled=true", "--set", "autoscaling.maxReplicaCount=6")
    assert objects["ScaledObject", "streamscore-worker"]["spec"]["maxReplicaCount"] == 6


def test_lag_threshold_is_the_measured_rate_times_the_seconds():
    """values.yaml's per-pod rates are the benchmark's; KEDA's lagThreshold is rate x lagSeconds."""
    assert VALUES["autoscaling"]["podEventsPerSecond"] == BENCH["streamscore"]["events_per_s"]
    page = (ROOT / "docs/operations/kubernetes.md").read_text()
    assert "31,639 x 5 = **158,195**" in page and "24,626 x 5 = 123,130" in page
    eos = yaml.safe_load(EOS.read_text())
    assert eos["autoscaling"]["podEventsPerSecond"] == BENCH["streamscore-eos"]["events_per_s"]
    for args, rate in (([], 31639), (["-f", str(EOS)], 24626)):
        objects = render("--set", "autoscaling.enabled=true", *args)
        scaled = objects["ScaledObject", "streamscore-worker"]["spec"]
        trigger = scaled["triggers"][0]["metadata"]
        assert trigger["lagThreshold"] == str(rate * 5)
        assert trigger["limitToPartitionsWithLag"] == "true" and trigger["excludePersistentLag"] == "true"
        assert trigger["consumerGroup"] == "streamscore" and trigger["offsetResetPolicy"] == "earliest"
        assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                            "name": "streamscore-worker"}  # fmt: skip
        assert "replicas" not in objects["StatefulSet", "streamscore-worker"]["spec"]  # KEDA's to set


def test_worker_resources_are_sized_from_the_benchmark():
    requests = VALUES["worker"]["resources"]["requests"]
    measured = BENCH["streamscore"]
    cores = measured["cpu_s_per_1000"] * measured["events_per_s"] / 1000
    assert abs(float(requests["cpu"]) - cores) < 0.1 * cores
    peak = max(r["peak_rss_mib"] for k, r in BENCH.items() if k.startswith("streamscore"))
    assert int(requests["memory"].removesuffix("Mi")) >= peak * 1.25


def test_exactly_once_over_sasl_ssl():
    objects = render("-f", str(EOS))
    config = objects["ConfigMap", "streamscore"]["data"]
    assert config["STREAMSCORE_PROCESSING_GUARANTEE"] == "exactly_once"
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert not [key for key in config if "SECRET" in key or "PASSWORD" in key]
    worker = container(objects, "streamscore-worker")
    env = {e["name"]: e.get("valueFrom") for e in worker["env"]}
    assert env["STREAMSCORE_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["STREAMSCORE_SECRET"]["secretKeyRef"] == {"name": "streamscore", "key": "STREAMSCORE_SECRET"}
    assert env["KAFKA_SASL_PASSWORD"]["secretKeyRef"] == {"name": "streamscore", "key": "KAFKA_SASL_PASSWORD"}
    mounts = {m["name"]: m["mountPath"] for m in worker["volumeMounts"]}
    assert config["KAFKA_SSL_CAFILE"] == f"{mounts['kafka-tls']}/ca.crt"
    assert config["STREAMSCORE_MODEL_DIR"] == mounts["models"]
    auth = objects["TriggerAuthentication", "streamscore-worker"]["spec"]
    assert {r["parameter"] for r in auth["secretTargetRef"]} == {"password", "ca"}
    trigger = objects["ScaledObject", "streamscore-worker"]["spec"]["triggers"][0]["metadata"]
    assert trigger["sasl"] == "scram_sha512" and trigger["tls"] == "enable"
    assert trigger["topic"] == config["STREAMSCORE_INPUT_TOPIC"] == "loan-applications"


def test_both_workers_get_the_schema_registry():
    """The URL, formats and file paths in the ConfigMap, user:password from the Secret, the PEM files
    mounted read-only where the paths point, in the scoring worker and the outcome worker alike."""
    objects = render("-f", str(EOS), *REGISTRY)
    config = objects["ConfigMap", "streamscore"]["data"]
    assert config["STREAMSCORE_SCHEMA_REGISTRY_URL"] == "https://registry.kafka.svc:8081"
    assert config["STREAMSCORE_INPUT_FORMAT"] == "avro"
    assert config["STREAMSCORE_OUTPUT_FORMAT"] == "json-schema"
    assert config["STREAMSCORE_SCHEMA_REGISTRY_SSL_CA_LOCATION"] == f"{REGISTRY_TLS}/ca.crt"
    assert config["STREAMSCORE_SCHEMA_REGISTRY_SSL_CERTIFICATE_LOCATION"] == f"{REGISTRY_TLS}/tls.crt"
    assert config["STREAMSCORE_SCHEMA_REGISTRY_SSL_KEY_LOCATION"] == f"{REGISTRY_TLS}/tls.key"
    assert USER_INFO not in config
    for name in WORKERS:
        pod = objects["StatefulSet", name]["spec"]["template"]["spec"]
        worker = container(objects, name)
        assert worker["envFrom"] == [{"configMapRef": {"name": "streamscore"}}]
        env = {e["name"]: e.get("valueFrom") for e in worker["env"]}
        assert env[USER_INFO]["secretKeyRef"] == {"name": "streamscore", "key": USER_INFO}
        mounts = {m["name"]: m for m in worker["volumeMounts"]}
        assert mounts["schema-registry-tls"] == {"name": "schema-registry-tls", "mountPath": REGISTRY_TLS,
                                                 "readOnly": True}  # fmt: skip
        assert mounts["kafka-tls"]["mountPath"] != REGISTRY_TLS
        volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        assert volumes["schema-registry-tls"] == {"secretName": "registry-tls", "defaultMode": 0o440}
        assert volumes["kafka-tls"]["secretName"] == "kafka-ca"
        assert worker["securityContext"]["readOnlyRootFilesystem"] is True


def registry_settings(objects: dict) -> dict[str, str]:
    config = objects["ConfigMap", "streamscore"]["data"]
    return {key: val for key, val in config.items() if "SCHEMA_REGISTRY" in key or key.endswith("_FORMAT")}


def test_without_a_registry_the_chart_sets_none_of_its_variables():
    objects = render()
    assert registry_settings(objects) == {}
    for name in WORKERS:
        worker = container(objects, name)
        assert not [e for e in worker["env"] if "SCHEMA_REGISTRY" in e["name"]]
        assert "schema-registry-tls" not in {m["name"] for m in worker["volumeMounts"]}
        pod = objects["StatefulSet", name]["spec"]["template"]["spec"]
        assert "schema-registry-tls" not in {v["name"] for v in pod["volumes"]}


def test_a_registry_without_auth_or_tls_and_a_key_of_ones_own():
    """A URL alone sets the URL and formats only; basicAuth reads the key secrets names; no caKey
    trusts the system's CAs."""
    objects = render(*HTTP_REGISTRY, "--set", "schemaRegistry.inputFormat=avro")
    assert registry_settings(objects) == {
        "STREAMSCORE_SCHEMA_REGISTRY_URL": "http://registry:8081",
        "STREAMSCORE_INPUT_FORMAT": "avro",
        "STREAMSCORE_OUTPUT_FORMAT": "json",
    }
    for name in WORKERS:
        worker = container(objects, name)
        assert not [e for e in worker["env"] if "SCHEMA_REGISTRY" in e["name"]]
        assert "schema-registry-tls" not in {m["name"] for m in worker["volumeMounts"]}
    objects = render(*HTTP_REGISTRY, "--set", "schemaRegistry.basicAuth=true",
                     "--set", "secrets.schemaRegistryUserInfoKey=registry-user-info")  # fmt: skip
    for name in WORKERS:
        env = {e["name"]: e.get("valueFrom") for e in container(objects, name)["env"]}
        assert env[USER_INFO]["secretKeyRef"] == {"name": "streamscore", "key": "registry-user-info"}
    registry = registry_settings(render(*REGISTRY, "--set", "schemaRegistry.tls.caKey="))
    assert "STREAMSCORE_SCHEMA_REGISTRY_SSL_CA_LOCATION" not in registry
    assert registry["STREAMSCORE_SCHEMA_REGISTRY_SSL_KEY_LOCATION"] == f"{REGISTRY_TLS}/tls.key"


def test_workers_are_statefulsets_with_probes_and_a_shutdown_grace():
    objects = render()
    defaults = Settings(_env_file=None)
    session = float(VALUES["config"]["STREAMSCORE_SESSION_TIMEOUT_S"])
    assert session == defaults.session_timeout_s
    for name, command in (("streamscore-worker", "worker"), ("streamscore-outcomes", "outcomes")):
        spec = objects["StatefulSet", name]["spec"]
        assert spec["podManagementPolicy"] == "Parallel"
        assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > 2 * session + 10
        worker = container(objects, name)
        assert worker["command"] == ["streamscore", command]
        assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert worker["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert worker["ports"] == [{"name": "metrics", "containerPort": defaults.metrics_port}]
        assert ("PodDisruptionBudget", name) in objects


def test_config_map_holds_only_streamscore_settings():
    names = {row[0] for row in settings_rows()}
    for args in ([], ["-f", str(EOS)], REGISTRY):
        config = render(*args)["ConfigMap", "streamscore"]["data"]
        assert set(config) <= names, set(config) - names


@pytest.mark.parametrize(
    ("args", "name"),
    [([], "worker"), (["-f", str(EOS)], "worker"), (TLS_MODEL_IMAGE, "worker"),
     (["-f", str(EOS), *REGISTRY], "worker"), (["-f", str(EOS), *REGISTRY], "outcomes")],
    ids=["default", "eos", "tls", "registry", "registry-outcomes"],
)  # fmt: skip
def test_the_worker_accepts_the_environment_the_chart_gives_it(args, name, tmp_path, monkeypatch):
    """The ConfigMap and env of the worker pod make valid Settings (the files mounted where said)."""
    objects = render(*args)
    worker = container(objects, f"streamscore-{name}")
    env = dict(objects["ConfigMap", "streamscore"]["data"])
    for var in worker["env"]:
        ref = var["valueFrom"]
        env[var["name"]] = f"streamscore-{name}-0" if "fieldRef" in ref else "s" * 32
    for key, value in env.items():
        if (key.startswith("KAFKA_SSL_") and key.endswith("FILE")) or "REGISTRY_SSL_" in key:
            path = tmp_path / Path(value).parent.name / Path(value).name
            path.parent.mkdir(exist_ok=True)
            path.write_text("PEM")
            value = str(path)
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.instance_id == f"streamscore-{name}-0"
    assert str(settings.partitions) == env["STREAMSCORE_PARTITIONS"]
    assert "STREAMSCORE_PREVIOUS_SECRETS" in env  # optional in the Secret: absent is also valid
    assert settings.input_format == env.get("STREAMSCORE_INPUT_FORMAT", "json")
    assert settings.output_format == env.get("STREAMSCORE_OUTPUT_FORMAT", "json")
    assert settings.schema_registry_url == env.get("STREAMSCORE_SCHEMA_REGISTRY_URL")
    files = (settings.schema_registry_ssl_ca_location, settings.schema_registry_ssl_certificate_location,
             settings.schema_registry_ssl_key_location)  # fmt: skip
    assert all(files) == ("STREAMSCORE_SCHEMA_REGISTRY_SSL_KEY_LOCATION" in env)


def test_prometheus_rule_is_the_alert_rules_file():
    objects = render("-f", str(EOS))
    assert objects["PrometheusRule", "streamscore"]["spec"] == yaml.safe_load(ALERTS.read_text())
    jobs = {obj["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["replacement"]
            for (kind, _), obj in objects.items() if kind == "PodMonitor"}  # fmt: skip
    scraped = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
    assert jobs == {job["job_name"] for job in scraped}  # the jobs the alerts and dashboard expect


def test_packaged_chart_carries_the_alert_rules(tmp_path):
    """files/alerts.yml links to deploy/prometheus/alerts.yml; helm package stores its content."""
    assert (CHART / "files/alerts.yml").resolve() == ALERTS.resolve()
    done = helm("package", str(CHART), "--destination", str(tmp_path))
    assert done.returncode == 0, done.stderr
    (package,) = tmp_path.glob("streamscore-*.tgz")
    with tarfile.open(package) as tar:
        names = tar.getnames()
        packed = tar.extractfile("streamscore/files/alerts.yml")
        assert packed is not None and packed.read() == ALERTS.read_bytes()
    assert not [n for n in names if n.startswith("streamscore/ci/")]
    done = helm("template", "streamscore", str(package), "-f", str(EOS))
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(io.StringIO(done.stdout)) if d]
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())
