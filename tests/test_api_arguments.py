"""Every path argument of the Python API goes through one check (``delfverify.fileio.check_path``): ``str``, ``bytes``
and ``os.PathLike`` are paths, each parameter's own objects (tables, folders, policies) are taken as they are, and
anything else is an ``InputTypeError`` (a ``TypeError``) or an ``InputValueError`` (a ``ValueError``: an empty path,
a NUL character) naming the parameter, never an ``AttributeError`` or an error from ``pathlib``.

The matrix: every public entry point that takes a path x each of its path parameters x each kind of value. A path
given as ``bytes`` (or a ``pathlib.Path``, or as ``~/...`` under its home folder, making no ``~`` folder) gives what
its ``str`` gives; the entry point's other arguments make each call end quickly in its documented error, so that
both kinds of path are compared without running the pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

import delfverify
from delfverify.calibration import measure_null_table
from delfverify.errors import DelfverifyError, InputTypeError, InputValueError
from delfverify.extracting import extract
from delfverify.fileio import check_path
from delfverify.policy import PolicyError, load_policy

DATA = Path(__file__).resolve().parents[1] / "data"


def _entry_points(tmp: Path) -> dict[str, tuple]:
    """Per entry point: the call (taking keyword arguments), each path parameter with a value whose call ends in a
    documented error quickly, and which parameters take ``None`` (optional) or other values instead of a path."""
    bad_csv = tmp / "empty.csv"
    bad_csv.write_text("")  # every reader refuses it: an empty file
    missing = tmp / "missing.jpg"
    cache = {"cache_dir": tmp / "cache", "journal": tmp / "cache" / "journal.sqlite"}
    photos = {"gallery": DATA / "gallery.csv", "gallery_images": DATA / "gallery", "query_images": DATA / "queries"}
    verifier = delfverify.Verifier("rootsift")
    return {
        "rerank": (lambda **a: delfverify.rerank(**a),
                   {"predictions": bad_csv, **photos, "output": tmp / "o.csv", "details": tmp / "d.csv",
                    "report": tmp / "r.html", "truth": DATA / "truth.csv", "policy": tmp / "p.json", **cache},
                   {"output", "details", "report", "truth", "cache_dir", "journal"}, {"policy"}),
        "tune": (lambda **a: delfverify.tune(**a),
                 {"predictions": bad_csv, **photos, "truth": DATA / "truth.csv", "output": tmp / "p.json",
                  "plot": tmp / "p.png", **cache},
                 {"output", "plot", "cache_dir", "journal"}, {"predictions"}),
        "verify_pair": (lambda **a: delfverify.verify_pair(**a),
                        {"image_a": missing, "image_b": missing, "cache_dir": tmp / "cache",
                         "null_table": tmp / "null.json"}, {"cache_dir", "null_table"}, set()),
        "Verifier": (lambda **a: delfverify.Verifier(**a), {"cache_dir": tmp / "cache", "null_table": tmp / "n.json"},
                     {"cache_dir", "null_table"}, set()),
        "extract": (lambda **a: extract(**a), {"ids": bad_csv, "images": DATA / "queries", "cache_dir": tmp / "c"},
                    {"cache_dir"}, set()),
        "measure_null_table": (lambda **a: measure_null_table(verifier, **a),
                               {"gallery": bad_csv, "gallery_images": DATA / "gallery"}, set(), set()),
        "ImageDirectory": (lambda **a: delfverify.ImageDirectory(**a), {"root": tmp / "no-folder"}, set(), set()),
        "write_report": (lambda **a: delfverify.write_report(pd.DataFrame({"id": [1]}), **a),
                         {"path": tmp / "r.html", "truth": bad_csv}, {"truth"}, set()),
        **{name: (lambda reader=reader, **a: reader(**a), {"path": bad_csv}, set(), set())
           for name, reader in (("read_predictions", delfverify.read_predictions),
                                ("read_gallery", delfverify.read_gallery),
                                ("read_solution", delfverify.read_solution),
                                ("read_details", delfverify.read_details))},
    }


_PARAMETERS = [("rerank", p) for p in ("predictions", "gallery", "gallery_images", "query_images", "output",
                                       "details", "report", "truth", "policy", "cache_dir", "journal")] + \
              [("tune", p) for p in ("predictions", "gallery", "gallery_images", "query_images", "output", "plot",
                                     "truth", "cache_dir", "journal")] + \
              [("verify_pair", p) for p in ("image_a", "image_b", "cache_dir", "null_table")] + \
              [("Verifier", "cache_dir"), ("Verifier", "null_table"), ("extract", "ids"), ("extract", "images"),
               ("extract", "cache_dir"), ("measure_null_table", "gallery"), ("measure_null_table", "gallery_images"),
               ("ImageDirectory", "root"), ("write_report", "path"), ("write_report", "truth"),
               ("read_predictions", "path"), ("read_gallery", "path"), ("read_solution", "path"),
               ("read_details", "path")]
_KINDS = ["bytes", "Path", "home", "NUL character", "empty", "list", "Series", "dict", "int", "None"]
_IMAGES = {"image_a", "image_b"}  # bytes there are a file's content, not its name


def _outcome(call, arguments):
    try:
        call(**arguments)
    except Exception as exc:  # the outcome compared, whatever it is
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize("entry, parameter", _PARAMETERS, ids=[f"{e}-{p}" for e, p in _PARAMETERS])
def test_every_path_parameter_takes_paths_and_names_itself_for_anything_else(tmp_path, monkeypatch, entry,
                                                                            parameter, kind):
    call, arguments, optional, others = _entry_points(tmp_path)[entry]
    path = str(arguments[parameter])
    home = tmp_path if Path(path).is_relative_to(tmp_path) else DATA.parent  # "home": ~/... in a HOME holding it
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    value = {"bytes": path.encode(), "Path": Path(path), "home": f"~/{os.path.relpath(path, home)}",
             "NUL character": f"{path}\x00x", "empty": "", "list": [path], "Series": pd.Series([path]),
             "dict": {"name": path}, "int": 3, "None": None}[kind]
    with_str = _outcome(call, {**arguments, parameter: path})
    assert with_str is not None and issubclass(with_str[0], DelfverifyError), with_str  # a documented error
    got = _outcome(call, {**arguments, parameter: value})
    assert not (tmp_path / "~").exists()
    if kind in ("Path", "home") or (kind == "bytes" and parameter not in _IMAGES) or (kind == "list" and entry == "tune"
                                                                             and parameter == "predictions"):
        assert got == with_str  # a path of any accepted type (tune takes a list of predictions) is that path
    elif kind == "None" and parameter in optional:
        assert got is None or issubclass(got[0], DelfverifyError), got  # None: that argument left out
    elif kind == "dict" and parameter == "policy":
        assert issubclass(got[0], DelfverifyError) and got[0] is not InputTypeError  # a policy document: taken
    elif kind == "bytes":  # an image's bytes: its encoded content, taken
        assert issubclass(got[0], DelfverifyError) and got[0] not in (InputTypeError, InputValueError), got
    else:
        expected = InputValueError if kind in ("NUL character", "empty") else InputTypeError
        assert got is not None and got[0] is expected, got
        assert got[1].startswith(parameter), got  # names it (predictions[0] for tune's list)
        assert "\x00" not in got[1] and len(got[1].splitlines()) == 1
        if expected is InputTypeError:
            assert "a path (str" in got[1] and f"got {type(value).__name__}" in got[1]


@pytest.mark.parametrize("value, text", [("a", "a"), (b"caf\xc3\xa9", "café"), (b"\xff", "\udcff"),
                                         (Path("a/b/"), "a/b"), ("a/b/", "a/b/"), ("./x", "./x")])
def test_a_path_is_kept_as_written(value, text):
    """Never normalised: ``a/b/`` names a folder, and messages quote the path as the user wrote it."""
    assert check_path(value, "p") == text


def test_a_policy_given_as_a_dict_is_the_policy_its_file_gives(tmp_path):
    seed = load_policy("seed", "rootsift")
    document = seed.to_dict()
    (tmp_path / "p.json").write_text(__import__("json").dumps(document))
    assert load_policy(document, "rootsift") == load_policy(tmp_path / "p.json", "rootsift")
    for bad, needle in [({**document, "bands": [{"k": float("nan")}]}, "'NaN' is not a number"),
                        ({**document, "seed": {1, 2}}, "not a JSON document"), ({**document, "x": 1}, "x")]:
        with pytest.raises(PolicyError, match=r"^the policy document \(a dict\): ") as info:
            load_policy(bad, "rootsift")
        assert needle in str(info.value)
