"""delfverify.extractors.delf through the real loading code, with a tiny SavedModel built here that has the
DELF ``default`` signature (no download, runs in seconds)."""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
from PIL import Image

from conftest import DELF_GRID as GRID

from delfverify import Verifier, VerifySettings, cli, make_extractor
from delfverify.extractors import delf as delf_module
from delfverify.extractors.base import fingerprint
from delfverify.extractors.delf import DELF, ModelLoadError
from delfverify.features import Features

# TensorFlow is imported by the tests that need it, not when the tests are collected (it takes seconds).
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("tensorflow", "tensorflow_hub")),
                                reason="tensorflow and tensorflow-hub are not installed")


def _save(path, seed: int) -> str:
    from delf_model import save_tiny_model

    return save_tiny_model(path, seed)


def test_delf_extract_shapes_dtypes_and_normalisation(tiny_model, textured_image):
    extractor = make_extractor("delf", model=tiny_model)
    assert isinstance(extractor, DELF) and extractor.dim == 40
    features = extractor.extract(textured_image)
    assert isinstance(features, Features)
    assert len(features) == GRID * GRID
    assert features.locations.shape == (64, 2) and features.descriptors.shape == (64, 40)
    assert features.scales.shape == (64,) and features.scores.shape == (64,)
    for name in ("locations", "scales", "scores"):
        assert getattr(features, name).dtype == np.float32
    assert features.descriptors.dtype == np.float16  # 80 bytes a keypoint in the store
    np.testing.assert_allclose(np.linalg.norm(features.unit_descriptors, axis=1), 1.0, rtol=2e-3)
    ys, xs = features.locations[:, 0], features.locations[:, 1]
    assert ys.min() >= 0 and ys.max() <= textured_image.shape[0] - 1
    assert xs.min() >= 0 and xs.max() <= textured_image.shape[1] - 1
    assert xs.max() > 300 and ys.max() > 200  # (y, x) order: x spans the 400-pixel width
    np.testing.assert_allclose(features.scales, extractor.image_scales[0])


def test_delf_passes_image_in_unit_range(tiny_model, textured_image):
    features = make_extractor("delf", model=tiny_model).extract(textured_image)
    y, x = features.locations[0].astype(int)
    assert features.scores[0] == pytest.approx(textured_image[y, x].mean() / 255.0, abs=1e-5)


def test_delf_max_feature_num_is_honoured(tiny_model, textured_image):
    extractor = make_extractor("delf", model=tiny_model, max_feature_num=10)
    features = extractor.extract(textured_image)
    assert len(features) == 10 and features.descriptors.shape == (10, 40)
    assert extractor.params()["max_feature_num"] == 10


def test_delf_is_deterministic(tiny_model, textured_image):
    extractor = make_extractor("delf", model=tiny_model)
    first, second = extractor.extract(textured_image), extractor.extract(textured_image)
    np.testing.assert_array_equal(first.descriptors, second.descriptors)
    np.testing.assert_array_equal(first.locations, second.locations)


def test_delf_verifier_matches_image_with_itself(tiny_model, textured_image, tmp_path):
    verifier = Verifier(VerifySettings("delf", model=tiny_model), cache_dir=tmp_path / "cache")
    result = verifier.verify(textured_image, textured_image.copy())
    assert verifier.extracted == 1  # same pixels, same key
    assert result.num_features_a == result.num_features_b == 64
    assert result.num_inliers >= 60
    np.testing.assert_allclose(result.transform, np.eye(3), atol=1e-3)
    again = Verifier(VerifySettings("delf", model=tiny_model), cache_dir=tmp_path / "cache")
    again.features_of(textured_image)
    assert again.extracted == 0


def test_delf_fingerprint_follows_model_content(tiny_model, tmp_path):
    base = fingerprint(make_extractor("delf", model=tiny_model))
    assert base == fingerprint(make_extractor("delf", model=tiny_model))
    other = _save(tmp_path / "other", seed=1)
    assert fingerprint(make_extractor("delf", model=other)) != base
    assert fingerprint(make_extractor("delf", model=tiny_model, max_feature_num=10)) != base
    verifier_a = Verifier(VerifySettings("delf", model=tiny_model))
    verifier_b = Verifier(VerifySettings("delf", model=other))
    assert verifier_a.features_fingerprint != verifier_b.features_fingerprint


def test_delf_fingerprint_changes_when_directory_is_overwritten(tmp_path):
    path = tmp_path / "model"
    _save(path, seed=0)
    before = fingerprint(make_extractor("delf", model=str(path)))
    import shutil

    shutil.rmtree(path)
    _save(path, seed=2)  # same path, new weights
    assert fingerprint(make_extractor("delf", model=str(path))) != before


