"""Models saved into an S3 store (moto's server on 127.0.0.1) and served from it, as a team
that outgrew one machine would: one process writes, another loads and predicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pytest
from _child import HANG_TIMEOUT

import alphazoo

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_models_round_trip_through_s3_in_another_process(moto_s3, tmp_path) -> None:
    url = f"s3://{moto_s3.bucket}/models-{uuid.uuid4().hex[:8]}"
    store = alphazoo.ObjectStore(url, storage_options=moto_s3.storage_options)
    zoo = alphazoo.Zoo(store)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] - X[:, 2] > 0).astype(int)
    model = zoo.train(zoo.build("random_forest", n_estimators=20), X, y)
    for fmt in ("skops", "onnx", "pickle"):
        zoo.save(model, f"spy/rf-{fmt}", format=fmt, sign_key="k" if fmt == "pickle" else None)
    assert store.keys() == ["spy/rf-onnx", "spy/rf-pickle", "spy/rf-skops"]
    np.save(tmp_path / "rows.npy", X[:50])

    child = """
import json, sys, numpy as np, alphazoo
url, options, rows = sys.argv[1], json.loads(sys.argv[2]), np.load(sys.argv[3])
zoo = alphazoo.Zoo(alphazoo.ObjectStore(url, storage_options=options))
out = {}
for fmt in ("skops", "onnx", "pickle"):
    model = zoo.load(f"spy/rf-{fmt}", sign_key="k" if fmt == "pickle" else None)
    out[fmt] = np.asarray(model.predict_proba(rows), dtype=float).tolist()
print(json.dumps(out))
"""
    result = subprocess.run(
        [sys.executable, "-c", child, url, json.dumps(moto_s3.storage_options),
         str(tmp_path / "rows.npy")],
        capture_output=True, text=True, timeout=HANG_TIMEOUT, env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    probabilities = json.loads(result.stdout)
    expected = model.predict_proba(X[:50])
    assert np.array_equal(np.asarray(probabilities["skops"]), expected)
    assert np.array_equal(np.asarray(probabilities["pickle"]), expected)
    assert np.allclose(np.asarray(probabilities["onnx"]), expected, atol=1e-5)


def test_tampered_bundle_in_s3_is_refused(moto_s3) -> None:
    url = f"s3://{moto_s3.bucket}/tamper-{uuid.uuid4().hex[:8]}"
    store = alphazoo.ObjectStore(url, storage_options=moto_s3.storage_options)
    zoo = alphazoo.Zoo(store)
    model = zoo.train(zoo.build("logistic_regression"), np.eye(4), [0, 1, 0, 1])
    zoo.save(model, "m")
    raw = bytearray(store.read_bytes("m"))
    raw[len(raw) // 2] ^= 0x01
    store.save_bytes("m", bytes(raw))
    with pytest.raises(alphazoo.BundleIntegrityError):
        zoo.load("m")
