"""``delfverify verify`` end to end on synthetic photos: output formats, plotting, the feature store, and
input errors reported as one line with exit status 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import make_textured_image
from delfverify import cli
from delfverify.extractors.rootsift import RootSIFT
from delfverify.settings import RunSettings
from delfverify.verifier import Verifier


@pytest.fixture
def photos(tmp_path, textured_image, warp):
    """Paths of a photo, its warped copy (same place) and an unrelated photo, as PNG files."""
    paths = {}
    for name, pixels in (
        ("a", textured_image),
        ("warped", warp(textured_image, size=(420, 320))),
        ("other", make_textured_image(seed=4)),
    ):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(paths[name])
    return paths


def _run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_verify_plain_output(capsys, photos):
    status, out, err = _run(capsys, "verify", photos["a"], photos["warped"], "--no-cache")
    assert status == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    inliers = int(lines[0].split()[0])
    assert inliers >= 30
    assert ": match (" in lines[0] and "rootsift" in lines[0]
    assert "Traceback" not in err


def test_cli_verify_plain_output_no_match(capsys, photos):
    status, out, _ = _run(capsys, "verify", photos["a"], photos["other"], "--no-cache")
    assert status == 0
    assert ": no match (" in out


def test_cli_verify_json(capsys, photos):
    status, out, _ = _run(capsys, "verify", photos["a"], photos["warped"], "--json", "--no-cache")
    assert status == 0
    doc = json.loads(out)
    for key in ("num_inliers", "num_putative", "num_features_a", "num_features_b"):
        assert isinstance(doc[key], int) and not isinstance(doc[key], bool), key
    assert doc["num_inliers"] >= 30
    assert doc["num_putative"] >= doc["num_inliers"]
    assert doc["num_features_a"] > 100 and doc["num_features_b"] > 100
    assert doc["match"] is True
    assert doc["accept_inliers"] == RootSIFT.thresholds["fundamental"].accept and doc["geometry"] == "fundamental"
    assert doc["image_a"] == str(photos["a"]) and doc["features"] == "rootsift"
    transform = np.array(doc["transform"])
    assert transform.shape == (3, 3)


def test_cli_verify_json_unrelated_pair_is_no_match(capsys, photos):
    status, out, _ = _run(capsys, "verify", photos["a"], photos["other"], "--json", "--no-cache")
    assert status == 0
    doc = json.loads(out)
    assert doc["match"] is False
    assert doc["num_inliers"] < RootSIFT.thresholds["fundamental"].accept


def test_cli_verify_engines_agree_on_decision(capsys, photos):
    docs = []
    for engine in ("opencv", "skimage"):
        status, out, _ = _run(capsys, "verify", photos["a"], photos["warped"], "--json", "--no-cache",
                              "--engine", engine, "--seed", "5", "--geometry", "affine")
        assert status == 0
        docs.append(json.loads(out))
    assert docs[0]["match"] == docs[1]["match"] is True
    assert docs[0]["num_putative"] == docs[1]["num_putative"]


def test_cli_skimage_engine_fits_the_affine_model_only(capsys, photos):
    status, _, err = _run(capsys, "verify", photos["a"], photos["warped"], "--engine", "skimage")
    assert status == 2 and "affine model only" in err and "--geometry" in err


def test_cli_verify_plot_writes_side_by_side_png(capsys, photos, tmp_path):
    plot = tmp_path / "plots" / "out.png"
    status, _, _ = _run(capsys, "verify", photos["a"], photos["warped"], "--plot", plot, "--no-cache")
    assert status == 0
    with Image.open(plot) as picture:
        assert picture.format == "PNG"
        assert picture.size == (400 + 420, 320)
        pixels = np.asarray(picture.convert("RGB"))
    green = (pixels[..., 1] == 255) & (pixels[..., 0] == 0) & (pixels[..., 2] == 0)
    assert green.sum() > 100  # inlier lines were drawn
    assert not list(plot.parent.glob("*.tmp"))


def test_cli_verify_cache_dir_stores_entries(capsys, photos, tmp_path):
    cache = tmp_path / "store"
    status, first, _ = _run(capsys, "verify", photos["a"], photos["warped"], "--cache-dir", cache)
    assert status == 0
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 2
    stamps = [p.stat().st_mtime_ns for p in entries]
    status, second, _ = _run(capsys, "verify", photos["a"], photos["warped"], "--cache-dir", cache)
    assert status == 0 and second == first
    assert [p.stat().st_mtime_ns for p in sorted(cache.rglob("*.npz"))] == stamps  # reused, not rewritten


def test_cli_verify_no_cache_writes_nothing(capsys, photos, tmp_path):
    status, _, _ = _run(capsys, "verify", photos["a"], photos["warped"], "--no-cache")
    assert status == 0
    assert not (tmp_path / "user-cache").exists()


def test_cli_verify_default_cache_is_used(capsys, photos, tmp_path):
    status, _, _ = _run(capsys, "verify", photos["a"], photos["warped"])
    assert status == 0
    assert len(list((tmp_path / "user-cache").rglob("*.npz"))) == 2


def test_cli_cache_options_are_exclusive(capsys, photos, tmp_path):
    status, _, err = _run(capsys, "verify", photos["a"], photos["a"], "--no-cache", "--cache-dir", tmp_path)
    _assert_one_line_error(status, err, "--cache-dir", "--no-cache")


def _assert_one_line_error(status, err, *needles):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("delfverify: error:")
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in err


def test_cli_verify_missing_file_is_one_line_error(capsys, photos, tmp_path):
    missing = tmp_path / "missing.jpg"
    status, out, err = _run(capsys, "verify", photos["a"], missing, "--no-cache")
    _assert_one_line_error(status, err, str(missing))
    assert out == ""


def test_cli_verify_text_file_is_one_line_error(capsys, photos, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo\n")
    status, _, err = _run(capsys, "verify", text, photos["a"], "--no-cache")
    _assert_one_line_error(status, err, str(text))


def test_cli_verify_error_leaves_no_plot(capsys, photos, tmp_path):
    plot = tmp_path / "never.png"
    status, _, err = _run(capsys, "verify", photos["a"], tmp_path / "gone.png", "--plot", plot, "--no-cache")
    _assert_one_line_error(status, err, "gone.png")
    assert not plot.exists()


def test_cli_verify_model_with_rootsift_is_one_line_error(capsys, photos):
    status, _, err = _run(capsys, "verify", photos["a"], photos["warped"], "--model", "/some/model", "--no-cache")
    _assert_one_line_error(status, err, "--model")


def test_cli_verify_bad_max_side_is_one_line_error(capsys, photos):
    status, _, err = _run(capsys, "verify", photos["a"], photos["warped"], "--max-side", "0", "--no-cache")
    _assert_one_line_error(status, err, "--max-side")


def test_cli_defaults_build_the_library_default_settings():
    args = cli.build_parser().parse_args(["verify", "a.jpg", "b.jpg"])
    from_cli = Verifier(cli.verify_settings(args))
    library = Verifier()
    assert from_cli.pair_fingerprint == library.pair_fingerprint  # extractor, max_side, matching and RANSAC
    assert (from_cli.match, from_cli.ransac, from_cli.max_side) == (library.match, library.ransac, library.max_side)
    assert args.no_cache is False and args.cache_dir is None
    args = cli.build_parser().parse_args(["rerank", "p.csv", "--gallery", "g.csv", "--gallery-images", "g",
                                          "--query-images", "q"])
    # The one documented difference: the command uses the machine's cores, the library one process.
    assert cli.run_settings(args, workers=1, progress=False) == RunSettings()


def _python(*args, **kwargs):
    env = {**os.environ, "DELFVERIFY_CACHE_DIR": kwargs.pop("cache", os.environ["DELFVERIFY_CACHE_DIR"])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, env=env, **kwargs)


def test_cli_module_help_runs():
    result = _python("-m", "delfverify.cli", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: delfverify" in result.stdout and "verify" in result.stdout
    result = _python("-m", "delfverify.cli", "verify", "--help")
    assert result.returncode == 0 and "--max-side" in result.stdout


@pytest.mark.skipif(shutil.which("delfverify") is None, reason="console script not installed")
def test_cli_console_script_help_runs():
    result = subprocess.run(["delfverify", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "verify" in result.stdout


def test_cli_import_does_not_import_tensorflow():
    result = _python("-c", "import delfverify.cli, sys; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    assert result.returncode == 0, result.stderr


def test_cli_rootsift_verify_does_not_import_tensorflow(photos, tmp_path):
    code = (
        "import sys; from delfverify.cli import main; "
        f"status = main(['verify', {str(photos['a'])!r}, {str(photos['warped'])!r}, '--no-cache', '--json']); "
        "assert status == 0; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["match"] is True


def test_cli_subprocess_error_exit_status(tmp_path):
    result = _python("-m", "delfverify.cli", "verify", str(tmp_path / "x.jpg"), str(tmp_path / "y.jpg"), "--no-cache")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"delfverify: error: {tmp_path / 'x.jpg'}: file not found"]


def test_cli_verify_matcher_methods_agree(photos, capsys):
    docs = []
    for matcher in ("auto", "brute", "kdtree"):
        assert cli.main(["verify", str(photos["a"]), str(photos["warped"]), "--json", "--no-cache",
                         "--matcher", matcher]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    assert docs[0] == docs[1] == docs[2] and docs[0]["num_inliers"] > 0
