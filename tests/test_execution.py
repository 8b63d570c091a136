"""``delfverify.execution``: parallel and distributed runs give exactly the serial results and extract each image
once; in-process runs use the caller's verifier; workers end with their parent, a worker killed mid-run is
replaced and its batch redone, and Dask waits (connection, no workers) are bounded."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from delfverify import RunSettings, Verifier, execution, measuring, rerank
from delfverify.execution import ImageItem, Runner, WorkerError, batched, default_workers, extract_batch
from delfverify.extractors import RootSIFT

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


def _rerank(cache_dir, **options):
    return rerank(DATA / "predictions.csv", gallery=DATA / "gallery.csv", gallery_images=DATA / "gallery",
                  query_images=DATA / "queries", cache_dir=cache_dir, **options)


@pytest.fixture(scope="module")
def serial(sample_run, tmp_path_factory):
    """The serial run's result (from a copy of the sample run's cache: every pair reused)."""
    return _rerank(sample_run.warm_cache(tmp_path_factory.mktemp("serial") / "cache"))


def _extract_but_die_once(verifier, items):
    """``extract_batch``, except that the first batch kills its worker (the marker file is named by the test)."""
    try:
        os.close(os.open(os.environ["DELFVERIFY_TEST_DIE_ONCE"], os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return extract_batch(verifier, items)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(default_workers() < 2, reason="two workers are capped to one in this process on one core")
def test_two_workers_give_the_serial_result_and_extract_each_image_once(serial, tmp_path, monkeypatch):
    """Two local worker processes from an empty cache, the extractor given as an object: it travels to the
    workers (pickled without OpenCV's detector). The first batch kills its worker: the batch is redone, and no
    photo is extracted twice."""
    marker = tmp_path / "died"
    monkeypatch.setenv("DELFVERIFY_TEST_DIE_ONCE", str(marker))  # the workers inherit it
    monkeypatch.setattr(measuring, "extract_batch", _extract_but_die_once)
    parallel = _rerank(tmp_path / "cache", workers=2, features=RootSIFT())
    assert marker.exists()  # a worker did die
    assert parallel.predictions.table.equals(serial.predictions.table)
    assert parallel.details.equals(serial.details)
    images = {i for ids in serial.details["gallery_ids"] for i in ids.split()} | set(
        serial.details.loc[serial.details["gallery_ids"] != "", "id"]
    )
    assert parallel.summary["features_extracted"] == len(images) == 26 + 15
    assert parallel.summary["pairs_computed"] == serial.summary["pairs_reused"] == 26 * 3
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == len(images)


def test_parallel_run_without_a_store_is_refused():
    with pytest.raises(ValueError, match="feature store"):
        Runner(Verifier("rootsift"), RunSettings(workers=2))


def test_in_process_runs_use_the_callers_verifier(tmp_path):
    verifier = Verifier("rootsift")
    items = [ImageItem(verifier.key(path), str(path)) for path in sorted((DATA / "gallery").glob("*.jpg"))[:2]]
    with Runner(verifier) as runner:
        results = [r for batch in runner.map(extract_batch, [items]) for r in batch]
    assert [extracted for _, _, extracted in results] == [True, True]
    assert verifier.extracted == 2 and all(verifier.has_features(item.key) for item in items)


def test_batched_covers_every_item_once():
    assert [list(b) for b in batched(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def test_more_workers_than_cores_are_capped_with_a_warning(tmp_path, caplog):
    from delfverify.execution import default_workers

    with caplog.at_level("WARNING", logger="delfverify.execution"):
        runner = Runner(Verifier("rootsift", cache_dir=tmp_path), RunSettings(workers=1000))
    assert runner.workers == default_workers()
    assert "1000 worker processes asked for" in caplog.text


def test_a_worker_takes_its_share_of_the_cores_for_blas(tmp_path):
    """Workers x BLAS threads stay within the cores: with as many workers as cores, one BLAS thread each."""
    code = (
        "from threadpoolctl import threadpool_info\n"
        "from delfverify.execution import WorkerSpec, _worker_verifier, default_workers\n"
        "from delfverify import Verifier\n"
        f"verifier = Verifier(cache_dir={str(tmp_path)!r})\n"
        "_worker_verifier(WorkerSpec('k', verifier.settings, str(verifier.cache_dir), default_workers()))\n"
        "print({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "{1}"


# --- workers end with their parent ------------------------------------------------------------------------------

_PARENT_SCRIPT = '''
import os, sys, time
from pathlib import Path


def stall(verifier, batch):
    Path(batch[0], str(os.getpid())).touch()  # this worker is running a batch
    time.sleep(600)


if __name__ == "__main__":
    mode, folder = sys.argv[1], sys.argv[2]
    if mode == "pool":  # delfverify's workers, busy with a batch each
        from delfverify import RunSettings, Verifier
        from delfverify.execution import Runner

        with Runner(Verifier("rootsift", cache_dir=folder), RunSettings(workers=2), in_process=False) as runner:
            list(runner.map(stall, [[folder], [folder]]))
    else:  # a child that only watches its parent, without the kernel's help (the portable fallback)
        import multiprocessing
        from delfverify.execution import _watch_parent

        child = multiprocessing.get_context("spawn").Process(target=_watch_parent, args=(os.getpid(), 0.05))
        child.start()
        Path(folder, str(child.pid)).touch()
        time.sleep(600)
'''


def _children(pid: int) -> set[int]:
    """Every process started by ``pid``, and theirs (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found | {grandchild for child in found for grandchild in _children(child)}


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (an ended process its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the processes")
@pytest.mark.parametrize("mode, started", [("pool", min(2, default_workers())), ("watch", 1)])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_end_when_their_parent_is_killed(tmp_path, mode, started, sig):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT_SCRIPT)
    busy = tmp_path / "busy"
    busy.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script), mode, str(busy)], env=env)
    try:
        assert _wait_until(lambda: len(list(busy.iterdir())) == started, 120), "the workers never started"
        children = _children(parent.pid)
        workers = {int(p.name) for p in busy.iterdir()}
        assert workers <= children  # with "pool", the children also include multiprocessing's resource tracker
        os.kill(parent.pid, sig)
        parent.wait(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert _wait_until(lambda: not any(_alive(pid) for pid in children), 60), \
        f"still running after their parent was killed: {sorted(pid for pid in children if _alive(pid))}"


# --- a worker that dies mid-run ---------------------------------------------------------------------------------

def _die_once(verifier, batch):
    """The first batch to get here kills its worker, as the out-of-memory killer would; the others return."""
    marker, value = batch
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return value
    os.kill(os.getpid(), signal.SIGKILL)


def _always_die(verifier, batch):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_replaced_and_its_batch_redone(tmp_path, caplog):
    marker = str(tmp_path / "died")
    with caplog.at_level(logging.WARNING, logger="delfverify.execution"), \
            Runner(Verifier("rootsift", cache_dir=tmp_path), RunSettings(workers=2), in_process=False) as runner:
        results = list(runner.map(_die_once, [(marker, value) for value in range(6)]))
    assert sorted(results) == list(range(6))  # every batch, the lost one redone, none twice
    assert Path(marker).exists() and runner.restarts == 1
    warnings = [r.getMessage() for r in caplog.records if "worker process died" in r.getMessage()]
    assert len(warnings) == 1 and re.fullmatch(
        r"a worker process died \(killed, e\.g\. by the out-of-memory killer\?\); starting new workers and redoing "
        r"its \d batch\(es\) \(restart 1 of at most 3\)", warnings[0])


@pytest.mark.slow
def test_workers_that_keep_dying_stop_the_run_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setattr(execution, "MAX_WORKER_RESTARTS", 1)
    with pytest.raises(WorkerError) as info, \
            Runner(Verifier("rootsift", cache_dir=tmp_path), RunSettings(workers=2), in_process=False) as runner:
        list(runner.map(_always_die, [[1], [2]]))
    assert str(info.value) == ("worker processes died 2 times in this run (killed, e.g. by the out-of-memory "
                               "killer?); the pairs verified so far are journaled: free memory, or run again with "
                               "fewer --workers or a smaller --max-side")


# --- Dask: bounded waits ------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _silent_port():
    """A TCP port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    threading.Thread(target=lambda: accepted.extend(iter(lambda: server.accept()[0], None)), daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
        for connection in accepted:
            connection.close()


def test_a_dask_scheduler_that_never_answers_is_an_error_within_the_connect_timeout(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(execution, "DASK_CONNECT_TIMEOUT", 1.0)
    with _silent_port() as port:
        address = f"tcp://127.0.0.1:{port}"
        with pytest.raises(WorkerError) as info:
            with Runner(Verifier("rootsift", cache_dir=tmp_path), RunSettings(scheduler=address)):
                pass
    assert str(info.value).startswith(f"cannot connect to the Dask scheduler at {address} within 1 s (")
    assert str(info.value).endswith("); check the address and that the scheduler runs")


@pytest.fixture
def dask_cluster():
    """An in-process Dask cluster (threads) without any worker, reached over TCP as a remote one is (an in-process
    cluster's own inproc:// address is given by its client instead)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster


def test_a_dask_cluster_without_workers_is_an_error_after_the_timeout(dask_cluster, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(execution, "DASK_NO_WORKERS_TIMEOUT", 1.0)
    verifier = Verifier("rootsift", cache_dir=tmp_path)
    items = [ImageItem(verifier.key(path), str(path)) for path in sorted((DATA / "gallery").glob("*.jpg"))[:1]]
    with pytest.raises(WorkerError) as info, Runner(verifier, RunSettings(scheduler=dask_cluster.scheduler_address)) as runner:
        list(runner.map(extract_batch, [items]))
    assert str(info.value) == (f"Dask scheduler {dask_cluster.scheduler_address}: no worker for 1 s while work was "
                               f"waiting; start workers (or find why they died) and run again: the pairs verified "
                               f"so far are journaled")
    assert any("has no worker; waiting up to 1 s" in r.getMessage() for r in caplog.records)


def test_a_dask_scheduler_given_by_address_runs_the_batches(dask_cluster, tmp_path):
    dask_cluster.scale(1)
    verifier = Verifier("rootsift", cache_dir=tmp_path)
    items = [ImageItem(verifier.key(path), str(path)) for path in sorted((DATA / "gallery").glob("*.jpg"))[:2]]
    with Runner(verifier, RunSettings(scheduler=dask_cluster.scheduler_address)) as runner:
        results = [r for batch in runner.map(extract_batch, [items[:1], items[1:]]) for r in batch]
    assert sorted(key for key, _, _ in results) == sorted(item.key for item in items)
    assert all(error == "" for _, error, _ in results)


@pytest.mark.slow
def test_a_batch_that_kills_its_dask_worker_is_an_error_naming_the_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster:
        with pytest.raises(WorkerError) as info, \
                Runner(Verifier("rootsift", cache_dir=tmp_path), RunSettings(scheduler=cluster.scheduler_address)) as runner:
            list(runner.map(_always_die, [[1]]))
    assert str(info.value).startswith(f"Dask scheduler {cluster.scheduler_address}: a batch killed the workers that "
                                      f"ran it (")
    assert str(info.value).endswith("); check the workers' memory and logs")


# --- a scheduler address is checked up front, and any failure to reach it is one line naming it (issue #19) -----

@pytest.mark.parametrize("address", ["foo", "tcp://", "inproc://x", "tcp://host:0", "tcp://host:99999",
                                     "tcp://host:8786/path", "udp://host:8786", "tcp://::1:8786", 5])
def test_a_bad_scheduler_address_is_refused_before_anything_connects(tmp_path, address):
    from delfverify.settings import SettingsError

    with pytest.raises(SettingsError, match="^scheduler must be a Dask scheduler address such as tcp://host:8786 "):
        RunSettings(scheduler=address)
    spec = RunSettings.__new__(RunSettings)  # settings that skipped the check still cannot reach Dask
    object.__setattr__(spec, "scheduler", address)
    object.__setattr__(spec, "workers", 1)
    with pytest.raises(WorkerError, match="^Dask scheduler "):
        Runner(Verifier("rootsift", cache_dir=tmp_path), spec).__enter__()


@pytest.mark.parametrize("address", ["tls://127.0.0.1:1", "tcp://127.0.0.1:1", "ws://127.0.0.1:1"])
def test_a_scheduler_that_cannot_be_reached_is_one_line_naming_it(tmp_path, monkeypatch, address):
    """tls:// without certificates ended in a TypeError from Dask's TLS connector."""
    pytest.importorskip("distributed")
    monkeypatch.setattr(execution, "DASK_CONNECT_TIMEOUT", 0.5)
    with pytest.raises(WorkerError) as info, Runner(Verifier("rootsift", cache_dir=tmp_path),
                                                    RunSettings(scheduler=address)):
        pass
    message = str(info.value)
    assert message.startswith(f"cannot connect to the Dask scheduler at {address} within 0.5 s (")
    assert "\n" not in message
    assert ("needs the client's certificates" in message) == address.startswith("tls://")
