"""``delfverify.console``: the command's verbosity decides what reaches the terminal, from delfverify and from the
libraries under it (TensorFlow's C++ and Python logs, absl, Pillow's warnings, OpenCV), in the command's process
and in the workers it starts; a program that uses the library keeps its terminal, logging and environment."""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from delfverify import RunSettings, Verifier, console
from delfverify.console import command_output, log_native_output, native_output_logged
from delfverify.execution import Runner
from delfverify.images import load_image

REPO = Path(__file__).resolve().parents[1]
ENV_NAMES = ("TF_CPP_MIN_LOG_LEVEL", "OPENCV_LOG_LEVEL", console._VERBOSITY_ENV)
LOGGERS = ("", "delfverify", *console.THIRD_PARTY_LOGGERS)


def _native(severity: str, source: str, message: str) -> str:
    """A line as TensorFlow's C++ log (absl) writes it."""
    return f"{severity}0000 00:00:1796193398.833254    7495 {source}] {message}\n"


BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
#: A line in no known format, what TensorFlow's import and GPU search print on a machine without a GPU (twice: two
#: libraries), a warning with a continuation line, an error, and a line of delfverify's own log written meanwhile.
NATIVE_TEXT = (
    "a line of no known format\n" + BANNER + _native("I", "port.cc:153", "oneDNN custom operations are on.")
    + _native("I", "cudart_stub.cc:31", "Could not find cuda drivers on your machine, GPU will not be used.")
    + BANNER + _native("I", "port.cc:153", "oneDNN custom operations are on.")
    + _native("I", "cudart_stub.cc:31", "Could not find cuda drivers on your machine, GPU will not be used.")
    + _native("E", "cuda_platform.cc:52", "failed call to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303)")
    + _native("W", "op.cc:7", "something to know") + "and its second line\n"
    + _native("E", "graph.cc:9", "something broke")
    + "WARNING delfverify.store: a message of delfverify's own\n"
)


def _state() -> dict:
    return {
        "env": {name: os.environ.get(name) for name in ENV_NAMES},
        "levels": {name: logging.getLogger(name).level for name in LOGGERS},
        "handlers": list(logging.getLogger().handlers),
        "showwarning": warnings.showwarning,
        "opencv": cv2.utils.logging.getLogLevel(),
        "active": console._active,
    }


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(console, "_no_cuda_driver", False)


@pytest.mark.parametrize("verbosity, own, others, tf_cpp, opencv, opencv_number", [
    ("quiet", logging.WARNING, logging.CRITICAL + 1, "3", "SILENT", 0),
    ("default", logging.INFO, logging.WARNING, "1", "WARNING", 3),
    ("verbose", logging.DEBUG, logging.DEBUG, "0", "DEBUG", 5),
])
def test_command_output_sets_the_levels_then_puts_everything_back(clean_env, verbosity, own, others, tf_cpp,
                                                                  opencv, opencv_number):
    before = _state()
    with command_output(verbosity):
        assert logging.getLogger("delfverify.extractors.delf").getEffectiveLevel() == own
        for name in ("tensorflow", "tensorflow.native", "absl", "PIL.TiffImagePlugin", "py.warnings", "matplotlib"):
            assert logging.getLogger(name).getEffectiveLevel() == others, name
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == tf_cpp and os.environ["OPENCV_LOG_LEVEL"] == opencv
        assert os.environ[console._VERBOSITY_ENV] == verbosity
        assert cv2.utils.logging.getLogLevel() == opencv_number
        assert warnings.showwarning is not before["showwarning"]
    assert _state() == before