def test_delf_missing_model_dir_raises_model_load_error(tmp_path, textured_image, capsys):
    handle = str(tmp_path / "no-such-model")
    with pytest.raises(ModelLoadError) as info:
        make_extractor("delf", model=handle)
    message = str(info.value)
    assert handle in message
    assert "TFHUB_CACHE_DIR" in message and "--model" in message
    with pytest.raises(ModelLoadError):
        Verifier(VerifySettings("delf", model=handle))
    photo = tmp_path / "a.png"  # the command: one line, exit 2
    Image.fromarray(textured_image).save(photo)
    assert cli.main(["verify", str(photo), str(photo), "--features", "delf", "--model", handle, "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("delfverify: error: ") and handle in err and "--model" in err


def test_delf_dir_without_default_signature_raises_model_load_error(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "plain"))
    with pytest.raises(ModelLoadError, match="plain"):
        make_extractor("delf", model=str(tmp_path / "plain"))


@pytest.mark.parametrize(
    "kwargs, name", [({"max_feature_num": 0}, "max_feature_num"), ({"image_scales": ()}, "image_scales"),
                     ({"image_scales": (1.0, -0.5)}, "image_scales")]
)
def test_delf_invalid_options_raise_value_error(tiny_model, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_extractor("delf", model=tiny_model, **kwargs)


def test_delf_without_features_gives_empty_features_with_shapes(tiny_model, textured_image):
    from delfverify.extractors import make_extractor

    features = make_extractor("delf", model=tiny_model, score_threshold=1e7).extract(textured_image)
    assert len(features) == 0
    assert features.locations.shape == (0, 2) and features.descriptors.shape == (0, 40)


# --- one model load per process ------------------------------------------------------------------------------------


def _count_loads(monkeypatch) -> list[str]:
    """The handles of the models loaded from now on, in this process (whose model cache starts empty)."""
    loads = []
    load = delf_module._load_signature
    monkeypatch.setattr(delf_module, "_loaded", {})
    monkeypatch.setattr(delf_module, "_load_signature", lambda handle: loads.append(handle) or load(handle))
    return loads


def test_delf_model_is_loaded_once_per_process(tiny_model, textured_image, tmp_path, monkeypatch):
    """Extractors, verifiers, many pairs, and what worker processes do (an extractor pickled to them, verifiers
    rebuilt from settings for each new spec): one load."""
    loads = _count_loads(monkeypatch)
    extractors = [make_extractor("delf", model=tiny_model) for _ in range(3)]
    verifier = Verifier(VerifySettings("delf", model=tiny_model), cache_dir=tmp_path / "cache")
    for shift in range(3):
        assert verifier.verify(textured_image, np.roll(textured_image, 5 * shift, axis=1)).num_features_a == 64
    travelled = pickle.loads(pickle.dumps(extractors[0]))
    assert travelled._signature is None and len(travelled.extract(textured_image)) == 64
    for _ in range(2):
        rebuilt = Verifier(pickle.loads(pickle.dumps(verifier.settings)), cache_dir=verifier.cache_dir)
        assert len(rebuilt.extractor.extract(textured_image)) == 64
    assert loads == [tiny_model]


def test_delf_model_is_loaded_once_across_commands(tiny_model, textured_image, tmp_path, monkeypatch, capsys):
    loads = _count_loads(monkeypatch)
    paths = []
    for shift in (0, 7):
        paths.append(tmp_path / f"{shift}.png")
        Image.fromarray(np.roll(textured_image, shift, axis=0)).save(paths[-1])
    for _ in range(2):
        assert cli.main(["verify", *map(str, paths), "--features", "delf", "--model", tiny_model, "--no-cache",
                         "-q"]) == 0
    assert capsys.readouterr().out.count("inliers of") == 2
    assert loads == [tiny_model]


def test_delf_new_model_in_the_same_folder_is_loaded_again(tmp_path, textured_image, monkeypatch):
    """The loaded models are kept by content, not by path; a failed load is not kept."""
    loads = _count_loads(monkeypatch)
    path = str(tmp_path / "model")
    _save(path, seed=0)
    before = make_extractor("delf", model=path).extract(textured_image)
    import shutil

    shutil.rmtree(path)
    with pytest.raises(ModelLoadError):
        make_extractor("delf", model=path)
    _save(path, seed=2)
    after = make_extractor("delf", model=path).extract(textured_image)
    assert not np.allclose(before.descriptors, after.descriptors)
    assert loads == [path, path, path]
    make_extractor("delf", model=path)
    assert len(loads) == 3


# --- GPU memory growth ---------------------------------------------------------------------------------------------


class _Device:
    def __init__(self, name: str):
        self.name = name
        self.device_type = "GPU"


def test_delf_asks_memory_growth_for_every_gpu(monkeypatch):
    import tensorflow as tf

    gpus = [_Device("/physical_device:GPU:0"), _Device("/physical_device:GPU:1")]
    calls = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda gpu, on: calls.append((gpu.name, on)))
    assert delf_module._allow_memory_growth(tf) == (gpus, [])
    assert calls == [("/physical_device:GPU:0", True), ("/physical_device:GPU:1", True)]


def test_delf_memory_growth_refused_is_logged_not_raised(monkeypatch, caplog):
    """TensorFlow already initialised (or virtual devices set): each refusal is a debug message, not a failure."""
    import tensorflow as tf

    gpus = [_Device("/physical_device:GPU:0"), _Device("/physical_device:GPU:1")]

    def refuse(gpu, on):
        if gpu.name.endswith("1"):
            raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", refuse)
    monkeypatch.setattr(delf_module, "_tensorflow_ready", False)
    with caplog.at_level("DEBUG", logger="delfverify.extractors.delf"):
        assert delf_module._tensorflow() is tf
        assert delf_module._tensorflow() is tf  # once per process
    messages = [r.getMessage() for r in caplog.records if r.name == "delfverify.extractors.delf"]
    assert messages == [
        f"TensorFlow {tf.__version__}: GPU memory growth asked for ['/physical_device:GPU:0', '/physical_device:GPU:1']",
        ("TensorFlow refused memory growth for /physical_device:GPU:1 (Physical devices cannot be modified after "
         "being initialized)"),
    ]


def test_delf_memory_growth_with_the_real_tensorflow_never_raises(tiny_model):
    """Here TensorFlow is initialised already (the model is loaded): every GPU, if any, is set or refused."""
    import tensorflow as tf

    make_extractor("delf", model=tiny_model)
    gpus, refused = delf_module._allow_memory_growth(tf)
    assert len(refused) <= len(gpus) == len(tf.config.list_physical_devices("GPU"))
