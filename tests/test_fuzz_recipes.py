"""Short seeded fuzz campaigns for the recipe loader (issue #14); long runs: bench/fuzz_recipes.py.
Property: loaded (finite, in-range numbers that survive the TOML round trip) or one EdgetkError."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit import fuzz
from toolkit.errors import EdgetkError
from toolkit.recipe import recipe_from_dict

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def test_recipe_campaign(tmp_path):
    rep = fuzz.run_campaign("recipe", fuzz.recipe_seeds(), fuzz.mutate_recipe, fuzz.recipe_checker(tmp_path), n=1500,
                            seed=0, out_dir=tmp_path / "failures", suffix=".toml")
    assert not rep.failures, rep.summary()
    assert rep.accepted > 100 and rep.refused > 600, rep.summary()


VALUES = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                   st.text(max_size=8), st.lists(st.one_of(st.integers(-5, 5), st.floats()), max_size=3),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.none())
KEYS = st.sampled_from(fuzz._recipe_keys())


@SETTINGS
@given(fields=st.dictionaries(KEYS, VALUES, max_size=4))
def test_recipe_values_hypothesis(fields):
    raw = {"task": "t", "data": {"name": "digits"}, "model": {"arch": "resnet"}}
    for key, value in fields.items():
        section, name = key.split(".", 1)
        raw.setdefault(section, {})
        if isinstance(raw[section], dict):
            raw[section][name] = value
    try:
        recipe = recipe_from_dict(raw, source="fuzz.toml")
    except EdgetkError:
        return
    fuzz._recipe_invariants(recipe)


def test_recipe_bytes_hypothesis_non_utf8(tmp_path):
    check = fuzz.recipe_checker(tmp_path)
    seed = fuzz.recipe_seeds()[0]
    for k in range(50):
        data = fuzz.mutate_bytes(np.random.default_rng(k), seed)
        assert check(data) in ("accepted", "refused")
    assert check(seed + b"\nx = \xff\xfe\n") == "refused"
