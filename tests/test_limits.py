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
