"""The package surface: ``import delfverify`` loads no heavy dependency, and each public name comes from the module
that defines it, loaded on first use."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

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
