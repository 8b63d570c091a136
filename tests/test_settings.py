"""delfverify.settings: each setting declared once, checked once, and the command line's flags mapped onto them."""

from __future__ import annotations

import dataclasses

import pytest

from delfverify.extractors import RootSIFT
from delfverify.matching import MatchConfig
from delfverify.settings import RunSettings, SettingsError, VerifySettings, split_options
from delfverify.verification import GEOMETRY_SETTINGS


@pytest.mark.parametrize("kwargs, setting", [({"features": "surf"}, "features"),
                                             ({"features": object()}, "features"),
                                             ({"features": RootSIFT(), "model": "x"}, "model"),
                                             ({"features": "rootsift", "model": "x"}, "model"),
                                             ({"max_side": 0}, "max_side"),
                                             ({"max_side": True}, "max_side"),
                                             ({"match": {"ratio": 0.8}}, "match"),
                                             ({"ransac": "fundamental"}, "ransac")])
def test_verify_settings_refuse_bad_values_naming_the_setting(kwargs, setting):
    with pytest.raises(SettingsError, match=f"^{setting} must be ") as info:
        VerifySettings(**kwargs)
    assert info.value.setting == setting and isinstance(info.value, ValueError)


@pytest.mark.parametrize("kwargs, setting", [({"workers": 0}, "workers"), ({"workers": 1.5}, "workers"),
                                             ({"workers": True}, "workers"), ({"candidates": 0}, "candidates"),
                                             ({"on_missing": "drop"}, "on_missing"), ({"cache": "no"}, "cache"),
                                             ({"keep_candidates": 1}, "keep_candidates")])
def test_run_settings_refuse_bad_values_naming_the_setting(kwargs, setting):
    with pytest.raises(SettingsError, match=f"^{setting} must be ") as info:
        RunSettings(**kwargs)
    assert info.value.setting == setting


def test_from_options_lays_the_flags_over_the_extractors_own_settings():
    assert VerifySettings.from_options() == dataclasses.replace(VerifySettings(), match=RootSIFT.match,
                                                                ransac=RootSIFT.ransac)
    affine = VerifySettings.from_options(matcher="kdtree", geometry="affine", engine="skimage", seed=7)
    assert affine.match == MatchConfig(0.8, 0.8, True, "kdtree")
    assert affine.ransac == dataclasses.replace(GEOMETRY_SETTINGS["affine"], engine="skimage", seed=7)


@pytest.mark.parametrize("kwargs, setting", [({"matcher": "flann"}, "matcher"), ({"geometry": "similarity"}, "geometry"),
                                             ({"engine": "pydegensac"}, "engine"), ({"seed": -1}, "seed"),
                                             ({"engine": "skimage"}, "engine")])
def test_from_options_refuses_bad_flags_naming_them(kwargs, setting):
    with pytest.raises(SettingsError) as info:
        VerifySettings.from_options(**kwargs)
    assert info.value.setting == setting


def test_split_options_sorts_keywords_into_the_two_objects_and_refuses_others(tmp_path):
    verify, run = split_options({"max_side": 512, "workers": 2, "cache_dir": tmp_path},
                                run=RunSettings(candidates=3))
    assert verify == VerifySettings(max_side=512)
    assert run == RunSettings(workers=2, cache_dir=tmp_path, candidates=3)
    with pytest.raises(TypeError, match="unexpected keyword argument.*max_sides"):
        split_options({"max_sides": 512})


def test_the_store_folder_follows_the_cache_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("DELFVERIFY_CACHE_DIR", str(tmp_path / "user"))
    assert RunSettings().store_folder() == tmp_path / "user"
    assert RunSettings(cache_dir=tmp_path / "mine").store_folder() == tmp_path / "mine"
    assert RunSettings(cache=False).store_folder() is None
    assert not RunSettings().parallel and RunSettings(workers=2).parallel and RunSettings(scheduler="x").parallel