def test_users_tensorflow_level_is_kept_at_the_default_verbosity_only(clean_env, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setenv("OPENCV_LOG_LEVEL", "ERROR")
    with command_output("default"):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2" and os.environ["OPENCV_LOG_LEVEL"] == "ERROR"
    with command_output("quiet"):
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3" and os.environ["OPENCV_LOG_LEVEL"] == "SILENT"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2" and os.environ["OPENCV_LOG_LEVEL"] == "ERROR"


def test_unknown_verbosity_is_refused():
    with pytest.raises(ValueError, match="verbosity"), command_output("loud"):
        pass


def _native_records(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == console.NATIVE_LOGGER]


@pytest.mark.parametrize("verbosity, expected", [
    ("quiet", []),
    ("default", [("WARNING", "something to know\nand its second line (op.cc:7)"),
                 ("ERROR", "something broke (graph.cc:9)")]),
    ("verbose", [
        ("DEBUG", BANNER.strip() + " (absl)"),
        ("INFO", "oneDNN custom operations are on. (port.cc:153)"),
        ("INFO", "Could not find cuda drivers on your machine, GPU will not be used. (cudart_stub.cc:31)"),
        ("INFO", "failed call to cuInit: INTERNAL: CUDA error: UNKNOWN ERROR (303) (cuda_platform.cc:52)"),
        ("WARNING", "something to know\nand its second line (op.cc:7)"),
        ("ERROR", "something broke (graph.cc:9)"),
    ]),
])
def test_native_output_is_logged_at_its_level(clean_env, caplog, capfd, verbosity, expected):
    """TensorFlow's C++ lines, written to file descriptor 2 as its libraries do, come out through logging: each
    repeated notice once, the cuInit failure of a machine without a CUDA driver as information; a line of no known
    format, and a line of Python's log (already filtered), are written back as they came, whatever the
    verbosity."""
    with command_output(verbosity), native_output_logged():
        os.write(2, NATIVE_TEXT.encode())
    assert _native_records(caplog) == expected
    own = "WARNING delfverify.store: a message of delfverify's own\n"
    assert capfd.readouterr().err == "a line of no known format\n" + own


def test_cuinit_failure_is_an_error_where_a_cuda_driver_was_found(clean_env, caplog):
    """A machine with a driver whose GPU cannot be used: the user needs to know (DELF then runs on the CPU)."""
    with command_output("default"):
        log_native_output(_native("E", "cuda_platform.cc:52", "failed call to cuInit: CUDA_ERROR_NO_DEVICE"))
    assert _native_records(caplog) == [("ERROR", "failed call to cuInit: CUDA_ERROR_NO_DEVICE (cuda_platform.cc:52)")]


def test_crash_output_and_errors_raised_meanwhile_are_not_lost(clean_env, caplog, capfd):
    with pytest.raises(OSError, match="model gone"), command_output("default"), native_output_logged():
        os.write(2, _native("E", "loader.cc:1", "cannot read the model").encode())
        raise OSError("model gone")
    assert _native_records(caplog) == [("ERROR", "cannot read the model (loader.cc:1)")]
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # file descriptor 2 is back


def test_library_use_redirects_nothing(capfd, caplog):
    """Outside the command, what is written to standard error meanwhile goes straight there, untouched."""
    assert console._active is None
    line = _native("E", "cuda_platform.cc:52", "failed call to cuInit")
    with native_output_logged():
        os.write(2, line.encode())
        assert capfd.readouterr().err == line
    assert _native_records(caplog) == []


def test_library_import_configures_nothing():
    code = (
        "import logging, os, warnings; show = warnings.showwarning; "
        "import delfverify.cli, delfverify.console, delfverify.execution, delfverify.extractors.delf; "
        "assert logging.getLogger().handlers == [] and logging.getLogger().level == logging.WARNING; "
        "assert all(logging.getLogger(n).level == logging.NOTSET for n in ('delfverify', 'tensorflow', 'PIL')); "
        "assert warnings.showwarning is show; "
        f"assert not set(os.environ) & set({ENV_NAMES!r}), os.environ"
    )
    env = {name: value for name, value in os.environ.items() if name not in ENV_NAMES}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                            check=False)
    assert result.returncode == 0, result.stderr


