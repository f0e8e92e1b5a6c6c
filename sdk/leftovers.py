"""Crash leftovers: temporary names that say who wrote them, and finding those whose writer is gone.

A save streams into a temporary file and renames it into place. A writer killed half way
(SIGKILL, OOM killer, power loss) leaves that file behind; a remote store's
:meth:`~alphazoo.ObjectStore.get_file_path` leaves its staging folder in the temporary
directory. Their names carry a *writer token*::

    folder stores   <folder>/.<name>.az-<host>-<boot>-<pid>-<start>-<n>.tmp
    fsspec stores   <root>/.alphazoo-tmp/az-<host>-<boot>-<pid>-<start>-<n>
    staging         $TMPDIR/alphazoo-staged-az-<host>-<boot>-<pid>-<start>-<n>-<random>

``host`` hashes the host name (and pid namespace, so containers sharing a volume do not judge
each other's processes), ``boot`` the kernel's boot id (Linux), ``pid`` and ``start``
(the process's start time in clock ticks after boot, Linux) name the process, so a recycled
pid is not mistaken for the writer. A writer is

- ``alive`` when it is this process, or runs on this host and boot with that pid and start;
- ``dead`` when it ran on this host in an earlier boot, or its pid is gone or now names a
  process that started at another time;
- ``unknown`` when it ran on another host (a shared S3 bucket or network folder), or the name
  predates writer tokens: such leftovers are removed only when the caller says how old is
  too old (``older_than`` seconds).

Liveness is checked when a store is first used (its first listing) and by
:meth:`~alphazoo.ObjectStore.fsck` / ``alphazoo store fsck``, never on the save path. Until
they are removed, leftovers count against the store's limits (:class:`~alphazoo.StoreUsage`'s
``temp_files`` and ``temp_bytes``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FsckReport",
    "Leftover",
    "Writer",
    "STAGING_PREFIX",
    "new_token",
    "temp_file_name",
    "temp_writer",
    "writer_dead",
    "writer_state",
    "staging_leftovers",
    "host_identity",
    "REMOTE_TMP_DIR",
    "remote_entry",
    "boot_identity",
]

#: The folder of an fsspec store (memory://, S3) that its writes' temporary objects go to.
REMOTE_TMP_DIR = ".alphazoo-tmp"
#: Folder name prefix of get_file_path's staging copies in the temporary directory.
STAGING_PREFIX = "alphazoo-staged-"
_TOKEN = r"az-([0-9a-f]{8})-([0-9a-f]{6})-([0-9a-f]+)-([0-9a-f]+)-[0-9a-f]+"
_TEMP_FILE = re.compile(rf"\.(?:.+)\.(?:{_TOKEN})\.tmp")
_BARE_TOKEN = re.compile(_TOKEN)
_STAGING = re.compile(rf"{re.escape(STAGING_PREFIX)}{_TOKEN}-.+")
# Names written before tokens existed: a uuid4 hex where the token now is.
_LEGACY_FILE = re.compile(r"\.(?:.+)\.[0-9a-f]{32}\.tmp")
_LEGACY_BARE = re.compile(r"[0-9a-f]{32}")
_LEGACY_STAGING = re.compile(rf"{re.escape(STAGING_PREFIX)}[a-z0-9_]{{8}}")

_counter = itertools.count()
_own: tuple[int, str] | None = None  # (pid, token prefix): recomputed after a fork


@dataclass(frozen=True)
class Writer:
    """Who wrote a temporary file, as its name says (None fields: not recorded)."""

    host: str | None
    boot: str | None
    pid: int | None
    start: int | None


@dataclass(frozen=True)
class Leftover:
    """One temporary file or staging folder.

    ``where`` is the path relative to the store's root (temporary files) or the absolute
    path of a staging folder; ``state`` is ``alive``, ``dead`` or ``unknown`` (see the module
    docstring); ``gone`` says whether it counts as abandoned under the ``older_than`` asked
    for; ``removed`` whether this run deleted it.
    """

    where: str
    bytes: int
    state: str
    age_seconds: float | None
    gone: bool
    removed: bool = False


@dataclass(frozen=True)
class FsckReport:
    """What :meth:`ObjectStore.fsck` found: every leftover, and which were removed."""

    url: str
    leftovers: tuple[Leftover, ...]

    @property
    def gone(self) -> tuple[Leftover, ...]:
        """The leftovers whose writer is gone (removed when fsck ran with ``remove=True``)."""
        return tuple(item for item in self.leftovers if item.gone)

    @property
    def removed(self) -> tuple[Leftover, ...]:
        """The leftovers this run deleted."""
        return tuple(item for item in self.leftovers if item.removed)

    @property
    def kept(self) -> tuple[Leftover, ...]:
        """The leftovers left in place (writer alive or unknown, or a dry run)."""
        return tuple(item for item in self.leftovers if not item.removed)


def new_token() -> str:
    """A name unique to this write: this process's identity plus a per-process counter."""
    global _own
    pid = os.getpid()
    if _own is None or _own[0] != pid:
        start = _start_ticks(pid)
        _own = (pid, f"az-{_host_hash()}-{_boot_hash()}-{pid:x}-{start or 0:x}")
    return f"{_own[1]}-{next(_counter):x}"


