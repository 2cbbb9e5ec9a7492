"""The layout shows the architecture: one import package `chipsweep`, layers that import only the ones
below them (schemas <- workers <- lake <- queries <- service), and no import cycle anywhere.

The import graph is read from the source (every `import` statement, at module level or inside a
function), so a lazy import cannot hide a cycle or an upward dependency."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("schemas", "workers", "lake", "queries", "service")  # bottom to top
FOLDERS = {f"chipsweep.{layer}": REPO / layer for layer in LAYERS}
OLD_NAMES = ("schemas", "workers", "lake", "queries", "service")


def _modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> source file."""
    out: dict[str, Path] = {"chipsweep": REPO / "chipsweep" / "__init__.py",
                            "chipsweep.__main__": REPO / "chipsweep" / "__main__.py"}
    for pkg, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in a module, resolved to a module of ours or not."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in MODULES else base), node.lineno


def _graph() -> dict[str, set[str]]:
    return {name: {m for m, _ in _imports(name, path) if m in MODULES and m != name} for name, path in MODULES.items()}


def _layer(module: str) -> int:
    if module in ("chipsweep", "chipsweep.__main__"):
        return len(LAYERS)  # the package's face: the Python API over every layer
    return LAYERS.index(module.split(".")[1])


def test_every_layer_imports_only_the_layers_below_it() -> None:
    upward = []
    for name, path in MODULES.items():
        for target, line in _imports(name, path):
            if target in MODULES and _layer(target) > _layer(name):
                upward.append(f"{path.relative_to(REPO)}:{line}: {name} imports {target}")
    assert not upward, "\n".join(upward)


def test_schemas_and_workers_import_nothing_of_the_layers_above_and_workers_no_ray() -> None:
    bad = []
    for name, path in MODULES.items():
        layer = name.split(".")[1] if name.count(".") else ""
        if layer not in ("schemas", "workers"):
            continue
        for target, line in _imports(name, path):
            root = target.split(".")[0]
            if root in ("ray", "duckdb", "fastapi", "uvicorn") or (
                    target.startswith("chipsweep.") and target.split(".")[1] not in ("schemas", "workers")):
                bad.append(f"{path.relative_to(REPO)}:{line}: {name} imports {target}")
            if layer == "schemas" and target.startswith("chipsweep.workers"):
                bad.append(f"{path.relative_to(REPO)}:{line}: {name} imports {target}")
    assert not bad, "\n".join(bad)


def test_the_cli_imports_ray_only_for_the_commands_that_run_sweeps() -> None:
    """Every `chipsweep` command imports the CLI; Ray's import (~0.5 s) comes with the demo, which starts one, not with
    `catalog`, `sql`, `query` or `evaluate`, which need none."""
    code = ("import sys, chipsweep.service.cli, chipsweep.service.cli.catalog, chipsweep.service.cli.queries; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))[:5])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_code_imports_its_layers_only_through_the_chipsweep_package() -> None:
    bare = []
    for path in [*MODULES.values(), *REPO.joinpath("tests").rglob("*.py"), *REPO.joinpath("benchmarks").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bare += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in OLD_NAMES]
    assert not bare, "\n".join(bare)


def test_the_checkout_links_each_layer_into_the_package() -> None:
    # tools that read the source tree (mypy -p chipsweep, an IDE, `python -m chipsweep` from a checkout)
    # see the same package the wheel installs
    for layer in LAYERS:
        link = REPO / "chipsweep" / layer
        assert link.is_symlink() and link.resolve() == (REPO / layer).resolve(), link


def test_every_package_folder_is_in_the_wheel() -> None:
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert found == listed, f"in the tree, not in pyproject: {found - listed}; listed, not in the tree: {listed - found}"
    for package, folder in config["package-dir"].items():
        assert package in listed and (REPO / folder / "__init__.py").is_file(), (package, folder)


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300, **kw)  # type: ignore[call-overload]


@pytest.mark.slow
def test_installing_the_wheel_adds_one_import_name_and_the_api_works(tmp_path: Path) -> None:
    src = tmp_path / "src"  # built from a copy: setuptools leaves build/ beside the sources it builds
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("chipsweep", *LAYERS):
        shutil.copytree(REPO / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  str(tmp_path / "dist"), str(src)])
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("chipsweep-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"chipsweep", wheel.name.split("-py")[0] + ".dist-info"}, tops
    # the catalog and the saved queries travel as package data
    assert any(n.startswith("chipsweep/schemas/catalog/") and n.endswith(".yaml") for n in names)
    assert any(n.startswith("chipsweep/queries/sql/") and n.endswith(".sql") for n in names)
    assert not any(n.startswith(("chipsweep/tests", "tests/", "benchmarks/")) for n in names)

    target = tmp_path / "site"
    inst = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)])
    assert inst.returncode == 0, inst.stderr[-3000:]
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info")) == ["bin", "chipsweep"]
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import chipsweep, importlib.util, sys\n"
        f"assert chipsweep.__file__.startswith({str(target)!r}), chipsweep.__file__\n"
        "for old in ('schemas', 'workers', 'service', 'queries', 'lake'):\n"
        "    assert importlib.util.find_spec(old) is None, old\n"
        "t = chipsweep.evaluate([{'model': 'llama3_8b', 'chip': 'nvidia_h100_sxm', 'n_chips': 64,"
        " 'global_batch': 512, 'tokens': 1e11}], kind='training')\n"
        "print(type(t).__module__, t.column('step_time_s')[0].as_py())\n"
    )
    run = _run([sys.executable, "-c", code], cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    module, step = run.stdout.split()
    assert module.startswith("pyarrow") and float(step) > 0
    fail = _run([sys.executable, "-c", "import service"], cwd=tmp_path, env=env)
    assert fail.returncode != 0 and "No module named 'service'" in fail.stderr
    cli = _run([sys.executable, "-m", "chipsweep", "catalog", "show", "nvidia_h100_sxm", "--json"], cwd=tmp_path, env=env)
    assert cli.returncode == 0 and '"nvidia_h100_sxm"' in cli.stdout, cli.stderr[-2000:]
