"""The JSON estimate of alphazoo.limits: it counts only when counting could refuse."""

from __future__ import annotations

import io

import pytest

from alphazoo.errors import BundleLimitError
from alphazoo.limits import LoadLimits, check_json_text

BOMB = b"[" + b"[]," * 10_000 + b"[]]"  # 30 KB of text, ~20,000 containers


def test_a_bracket_bomb_is_refused_by_its_count():
    # 101 bytes per byte of text could exceed 1 MiB: the containers are counted, and refused.
    with pytest.raises(BundleLimitError):
        check_json_text(BOMB, LoadLimits(max_bytes=1 << 20), "bomb.json")
    with pytest.raises(BundleLimitError):
        check_json_text(io.BytesIO(BOMB), LoadLimits(max_bytes=1 << 20), "bomb.json",
                        size=len(BOMB))


def test_text_that_cannot_reach_the_limit_is_not_counted():
    # Under 10 MiB even text of brackets alone (101 bytes each as Python objects) fits: the
    # same bomb passes without a count, from bytes and from a stream of declared size.
    limits = LoadLimits(max_bytes=10 << 20)
    check_json_text(BOMB, limits, "bomb.json")
    check_json_text(io.BytesIO(BOMB), limits, "bomb.json", size=len(BOMB))
    # A stream without a declared size is counted: its ~2.3 MB estimate passes too.
    check_json_text(io.BytesIO(BOMB), limits, "bomb.json")


def _npy(array) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_repeated_npy_header_is_checked_against_each_members_own_size_and_limits(tmp_path):
    # Headers are parsed once per distinct header (a forest repeats a few dozen), but what
    # a member holds and the load's limits are checked for every member.
    import zipfile

    import numpy as np

    from alphazoo.errors import BundleFormatError
    from alphazoo.limits import check_zip

    whole = _npy(np.zeros(1000))
    header_end = len(whole) - 8000

    def archive(*members: bytes) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as out:
            for i, member in enumerate(members):
                out.writestr(f"{i}.npy", member)
        return buffer.getvalue()

    path = tmp_path / "model.skops"
    check_zip(path, LoadLimits(), npy=True, data=archive(whole, whole))
    short = whole[:header_end + 100]  # the same header over 100 bytes of its 8,000
    with pytest.raises(BundleFormatError, match=r"1\.npy.*declares 8,000 bytes"):
        check_zip(path, LoadLimits(), npy=True, data=archive(whole, short))
    # The cached header's 8,000 bytes against a lower limit than the loads above had:
    with pytest.raises(BundleLimitError, match="0.npy"):
        check_zip(path, LoadLimits(max_bytes=5000), npy=True, data=archive(short))