def temp_file_name(name: str) -> str:
    """The hidden name a folder store writes ``name`` under before renaming it into place."""
    return f".{name}.{new_token()}.tmp"


def temp_writer(name: str) -> Writer | None:
    """The writer named by a temporary file or staging folder name, or None when ``name`` is
    not one of alphazoo's temporary names (legacy names give a Writer of unknowns)."""
    for pattern in (_TEMP_FILE, _STAGING, _BARE_TOKEN):
        match = pattern.fullmatch(name)
        if match:
            host, boot, pid, start = match.groups()
            return Writer(host, boot, int(pid, 16), int(start, 16) or None)
    if any(p.fullmatch(name) for p in (_LEGACY_FILE, _LEGACY_STAGING, _LEGACY_BARE)):
        return Writer(None, None, None, None)
    return None


def remote_entry(relative: str) -> bool | None:
    """What a file at ``relative`` in an fsspec store is: True for a write's temporary
    object, False for a possible object, None for a hidden file that is neither."""
    parts = relative.split("/")
    if len(parts) == 2 and parts[0] == REMOTE_TMP_DIR and temp_writer(parts[1]):
        return True
    if any(part.startswith(".") for part in parts):
        return None
    return False


def writer_state(writer: Writer) -> str:
    """``alive``, ``dead`` or ``unknown`` for the process that wrote a temporary name."""
    if writer.host is None or writer.pid is None or writer.host != _host_hash():
        return "unknown"
    own_boot = _boot_hash()
    if writer.boot != own_boot and own_boot != "000000" and writer.boot != "000000":
        return "dead"  # written before this host last booted
    if writer.pid == os.getpid():
        return "alive"
    start = _start_ticks(writer.pid)
    if start is not None:
        # /proc answered: the pid runs, and it is the writer only if it started when it did.
        return "alive" if writer.start in (None, start) else "dead"
    try:
        os.kill(writer.pid, 0)  # signal 0: existence check only, nothing is delivered
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        return "alive"  # a process of another user holds the pid
    except OSError:
        return "unknown"
    # The pid exists but /proc could not say when it started: on Linux that means the process
    # exited between the two checks; elsewhere the writer cannot be told from a newcomer.
    return "dead" if os.path.isdir("/proc/self") else "alive"


def is_gone(state: str, age_seconds: float | None, older_than: float | None) -> bool:
    """Whether a leftover counts as abandoned: its writer is dead, or it is unknown and older
    than ``older_than`` seconds (never, when ``older_than`` is None)."""
    if state == "dead":
        return True
    return (state == "unknown" and older_than is not None and age_seconds is not None
            and age_seconds >= older_than)


def staging_leftovers(*, remove: bool, older_than: float | None = None,
                      temp_dir: str | None = None) -> list[Leftover]:
    """get_file_path staging folders in the temporary directory, removing the abandoned ones
    when ``remove`` is true. Folders of live writers (this process's own included) stay."""
    folder = temp_dir or tempfile.gettempdir()
    found: list[Leftover] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(STAGING_PREFIX):
            continue
        writer = temp_writer(entry.name)
        try:
            if writer is None or not entry.is_dir(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        state = writer_state(writer)
        gone = is_gone(state, age, older_than)
        size = _tree_size(entry.path)
        removed = False
        if gone and remove:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed = not os.path.lexists(entry.path)
        found.append(Leftover(entry.path, size, state, age, gone, removed))
    return found


# -- this process and host ----------------------------------------------------------------------
_HOST: str | None = None
_BOOT: str | None = None


def _host_hash() -> str:
    # The pid namespace is part of the "host": containers that share a host name and a
    # volume see different processes under the same pid, so they must not judge each other.
    global _HOST
    if _HOST is None:
        try:
            namespace = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            namespace = ""
        identity = f"{socket.gethostname()}|{namespace}"
        _HOST = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return _HOST


def _boot_hash() -> str:
    # After a reboot every pid is reused; the boot id tells an old writer from a new process.
    global _BOOT
    if _BOOT is None:
        try:
            boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            _BOOT = hashlib.sha256(boot_id.encode()).hexdigest()[:6]
        except OSError:
            _BOOT = "000000"
    return _BOOT


def host_identity() -> str:
    """This host (and pid namespace), hashed: what writer tokens record as ``host``."""
    return _host_hash()


def boot_identity() -> str:
    """This host's current boot, hashed ("000000" where the platform cannot say)."""
    return _boot_hash()


def _start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks after boot (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(fields[19])  # field 22 of proc(5)
    except (IndexError, ValueError):
        return None


def _tree_size(path: str) -> int:
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def writer_dead(path: str) -> bool:
    """Whether the writer of temporary file ``path`` (a store path) is known to be dead."""
    writer = temp_writer(path.rsplit("/", 1)[-1])
    return writer is not None and writer_state(writer) == "dead"
