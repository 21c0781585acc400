"""The manifests directory: the directory reader and its parse cache, and the source that
keeps the store equal to the directory and watches it.

The watcher tests use a real temporary directory and real inotify (through watchfiles) and
wait on conditions with a deadline; they never sleep a fixed time or assert on durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from test_manifests import names, service

from service_loadbalancer.kube.objects import KNOWN_KINDS, ObjectKey
from service_loadbalancer.model import Problem
from service_loadbalancer.sources.directory import load_directory
from service_loadbalancer.sources.files import SOURCE_NAME, ManifestSource
from service_loadbalancer.store import Store

# --------------------------------------------------------------------------- load_directory


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_load_directory_reads_recursively_in_path_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", service("b"))
    write(tmp_path / "a" / "z.yml", service("az"))
    write(
        tmp_path / "a.json",
        json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "aj"}}),
    )
    write(tmp_path / "notes.txt", "apiVersion: v1\nkind: Nonsense\n")
    objects, problems = load_directory(tmp_path)
    assert problems == []
    assert [o["metadata"]["name"] for o in objects] == ["az", "aj", "b"]


def test_duplicates_first_by_path_wins(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service("web", port=1))
    write(tmp_path / "b.yaml", service("web", port=2))
    write(tmp_path / "c.yaml", service("web", namespace="other", port=3))
    objects, problems = load_directory(tmp_path)
    assert [(o["metadata"]["namespace"], o["spec"]["ports"][0]["port"]) for o in objects] == [
        ("default", 1),
        ("other", 3),
    ]
    (problem,) = problems
    assert problem.subject == ObjectKey("File", "", str(tmp_path / "b.yaml"))
    assert str(tmp_path / "a.yaml") in problem.reason
    assert "Service default/web" in problem.reason


def test_duplicate_within_one_file(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", service("web", port=1) + "---\n" + service("web", port=2))
    objects, problems = load_directory(tmp_path)
    assert [o["spec"]["ports"][0]["port"] for o in objects] == [1]
    (problem,) = problems
    assert "earlier in this file" in problem.reason


@pytest.mark.parametrize(
    "relative",
    [
        ".hidden.yaml",
        ".git/config.yaml",
        ".#web.yaml",
        "#web.yaml#",
        "web.yaml~",
        "web.yaml.swp",
        "web.yaml___jb_tmp___",
        "..2024_01_01/web.yaml",
    ],
)
def test_hidden_and_editor_files_are_skipped(tmp_path: Path, relative: str) -> None:
    write(tmp_path / relative, "this: [is not read\n")
    write(tmp_path / "ok.yaml", service("ok"))
    objects, problems = load_directory(tmp_path)
    assert problems == []
    assert names(objects) == [("Service", "default", "ok")]


def test_non_utf8_file_is_a_problem(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", b"kind: Service\nname: caf\xe9\n")
    write(tmp_path / "ok.yaml", service("ok"))
    objects, problems = load_directory(tmp_path)
    assert names(objects) == [("Service", "default", "ok")]
    assert problems == [
        Problem(ObjectKey("File", "", str(bad)), "not UTF-8 (byte 0xe9 at offset 23)")
    ]


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    write(tmp_path / "bom.yaml", b"\xef\xbb\xbf" + service("bom").encode())
    objects, problems = load_directory(tmp_path)
    assert (names(objects), problems) == ([("Service", "default", "bom")], [])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.yaml", service("s"))
    secret.chmod(0)
    _, problems = load_directory(tmp_path)
    assert problems == [
        Problem(ObjectKey("File", "", str(secret)), "cannot read: Permission denied")
    ]


def test_fifo_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    _, problems = load_directory(tmp_path)
    assert problems == [
        Problem(ObjectKey("File", "", str(tmp_path / "pipe.yaml")), "not a regular file")
    ]


def test_broken_symlink_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    _, problems = load_directory(tmp_path)
    assert problems == [
        Problem(
            ObjectKey("File", "", str(tmp_path / "gone.yaml")),
            "cannot read: No such file or directory",
        )
    ]


def test_symlinked_directory_loop_is_read_once(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "a.yaml", service("a"))
    (tmp_path / "sub" / "again").symlink_to(tmp_path)
    objects, problems = load_directory(tmp_path)
    assert (names(objects), problems) == ([("Service", "default", "a")], [])


def test_missing_directory_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert load_directory(missing) == (
        [],
        [Problem(ObjectKey("File", "", str(missing)), "directory does not exist")],
    )
    file = write(tmp_path / "file.yaml", service("a"))
    assert load_directory(file) == (
        [],
        [Problem(ObjectKey("File", "", str(file)), "is not a directory")],
    )


# --------------------------------------------------------------------------- ManifestSource.load


def new_store() -> Store:
    return Store(KNOWN_KINDS)


def test_load_makes_the_store_ready_and_reports_change(tmp_path: Path) -> None:
    store = new_store()
    source = ManifestSource(tmp_path, store)
    assert source.load() is True  # empty directory: every kind listed, nothing else
    assert store.ready
    assert store.snapshot().objects == {}
    assert source.load() is False

    write(tmp_path / "a.yaml", service("a"))
    version = store.version
    assert source.load() is True
    assert store.version > version
    assert source.load() is False

    (tmp_path / "a.yaml").unlink()
    assert source.load() is True
    assert store.snapshot().objects == {}


def test_load_puts_problems_in_the_store_until_fixed(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "kind: [\n")
    store = new_store()
    source = ManifestSource(tmp_path, store, logger=logging.getLogger("test.files"))
    source.load()
    assert source.load() is False  # the same problem again is no change
    problems = store.snapshot().source_problems
    assert [p.subject.name for p in problems] == [str(tmp_path / "bad.yaml")]

    write(tmp_path / "bad.yaml", service("fixed"))
    assert source.load() is True
    assert store.snapshot().source_problems == ()


def test_missing_directory_keeps_objects(tmp_path: Path) -> None:
    directory = tmp_path / "manifests"
    store = new_store()
    source = ManifestSource(directory, store)
    assert source.load() is True  # the problem
    assert not store.ready  # nothing was listed: render nothing rather than an empty config
    assert [p.reason for p in store.snapshot().source_problems] == ["directory does not exist"]

    write(directory / "a.yaml", service("a"))
    assert source.load() is True
    assert store.ready
    assert store.snapshot().source_problems == ()

    shutil.rmtree(directory)  # a mount that went away: keep serving what we had
    assert source.load() is True
    snapshot = store.snapshot()
    assert set(snapshot.objects) == {ObjectKey("Service", "default", "a")}
    assert [p.reason for p in snapshot.source_problems] == ["directory does not exist"]

    directory.mkdir()  # an existing, empty directory: its files are gone
    assert source.load() is True
    assert store.snapshot().objects == {}


# --------------------------------------------------------------------------- ManifestSource.run


async def eventually(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Wait until `condition()` holds; fail after `within` seconds (a deadline, not a sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(source: ManifestSource) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop=stop), name="manifest-source")
    try:
        yield stop
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


def service_names(store: Store) -> dict[str, Any]:
    """name -> first port of every Service in the store."""
    return {
        o["metadata"]["name"]: o["spec"]["ports"][0]["port"]
        for o in store.snapshot().of_kind("Service")
    }


def problem_files(store: Store) -> set[str]:
    return {p.subject.name for p in store.snapshot().source_problems}


@pytest.mark.parametrize("poll", [False, True], ids=["watch", "poll"])
async def test_run_follows_create_edit_delete_and_broken_files(tmp_path: Path, poll: bool) -> None:
    store = new_store()
    async with running(ManifestSource(tmp_path, store, poll=poll)):
        await eventually(lambda: store.ready)

        write(tmp_path / "web.yaml", service("web", port=80))
        await eventually(lambda: service_names(store) == {"web": 80})

        write(tmp_path / "web.yaml", service("web", port=8080))
        await eventually(lambda: service_names(store) == {"web": 8080})

        write(tmp_path / "sub" / "api.yaml", service("api", port=81))
        await eventually(lambda: service_names(store) == {"web": 8080, "api": 81})

        (tmp_path / "web.yaml").unlink()
        await eventually(lambda: service_names(store) == {"api": 81})

        broken = write(tmp_path / "broken.yaml", "kind: [Service\n")
        await eventually(lambda: problem_files(store) == {str(broken)})
        assert service_names(store) == {"api": 81}

        broken.unlink()
        await eventually(lambda: problem_files(store) == set())
        assert service_names(store) == {"api": 81}


async def test_run_waits_for_a_missing_directory(tmp_path: Path) -> None:
    directory = tmp_path / "later"
    store = new_store()
    async with running(ManifestSource(directory, store)):
        await eventually(lambda: problem_files(store) == {str(directory)})
        assert not store.ready
        write(directory / "web.yaml", service("web"))
        await eventually(lambda: service_names(store) == {"web": 80})
        assert problem_files(store) == set()


async def test_run_follows_a_replaced_directory(tmp_path: Path) -> None:
    directory = tmp_path / "manifests"
    write(directory / "old.yaml", service("old"))
    store = new_store()
    async with running(ManifestSource(directory, store)):
        await eventually(lambda: service_names(store) == {"old": 80})
        (directory / "old.yaml").unlink()
        directory.rmdir()
        await eventually(lambda: problem_files(store) == {str(directory)})
        write(directory / "new.yaml", service("new"))
        await eventually(lambda: service_names(store) == {"new": 80})
        write(directory / "newer.yaml", service("newer"))  # the new directory is watched
        await eventually(lambda: service_names(store) == {"new": 80, "newer": 80})


async def test_run_follows_a_configmap_volume(tmp_path: Path) -> None:
    """Kubelet's layout: file -> ..data/file, ..data -> ..<timestamp>, swapped by rename."""
    write(tmp_path / "..v1" / "svc.yaml", service("web", port=1))
    (tmp_path / "..data").symlink_to("..v1")
    (tmp_path / "svc.yaml").symlink_to("..data/svc.yaml")
    store = new_store()
    async with running(ManifestSource(tmp_path, store)):
        await eventually(lambda: service_names(store) == {"web": 1})
        write(tmp_path / "..v2" / "svc.yaml", service("web", port=2))
        (tmp_path / "..data_tmp").symlink_to("..v2")
        (tmp_path / "..data_tmp").replace(tmp_path / "..data")
        await eventually(lambda: service_names(store) == {"web": 2})


