"""The package surface: ``import delfverify`` loads no heavy dependency, and each public name comes from the module
that defines it, loaded on first use."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import delfverify

HEAVY = ("pandas", "scipy", "cv2", "tensorflow", "skimage", "matplotlib", "distributed", "dask")


def _modules_after(code: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", f"{code}; import sys; print(' '.join(sys.modules))"],
                            capture_output=True, text=True, timeout=120, check=True)
    return set(result.stdout.split())


def test_import_loads_no_heavy_dependency():
    loaded = _modules_after("import delfverify")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_verify_pair_loads_neither_tensorflow_nor_pandas():
    loaded = _modules_after("import delfverify; delfverify.verify_pair")
    assert "tensorflow" not in loaded and "pandas" not in loaded


@pytest.mark.parametrize("name", delfverify.__all__)
def test_every_public_name_resolves_to_its_module(name):
    value = getattr(delfverify, name)
    module = delfverify._EXPORTS[name]
    assert getattr(value, "__module__", "").startswith(f"delfverify.{module}")
    assert name in dir(delfverify)


def test_rerank_is_the_pipeline_function_and_no_module_shadows_it():
    from delfverify import pipeline

    assert delfverify.rerank is pipeline.rerank
    assert importlib.util.find_spec("delfverify.rerank") is None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        delfverify.nothing  # noqa: B018


def test_dir_lists_the_public_names_only():
    assert dir(delfverify) == sorted([*delfverify.__all__, "__version__"])
    assert not {"TYPE_CHECKING", "annotations", "importlib"} & set(dir(delfverify))


PACKAGE = Path(delfverify.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its code (at the top, in functions, for typing)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:  # "from . import x" may name a module
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in modules else base)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def test_the_package_has_no_import_cycle_typing_imports_included():
    graph = _import_graph()
    assert graph["delfverify.report"] and "delfverify.pipeline" in graph  # the graph was read
    done, path = set(), []

    def visit(module):
        if module in path:
            raise AssertionError(f"import cycle: {' -> '.join(path[path.index(module):] + [module])}")
        if module in done:
            return
        path.append(module)
        for target in sorted(graph[module]):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_no_module_is_over_600_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert not long, long


def _benchmark_imports() -> list[tuple[str, str, str]]:
    """(script, module, name) of every ``from delfverify... import name`` in ``benchmarks/``."""
    found = []
    for script in sorted((PACKAGE.parent / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "delfverify":
                found += [(script.name, node.module, alias.name) for alias in node.names]
    return found


def test_every_name_the_benchmarks_import_exists():
    """A benchmark is run by hand, long after the code it measures moved on: what it imports must still be there."""
    missing = []
    for script, module, name in _benchmark_imports():
        imported = importlib.import_module(module)
        if not hasattr(imported, name) and importlib.util.find_spec(f"{module}.{name}") is None:
            missing.append(f"{script}: {module}.{name}")
    assert len(_benchmark_imports()) > 50 and missing == []
