"""DELF: the TF-Hub module ``google/delf/1`` (or any SavedModel with its ``default`` signature).

TensorFlow is imported here only, when a DELF extractor is created, so the rest of delfverify starts fast.

The model is loaded from, in order of preference:

- a local directory holding the unpacked module or a SavedModel (``model="/path/to/delf"``), which is how to
  run offline: download ``https://tfhub.dev/google/delf/1?tf-hub-format=compressed`` once on a machine with
  internet, unpack the tarball, copy the folder;
- a TF-Hub handle (default ``https://tfhub.dev/google/delf/1``), resolved through ``TFHUB_CACHE_DIR`` when
  that cache already holds it.

The signature takes ``image`` float32 [H, W, 3] in [0, 1], ``score_threshold``, ``image_scales`` and
``max_feature_num``, and returns ``locations`` [N, 2] as (y, x), ``descriptors`` [N, 40], ``scales`` [N] and
``attention`` [N].

The model is loaded once per process, whatever the number of ``DELF`` objects, pairs or commands: loaded
signatures are kept per model identity (the handle, and for a local directory a hash of its graph and variable
index), so extractors that workers rebuild from their settings, or several verifiers, share one. TensorFlow is set
up once per process when first needed: on a machine with GPUs it takes GPU memory as it needs it (memory growth)
rather than all of it, so that several worker processes can share a GPU (``TF_FORCE_GPU_ALLOW_GROWTH``, when set,
still decides). Under the ``delfverify`` command, what TensorFlow prints while it loads goes through the
command's logging (``delfverify.console``); used as a library, nothing is redirected.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..console import native_output_logged
from ..errors import DelfverifyError
from ..features import Features
from ..matching import MatchConfig
from ..verification import GEOMETRY_SETTINGS
from .base import Thresholds

logger = logging.getLogger(__name__)

DEFAULT_HANDLE = "https://tfhub.dev/google/delf/1"
DEFAULT_IMAGE_SCALES = (0.25, 0.3536, 0.5, 0.7071, 1.0, 1.4142, 2.0)


class ModelLoadError(DelfverifyError, RuntimeError):
    """The DELF model could not be loaded; the message names the handle and how to load it offline."""


class DELF:
    """DELF local features through TensorFlow.

    Parameters
    ----------
    model : str or os.PathLike
        TF-Hub handle or local directory of the module / SavedModel.
    score_threshold : float
        Attention score threshold (research: 100.0).
    image_scales : sequence of float
        Image pyramid scales (research: 0.25 ... 2.0).
    max_feature_num : int
        Most features per image (research: 1000).
    compact : bool
        Give the descriptors as float16 (80 bytes a keypoint in the feature store, 176 in all, instead of 160 and
        256): their distances differ from float32's by about 1e-3 (``benchmarks/bench_store.py --delf MODEL``
        measures what that does to inlier counts; real DELF weights cannot be downloaded here). ``False`` keeps
        float32, the reference.
    """

    name = "delf"
    dim = 40
    # The research's settings. The thresholds are not measured here (no DELF weights offline): the research saw
    # 6 inliers between unrelated photos and 39 for a true pair, and accepted at 10.
    match = MatchConfig(max_distance=0.8, ratio=None, mutual=False)
    ransac = GEOMETRY_SETTINGS["affine"]
    thresholds = {"affine": Thresholds(support=6, accept=10)}

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_HANDLE,
        score_threshold: float = 100.0,
        image_scales: Sequence[float] = DEFAULT_IMAGE_SCALES,
        max_feature_num: int = 1000,
        compact: bool = True,
    ):
        if not (isinstance(max_feature_num, int) and max_feature_num >= 1):
            raise ValueError(f"max_feature_num must be a positive integer, got {max_feature_num!r}")
        if not image_scales or any(not s > 0 for s in image_scales):
            raise ValueError(f"image_scales must be a non-empty list of positive numbers, got {image_scales!r}")
        self.model = str(model)
        self.score_threshold = float(score_threshold)
        self.image_scales = tuple(float(s) for s in image_scales)
        if not isinstance(compact, bool):
            raise ValueError(f"compact must be True or False, got {compact!r}")
        self.max_feature_num = max_feature_num
        self.compact = compact
        self._model_id = _model_identity(self.model)
        self._signature = loaded_signature(self.model, self._model_id)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_signature": None}  # a worker process gets the model when it first extracts

    def limit_threads(self, threads: int) -> None:
        tf = _tensorflow()
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already initialised in this process
            logger.debug("TensorFlow threads already set in this process")

    def params(self) -> dict[str, Any]:
        return {
            "model": self._model_id,
            "score_threshold": self.score_threshold,
            "image_scales": list(self.image_scales),
            "max_feature_num": self.max_feature_num,
            "descriptors": "float16" if self.compact else "float32",
        }

    def extract(self, image: np.ndarray) -> Features:
        import tensorflow as tf

        if self._signature is None:
            self._signature = loaded_signature(self.model, self._model_id)
        out = self._signature(
            image=tf.constant(image.astype(np.float32) / 255.0),
            score_threshold=tf.constant(self.score_threshold, tf.float32),
            image_scales=tf.constant(self.image_scales, tf.float32),
            max_feature_num=tf.constant(self.max_feature_num, tf.int32),
        )
        locations = np.asarray(out["locations"], np.float32).reshape(-1, 2)
        if len(locations) == 0:
            return Features.empty(self.dim, np.float16 if self.compact else np.float32)
        descriptors = np.asarray(out["descriptors"], np.float32).reshape(len(locations), -1)
        if descriptors.shape[1] != self.dim:
            raise ModelLoadError(f"{self.model}: model returned {descriptors.shape[1]}-D descriptors, expected {self.dim}")
        norms = np.linalg.norm(descriptors, axis=1, keepdims=True)
        return Features(
            locations=locations,
            descriptors=(descriptors / np.maximum(norms, 1e-12)).astype(np.float16 if self.compact else np.float32),
            scales=np.asarray(out["scales"], np.float32).reshape(-1),
            scores=np.asarray(out["attention"], np.float32).reshape(-1),
        )


def _offline_hint(handle: str) -> str:
    return (
        f"could not load the DELF model from {handle!r}. Offline, download "
        "https://tfhub.dev/google/delf/1?tf-hub-format=compressed on a machine with internet, unpack it into a "
        "folder and pass that folder with --model /path/to/delf (or DELF(model=...)), or set TFHUB_CACHE_DIR to "
        "a TF-Hub cache that already holds the module"
    )


#: Loaded signatures by (handle or absolute folder, model identity); at most this many kept (each holds a
#: model's weights).
MAX_LOADED_MODELS = 4
_loaded: dict[tuple[str, str], Any] = {}
_lock = threading.RLock()  # one load at a time: threads asking for the same model wait for the one load
_tensorflow_ready = False


def loaded_signature(handle: str, identity: str):
    """The ``default`` signature of the model at ``handle`` whose identity is ``identity``, loaded in this process
    the first time it is asked for and kept for later calls (the least recently used model is let go beyond
    ``MAX_LOADED_MODELS``).

    Raises
    ------
    ModelLoadError
        If the model cannot be loaded (nothing is kept: the next call tries again).
    """
    key = (os.path.abspath(handle) if Path(handle).is_dir() else handle, identity)
    with _lock:
        signature = _loaded.pop(key, None)
        if signature is None:
            signature = _load_signature(handle)
        _loaded[key] = signature  # last: most recently used
        while len(_loaded) > MAX_LOADED_MODELS:
            del _loaded[next(iter(_loaded))]
        return signature


def _tensorflow():
    """TensorFlow, imported and set up once per process: GPU memory growth (see the module's docstring).

    Raises
    ------
    ModelLoadError
        If TensorFlow is not installed.
    """
    global _tensorflow_ready
    with _lock:
        if _tensorflow_ready:
            import tensorflow as tf

            return tf
        try:
            with native_output_logged():
                import tensorflow as tf

                gpus, refused = _allow_memory_growth(tf)
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ModelLoadError(f"the delf extractor needs tensorflow and tensorflow-hub installed ({exc})") from None
        _tensorflow_ready = True
        logger.debug("TensorFlow %s: %s", tf.__version__, f"GPU memory growth asked for {[g.name for g in gpus]}"
                     if gpus else "no GPU visible, DELF runs on the CPU")
        for name, reason in refused:
            logger.debug("TensorFlow refused memory growth for %s (%s)", name, reason)
        return tf


def _allow_memory_growth(tf) -> tuple[list, list[tuple[str, str]]]:
    """Ask TensorFlow to take GPU memory as needed on every visible GPU; the GPUs, and those it refused with why
    (TensorFlow already initialised its devices in this process, or virtual devices were configured)."""
    gpus = tf.config.list_physical_devices("GPU")
    failures = []
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as exc:
            failures.append((gpu.name, str(exc)))
    return gpus, failures


def _load_signature(handle: str):
    tf = _tensorflow()
    try:
        import tensorflow_hub as hub
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ModelLoadError(f"the delf extractor needs tensorflow and tensorflow-hub installed ({exc})") from None
    try:
        with native_output_logged():
            if Path(handle).is_dir():
                module = tf.saved_model.load(handle)
            else:
                module = hub.load(handle)
        signature = module.signatures["default"]
    except Exception as exc:  # TF and hub raise many unrelated types for a missing or broken model.
        raise ModelLoadError(f"{_offline_hint(handle)} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    signature._delfverify_module = module  # keep the module (and its variables) alive with the signature
    logger.debug("loaded the DELF model %s", handle)
    return signature


def _model_identity(handle: str) -> str:
    """The handle, plus a hash of the graph and variable index for a local directory (weights can change)."""
    path = Path(handle)
    if not path.is_dir():
        return handle
    digest = hashlib.sha256()
    for name in ("saved_model.pb", "variables/variables.index"):
        file = path / name
        if file.is_file():
            digest.update(file.read_bytes())
    return f"local:{digest.hexdigest()[:16]}"