async def test_run_returns_when_stopped_before_start(tmp_path: Path) -> None:
    stop = asyncio.Event()
    stop.set()
    store = new_store()
    async with asyncio.timeout(10):
        await ManifestSource(tmp_path, store).run(stop=stop)
    assert store.ready


async def test_cancelling_run_leaves_the_callers_stop_event_alone(tmp_path: Path) -> None:
    store = new_store()
    stop = asyncio.Event()
    task = asyncio.create_task(ManifestSource(tmp_path, store).run(stop=stop))
    await eventually(lambda: store.ready)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(10):
            await task
    assert not stop.is_set()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("1", True),
        ("true", True),
        ("false", False),
        ("Disabled", False),
    ],
)
def test_polling_follows_watchfiles_switch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("WATCHFILES_FORCE_POLLING", raising=False)
    else:
        monkeypatch.setenv("WATCHFILES_FORCE_POLLING", value)
    source = ManifestSource(tmp_path, new_store())
    assert source.polling is expected
    assert ManifestSource(tmp_path, new_store(), poll=not expected).polling is not expected


def test_source_name() -> None:
    assert SOURCE_NAME == "files"


def test_settled_unchanged_files_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose signature had settled when it was read is not read again while the
    signature stays; a change (new size or times) is read."""
    for name in ("a", "b", "c"):
        write(tmp_path / f"{name}.yaml", service(name))
    store = new_store()
    source = ManifestSource(tmp_path, store)
    real_now = time.time()
    # Everything on disk looks 10 s old: settled.
    monkeypatch.setattr(time, "time", lambda: real_now + 10)
    reads: list[str] = []
    real_read = Path.read_bytes

    def counting_read(self: Path) -> bytes:
        reads.append(self.name)
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", counting_read)
    source.load()
    assert sorted(reads) == ["a.yaml", "b.yaml", "c.yaml"]
    reads.clear()
    source.load()
    assert reads == []
    write(tmp_path / "b.yaml", service("b", port=81))
    source.load()
    assert reads == ["b.yaml"]
    assert service_names(store)["b"] == 81


def test_racy_files_are_read_every_time(tmp_path: Path) -> None:
    """Just written (within the clock tick of a possible second write): always read, so
    two same-size writes in quick succession are both seen."""
    write(tmp_path / "a.yaml", service("a", port=81))
    store = new_store()
    source = ManifestSource(tmp_path, store)
    source.load()
    write(tmp_path / "a.yaml", service("a", port=82))
    source.load()
    assert service_names(store)["a"] == 82
