"""The deployment files, checked statically (no Docker engine or Kubernetes here): the Dockerfile's
shape, every KubeRay / Kubernetes manifest and the Ray cluster-launcher config parsed with their
required fields, the image tag and Ray version the code's own, and the environment they give the
service resolving through `Settings.from_env` to the lake, token and Ray address they mean."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from chipsweep.service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
IMAGE = f"chipsweep:{PYPROJECT['project']['version']}"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def _one(kind: str) -> dict[str, Any]:
    found = [d for f in sorted((DEPLOY / "kuberay").glob("*.yaml")) for d in _docs(f"kuberay/{f.name}")
             if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in deploy/kuberay, found {len(found)}"
    return found[0]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


# ---- the image ---------------------------------------------------------------------------------
def test_dockerfile_is_slim_python_of_this_minor_version_with_the_project_installed() -> None:
    ins = _instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:(\d+\.\d+)-slim(-\w+)?", froms[0]), froms
    # Ray refuses a driver and nodes on different Python minor versions: the image matches ours
    assert froms[0].split(":")[1].startswith(f"{sys.version_info.major}.{sys.version_info.minor}-")
    copied = " ".join(a for i, a in ins if i == "COPY")
    for package, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items():
        top = folder.split("/")[0]  # a nested package travels with its top-level folder
        assert re.search(rf"(^|\s){top}(\s|$)", copied), f"package {package} ({folder}/) is not copied into the image"
    assert "pyproject.toml" in copied
    runs = " ".join(a for i, a in ins if i == "RUN")
    assert re.search(r"pip install [\"']?\.(\[[a-z0-9,]+\])?[\"']?", runs), "the project is not pip-installed"
    extras = re.search(r"pip install [\"']?\.\[([a-z0-9,]+)\]", runs)
    for extra in (extras.group(1).split(",") if extras else []):
        assert extra in PYPROJECT["project"]["optional-dependencies"], f"extra [{extra}] is not in pyproject"


def test_dockerfile_runs_as_a_non_root_user_with_chipsweep_as_entrypoint() -> None:
    ins = _instructions()
    users = [a for i, a in ins if i == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    last_user = max(n for n, (i, _) in enumerate(ins) if i == "USER")
    assert all(i != "RUN" for i, _ in ins[last_user:]), "nothing runs as root after USER"
    [entry] = [a for i, a in ins if i == "ENTRYPOINT"]
    assert yaml.safe_load(entry) == ["chipsweep"] and "chipsweep" in PYPROJECT["project"]["scripts"]
    [cmd] = [a for i, a in ins if i == "CMD"]
    assert yaml.safe_load(cmd)[:1] == ["serve"]
    home = [a for i, a in ins if i == "ENV" and "CHIPSWEEP_HOME=" in a]
    assert home, "the image sets CHIPSWEEP_HOME to a directory the user owns"


def test_dockerignore_keeps_the_context_small_but_the_project_in() -> None:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    for heavy in (".git", ".venv", ".chipsweep"):
        assert heavy in patterns
    for needed in [*PYPROJECT["tool"]["setuptools"]["packages"], "pyproject.toml", "README.md"]:
        assert needed not in patterns


# ---- KubeRay -----------------------------------------------------------------------------------
def _containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    return template["spec"]["containers"]


def test_raycluster_has_an_idle_head_and_an_autoscaling_worker_group_with_requests() -> None:
    import ray

    rc = _one("RayCluster")
    assert rc["apiVersion"] == "ray.io/v1"
    spec = rc["spec"]
    assert spec["rayVersion"] == ray.__version__  # the image installs this Ray (pyproject pins none)
    assert spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # the dispatcher puts no actor on the head
    [group] = spec["workerGroupSpecs"]
    assert 0 < group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for template in (head["template"], group["template"]):
        for c in _containers(template):
            assert c["image"] == IMAGE
            assert {"cpu", "memory"} <= set(c["resources"]["requests"])
            assert [e["secretRef"]["name"] for e in c["envFrom"]] == [_one("Secret")["metadata"]["name"]]
    [worker] = _containers(group["template"])
    assert str(worker["resources"]["requests"]["cpu"]) == group["rayStartParams"]["num-cpus"]
    head_ports = {p["name"]: p["containerPort"] for p in _containers(head["template"])[0]["ports"]}
    assert head_ports["gcs"] == 6379 and head_ports["client"] == 10001


def _serve_env(container: dict[str, Any], secret: dict[str, Any]) -> dict[str, str]:
    """The serve container's environment as Kubernetes would give it (secret references resolved)."""
    env: dict[str, str] = {}
    data = secret["stringData"]
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            if ref["key"] in data:
                env[item["name"]] = str(data[ref["key"]])
            else:
                assert ref.get("optional"), f"secret key {ref['key']} is missing and not optional"
    return env


