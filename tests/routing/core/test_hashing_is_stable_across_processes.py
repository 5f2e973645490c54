"""A key's service is the same in another process with a different PYTHONHASHSEED."""

import json
import os
import subprocess
import sys
from pathlib import Path

from routing.core.features import featurize
from routing.core.hashing import HashRing, key_hash, stable_hash64
from routing.core.types import RouteRequest

ROOT = Path(__file__).resolve().parents[3]
IDS = [f"svc-{i}" for i in range(16)]
KEYS = [f"user-{i}" for i in range(200)] + ["", "ünïcode", "42"]

CHILD = """
import json, sys
from routing.core.features import featurize
from routing.core.hashing import HashRing, key_hash, stable_hash64
from routing.core.types import RouteRequest
ids, keys = json.loads(sys.stdin.read())
ring = HashRing(ids)
print(json.dumps({
    "owners": [ring.lookup(key_hash(k), [True] * len(ids))[0] for k in keys],
    "hashes": [stable_hash64(k) for k in keys],
    "features": featurize([RouteRequest("inference", capabilities=("gpu",), tokens=("a", "b"))])
        .tolist(),
}))
"""


def test_key_choices_hashes_and_features_match_a_process_with_another_hash_seed():
    ring = HashRing(IDS)
    here = {
        "owners": [ring.lookup(key_hash(k), [True] * len(IDS))[0] for k in KEYS],
        "hashes": [stable_hash64(k) for k in KEYS],
        "features": featurize(
            [RouteRequest("inference", capabilities=("gpu",), tokens=("a", "b"))]
        ).tolist(),
    }
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        done = subprocess.run(
            [sys.executable, "-c", CHILD],
            input=json.dumps([IDS, KEYS]),
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=True,
        )
        assert json.loads(done.stdout) == here


def test_choices_are_stable_across_calls():
    ring = HashRing(IDS)
    first = [ring.lookup(key_hash(k), [True] * 16) for k in KEYS]
    again = [HashRing(IDS).lookup(key_hash(k), [True] * 16) for k in KEYS]
    assert first == again