def _corrupt_exif_jpeg(path: Path) -> Path:
    """A photo that decodes, with an EXIF tag pointing past the end of the file: Pillow warns while reading it."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(buffer, "JPEG")
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x010E, 2, 50, 1000) + struct.pack("<I", 0)
    exif = b"Exif\x00\x00" + tiff
    data = buffer.getvalue()
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif + data[2:])
    return path


@pytest.mark.parametrize("verbosity, logged", [("quiet", False), ("default", True), ("verbose", True)])
def test_pillow_warnings_follow_the_verbosity(clean_env, caplog, capfd, tmp_path, verbosity, logged):
    photo = _corrupt_exif_jpeg(tmp_path / "photo.jpg")
    with command_output(verbosity):
        assert load_image(photo).shape == (40, 60, 3)
    records = [r for r in caplog.records if r.name == "py.warnings"]
    assert len(records) == logged
    if logged:
        assert records[0].levelname == "WARNING"
        assert re.fullmatch(r"UserWarning: Tag data larger than file\. Skipping tag 270 \(.*PIL.*\.py:\d+\)",
                            records[0].getMessage())
    assert capfd.readouterr().err == ""


def _worker_routing(verifier, batch) -> list:
    return [(os.environ.get("TF_CPP_MIN_LOG_LEVEL"), console._active is not None,
             logging.getLogger("tensorflow").getEffectiveLevel(), len(logging.getLogger().handlers))]


@pytest.mark.slow
def test_workers_route_as_the_command_that_started_them(clean_env, tmp_path):
    """Spawned workers inherit the command's environment and set its routing up; a library's workers do not."""
    verifier = Verifier("rootsift", cache_dir=tmp_path)
    with command_output("quiet"), Runner(verifier, RunSettings(workers=1), in_process=False) as runner:
        assert list(runner.map(_worker_routing, [[0]])) == [[("3", True, logging.CRITICAL + 1, 1)]]
    with Runner(verifier, RunSettings(workers=1), in_process=False) as runner:
        assert list(runner.map(_worker_routing, [[0]])) == [[(None, False, logging.WARNING, 0)]]


# --- the command with DELF, end to end (TensorFlow imported afresh in each process) -------------------------------

#: A line of TensorFlow's C++ log as it prints it, or absl's notice: none may reach the terminal unrouted.
RAW_NATIVE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)", re.MULTILINE)


@pytest.fixture(scope="session")
def delf_sized_model(tmp_path_factory) -> str:
    """The DELF-sized model of ``benchmarks/`` (DELF's architecture, random weights), built once per session in its
    own process (building seeds every random generator of the process)."""
    pytest.importorskip("tensorflow")
    out = tmp_path_factory.mktemp("delf-sized") / "model"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_delf_like_model.py"), str(out)], check=True,
                   capture_output=True, timeout=600)
    return str(out)


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory) -> list[str]:
    from conftest import make_textured_image

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for seed in (0, 1):
        paths.append(str(folder / f"{seed}.png"))
        Image.fromarray(make_textured_image(seed, height=120, width=160)).save(paths[-1])
    return paths


def _command(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name not in ENV_NAMES}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "delfverify.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600, check=False)


@pytest.mark.slow
def test_quiet_delf_verify_writes_nothing_to_standard_error(delf_sized_model, small_photos, tmp_path):
    result = _command("verify", *small_photos, "--features", "delf", "--model", delf_sized_model, "--no-cache", "-q",
                      cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == ""
    assert "inliers of" in result.stdout and "delf" in result.stdout


@pytest.mark.slow
def test_verbose_delf_verify_routes_tensorflow_through_logging(tiny_model, small_photos, tmp_path):
    """With -v everything, TensorFlow's start-up notices included, through the ``tensorflow.native`` logger, in the
    command's log format. (TensorFlow prints them whatever the model: a small one with DELF's signature keeps the
    test short. What each level lets through is tested in this process above, on the same lines.)"""
    result = _command("verify", *small_photos, "--features", "delf", "--model", tiny_model, "--no-cache", "-v",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not RAW_NATIVE.search(result.stderr), result.stderr
    assert "DEBUG tensorflow.native: WARNING: All log messages before absl" in result.stderr
    assert "DEBUG delfverify.extractors.delf: loaded the DELF model" in result.stderr