def test_serve_deployment_reaches_the_ray_head_with_lake_and_token_from_the_secret() -> None:
    rc, dep, svc, secret = _one("RayCluster"), _one("Deployment"), _one("Service"), _one("Secret")
    assert dep["apiVersion"] == "apps/v1" and dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["type"] == "Recreate"  # one dispatcher lease, one SQLite queue
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [c] = _containers(pod)
    assert c["image"] == IMAGE and c["args"][0] == "serve"
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    port = int(c["args"][c["args"].index("--port") + 1])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports[svc["spec"]["ports"][0]["targetPort"]] == port
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"

    env = _serve_env(c, secret)
    for name in env:  # every CHIPSWEEP_ variable given is one the code reads
        if name.startswith("CHIPSWEEP_"):
            sources = [*(REPO / "service").rglob("*.py"), *(REPO / "lake").rglob("*.py")]
            assert any(name in p.read_text() for p in sources), name
    settings = Settings.from_env(env)
    assert settings.lake == secret["stringData"]["CHIPSWEEP_LAKE"] and settings.lake.startswith("s3://")
    assert settings.token == secret["stringData"]["CHIPSWEEP_TOKEN"]
    assert settings.ray_address == f"ray://{rc['metadata']['name']}-head-svc:10001"
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert str(settings.home) == env["CHIPSWEEP_HOME"] == mount["home"]
    for aws in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        assert aws in env


def test_secret_names_the_settings_and_the_standard_aws_variables() -> None:
    secret = _one("Secret")
    assert secret["apiVersion"] == "v1" and secret["type"] == "Opaque"
    keys = set(secret["stringData"])
    assert {"CHIPSWEEP_LAKE", "CHIPSWEEP_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"} <= keys


@pytest.mark.parametrize("name", sorted(p.name for p in (DEPLOY / "kuberay").glob("*.yaml")))
def test_every_kubernetes_object_has_api_version_kind_and_name(name: str) -> None:
    for doc in _docs(f"kuberay/{name}"):
        assert doc["apiVersion"] and doc["kind"] and re.fullmatch(r"[a-z0-9-]+", doc["metadata"]["name"])


# ---- the Ray cluster launcher ------------------------------------------------------------------
def test_cluster_launcher_config_uses_the_image_and_an_idle_head() -> None:
    [cfg] = _docs("ray-cluster.yaml")
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type", "head_start_ray_commands",
                "worker_start_ray_commands", "max_workers"):
        assert key in cfg, key
    assert cfg["docker"]["image"] == IMAGE
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    workers = [t for n, t in types.items() if n != cfg["head_node_type"]]
    assert workers and all(t["max_workers"] <= cfg["max_workers"] for t in workers)
    assert all(t["resources"]["CPU"] == 32 for t in workers)
    head_cmds = " ".join(cfg["head_start_ray_commands"])
    assert "--head" in head_cmds and "--num-cpus=0" in head_cmds and "chipsweep serve" in head_cmds
    assert any(f"--num-cpus={workers[0]['resources']['CPU']}" in c for c in cfg["worker_start_ray_commands"])
    assert any("--env-file" in o for o in cfg["docker"]["run_options"])


# ---- the local multi-node script -----------------------------------------------------------------
def test_local_cluster_script_parses_and_offers_up_down_status() -> None:
    script = DEPLOY / "local-cluster.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert usage.returncode == 2
    for verb in ("up", "down", "status"):
        assert f"local-cluster.sh {verb}" in usage.stdout
    text = script.read_text()
    for case in ("up|start)", "down|stop)", "status)"):
        assert case in text
    assert "ray stop" not in shlex.split(text, comments=True)  # never the machine-wide stop
