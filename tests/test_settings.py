"""delfverify.settings: each setting declared once, checked once, and the command line's flags mapped onto them."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert not RunSettings().parallel and RunSettings(workers=2).parallel
    assert RunSettings(scheduler="tcp://x:8786").parallel


# --- a Dask scheduler's address is checked when the settings are built (issue #19) ------------------------------

_GOOD_HOSTS = ["localhost", "10.0.0.1", "sched-1.example.org", "[::1]", "[fe80::1]", "node_7"]


@st.composite
def _addresses(draw):
    """Addresses of every shape, and whether they are valid (known by construction)."""
    scheme = draw(st.sampled_from(["tcp://", "tls://", "ws://", "wss://", "", "inproc://", "ucx://", "udp://", "TCP://",
                                   "tcp:/", "://"]))
    host = draw(st.sampled_from([*_GOOD_HOSTS, "", "::1", "-bad", "a..b", "[zz]", "[::1", "host name", "ex@mple",
                                 "caf\u00e9"]))
    port = draw(st.one_of(st.integers(1, 65535).map(str),
                          st.sampled_from(["0", "65536", "-1", "x", "", "99999999999999999999", "\u0661", "+1"])))
    colon = port != "" or draw(st.booleans())
    suffix = draw(st.sampled_from(["", "", "", "/", "/path", "?q=1", " ", "#x", "\n"]))
    address = f"{scheme}{host}{':' if colon else ''}{port}{suffix}"
    valid = (scheme in ("tcp://", "tls://", "ws://", "wss://", "") and host in _GOOD_HOSTS and port.isascii()
             and port.isdigit() and 1 <= int(port) <= 65535 and suffix == "")
    return address, valid


@settings(max_examples=300, deadline=None)
@given(_addresses())
def test_scheduler_addresses_of_every_shape_are_accepted_exactly_when_valid(drawn):
    address, valid = drawn
    if valid:
        assert RunSettings(scheduler=address).scheduler == address
        return
    with pytest.raises(SettingsError) as info:
        RunSettings(scheduler=address)
    assert info.value.setting == "scheduler" and info.value.value == address
    assert str(info.value).startswith("scheduler must be a Dask scheduler address such as tcp://host:8786 (scheme tcp, "
                                      "tls, ws, wss; port 1 to 65535) or a distributed.Client; here ")


@pytest.mark.parametrize("address, problem", [
    ("foo", "no port"), ("tcp://", "no host"),
    ("inproc://x", ("scheme 'inproc' is not one of tcp, tls, ws, wss: an in-process scheduler is given by its "
                    "distributed.Client")),
    ("tcp://h:0", "port '0' is not a number from 1 to 65535"),
    ("tcp://h:1/x", "it has more than host:port after the scheme"),
])
def test_the_command_line_names_the_scheduler_option_before_any_work(tmp_path, capsys, address, problem):
    from delfverify import cli

    cache = tmp_path / "cache"
    status = cli.main(["extract", "ids.csv", "--images", str(tmp_path), "--scheduler", address, "--cache-dir",
                       str(cache), "-q"])
    assert status == 2 and not cache.exists()
    assert capsys.readouterr().err.splitlines() == [(
        f"delfverify: error: --scheduler must be a Dask scheduler address such as tcp://host:8786 (scheme tcp, tls, "
        f"ws, wss; port 1 to 65535) or a distributed.Client; here {problem}, got {address!r}")]
