"""Shared pytest fixtures. Each block below belongs to one part of the suite; append new
blocks rather than editing another block."""

from __future__ import annotations

# =============================================================================================
# Object store fixtures (used by test_keys.py, test_store.py, test_store_concurrency.py)
#
#   moto_s3       session: moto's S3 server on 127.0.0.1 with one bucket, dummy AWS credentials
#                 in the environment; skipped with a reason when moto/boto3/s3fs are missing.
#   store_target  parametrized over the three backends ("local", "memory", "s3"); a fresh,
#                 empty location per test, with make(**limits) -> ObjectStore and raw_files(),
#                 which lists every file really stored there (hidden temp/lock files too).
#   object_store  store_target.make() with the default limits.
# =============================================================================================
import contextlib
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import alphazoo


@dataclass(frozen=True)
class MotoS3:
    """A running moto S3 server and the bucket the tests write into."""

    endpoint_url: str
    bucket: str

    @property
    def storage_options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"},
        }


@pytest.fixture(scope="session")
def moto_s3() -> Any:
    """moto's S3 server for the whole session, stopped at the end."""
    try:
        import boto3
        import s3fs  # noqa: F401  (the store's S3 backend needs it)
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"S3 backend tests need moto[server], boto3 and s3fs "
                    f"(pip install -e '.[s3,test]'): {exc}")
    with pytest.MonkeyPatch.context() as mp:
        # Dummy credentials only: nothing may reach a real AWS account.
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SECURITY_TOKEN": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }.items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        no_proxy = ",".join(filter(None, ["127.0.0.1", "localhost", os.environ.get("NO_PROXY")]))
        mp.setenv("NO_PROXY", no_proxy)
        mp.setenv("no_proxy", no_proxy)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint_url = f"http://{host}:{port}"
            bucket = f"alphazoo-test-{uuid.uuid4().hex[:12]}"
            boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ).create_bucket(Bucket=bucket)
            yield MotoS3(endpoint_url, bucket)
        finally:
            server.stop()


@dataclass
class StoreTarget:
    """One empty store location on one backend."""

    kind: str  # "local", "memory" or "s3"
    location: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def make(self, **kwargs: Any) -> alphazoo.ObjectStore:
        """A new ObjectStore on this location (several may share it)."""
        if self.storage_options:
            kwargs.setdefault("storage_options", self.storage_options)
        return alphazoo.ObjectStore(self.location, **kwargs)

    def raw_files(self) -> set[str]:
        """Every file under the location, relative and including hidden ones."""
        if self.kind == "local":
            root = Path(self.location)
            return {
                (Path(folder) / name).relative_to(root).as_posix()
                for folder, _, names in os.walk(root)
                for name in names
            }
        return {path for path in self._fs_find() if path}

    def raw_dirs(self) -> set[str]:
        """Every folder under a local location (relative); remote stores have none."""
        if self.kind != "local":
            return set()
        root = Path(self.location)
        return {
            (Path(folder) / name).relative_to(root).as_posix()
            for folder, names, _ in os.walk(root)
            for name in names
        }

    def _fs_find(self) -> list[str]:
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.location, **self.storage_options)
        fs.invalidate_cache()
        root = root.rstrip("/")
        try:
            found = fs.find(root)
        except FileNotFoundError:
            return []
        return [path[len(root) + 1:] for path in found if path.startswith(root + "/")]

    def remove(self) -> None:
        """Delete everything at the location (the memory file system is process-wide)."""
        if self.kind == "local":
            return  # tmp_path is pytest's
        import fsspec

        fs, root = fsspec.core.url_to_fs(self.location, **self.storage_options)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(root, recursive=True)
        fs.invalidate_cache()


@pytest.fixture(
    params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)],
)
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A fresh, empty store location on each backend in turn."""
    kind = request.param
    if kind == "local":
        target = StoreTarget("local", str(tmp_path / "store"))
    elif kind == "memory":
        target = StoreTarget("memory", f"memory://alphazoo-test-{uuid.uuid4().hex}")
    else:
        s3: MotoS3 = request.getfixturevalue("moto_s3")
        target = StoreTarget(
            "s3", f"s3://{s3.bucket}/prefix-{uuid.uuid4().hex}", dict(s3.storage_options)
        )
    yield target
    target.remove()


@pytest.fixture
def object_store(store_target: StoreTarget) -> alphazoo.ObjectStore:
    """An empty ObjectStore with the default limits on each backend in turn."""
    return store_target.make()


# ============================== end of object store fixtures =================================


# =============================================================================================
# Model fixtures (used by test_bundle.py, test_trust.py and others)
#
#   _no_env_signing_key  autouse: a developer's $ALPHAZOO_SIGNING_KEY must not change results.
#   store                a folder ObjectStore in tmp_path.
#   zoo                  a Zoo (entry-point plugins discovered) over that store.
# =============================================================================================
@pytest.fixture(autouse=True)
def _no_env_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPHAZOO_SIGNING_KEY", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> alphazoo.ObjectStore:
    return alphazoo.ObjectStore(tmp_path / "store")


@pytest.fixture
def zoo(store: alphazoo.ObjectStore) -> alphazoo.Zoo:
    return alphazoo.Zoo(store)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test against moto's real S3 server is slow by nature (a server round trip per call),
    # whichever module it lives in: the fast lane (-m "not slow") leaves every one out.
    for item in items:
        if item.get_closest_marker("s3") is not None:
            item.add_marker(pytest.mark.slow)


# -- the one-file reader, exported with the real command and imported from the written file --
@pytest.fixture(scope="module")
def reader_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``alphazoo export-reader -o FILE`` run in a fresh process; the file's path."""
    import subprocess
    import sys

    from _child import HANG_TIMEOUT

    path = tmp_path_factory.mktemp("reader") / "alphazoo_reader.py"
    result = subprocess.run([sys.executable, "-m", "alphazoo.cli", "export-reader", "-o",
                             str(path)], capture_output=True, text=True, timeout=HANG_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def reader(reader_file: Path) -> Any:
    """The exported reader, imported from its file as a QuantConnect project would."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("alphazoo_reader_under_test", reader_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
