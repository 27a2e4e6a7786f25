"""[train] augment (toolkit/train/augment.py): real training on image-digits and kws-digits clips."""
from __future__ import annotations

import pytest
import torch

from toolkit.errors import EdgetkError
from toolkit.paths import REPO_ROOT
from toolkit.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIGITS = REPO_ROOT / "models" / "image-digits.toml"
ALL = '["shift", "noise", "mask", "gain"]'


def _weights(run) -> dict[str, bytes]:
    from safetensors.numpy import load_file

    return {k: v.tobytes() for k, v in load_file(run / "model.safetensors").items()}


class Stop(Exception):
    pass


def test_augment_changes_training_is_deterministic_and_resumes_exactly(tmp_path):
    from toolkit.train import train

    plain = load_recipe(DIGITS, ["model.width=0.5", "train.epochs=4"])
    aug = load_recipe(DIGITS, ["model.width=0.5", "train.epochs=4", f"train.augment={ALL}"])
    assert plain.train.augment == () and aug.train.augment == ("shift", "noise", "mask", "gain")
    a, b, c = (train(r, tmp_path / n) for r, n in ((aug, "a"), (aug, "b"), (plain, "c")))
    assert _weights(a) == _weights(b)                     # run to run: the same bits
    assert _weights(a) != _weights(c)                     # the option changes training

    def stop_after_2(row):
        if row["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(aug, tmp_path / "d", progress=stop_after_2)
    train(aug, tmp_path / "d", resume=True)
    assert _weights(tmp_path / "d") == _weights(a)        # resumed after epoch 2: what the straight run drew


def test_augment_ops_on_a_real_clip():
    """Per-sample ops on kws-digits MFCC clips [1, 49 frames, 10]: time is the augmented axis."""
    from toolkit.data import load_dataset
    from toolkit.train import augment

    r = load_recipe(REPO_ROOT / "models" / "kws-digits.toml", ["frontend.type=none"])
    x = torch.from_numpy(load_dataset(r).x_train[:8])
    g = augment.generator(0, 0)
    p = augment.draw(("shift",), x.shape[1:], len(x), g)
    y = augment.apply(x, p, g)
    for i, s in enumerate(p["shift"].tolist()):          # frames move by s, zeros fill in
        if s >= 0:
            assert torch.equal(y[i, :, s:], x[i, :, :49 - s]) and not y[i, :, :s].any()
        else:
            assert torch.equal(y[i, :, :49 + s], x[i, :, -s:]) and not y[i, :, 49 + s:].any()
    m = augment.apply(x, augment.draw(("mask",), x.shape[1:], len(x), g), g)
    assert ((m == 0).all(-1).sum(-1) >= 6).all()          # one block of 49 // 8 = 6 frames zeroed per clip
    both = augment.augment(x, augment.NAMES, augment.generator(0, 1))
    assert torch.equal(both, augment.augment(x, augment.NAMES, augment.generator(0, 1)))
    assert not torch.equal(both, augment.augment(x, augment.NAMES, augment.generator(0, 2)))
    xs = x.clone().requires_grad_(True)                  # differentiable: dataset distillation's siamese use
    augment.apply(xs, augment.draw(augment.NAMES, x.shape[1:], 1, g), g).sum().backward()
    assert xs.grad is not None and xs.grad.abs().sum() > 0


@pytest.mark.parametrize("value, words", [('["shfit"]', "did you mean 'shift'"), ('["noise", "noise"]', "twice"),
                                          ('"noise"', "must be tuple")])
def test_bad_augment_is_one_error(value, words):
    with pytest.raises(EdgetkError, match=words):
        load_recipe(DIGITS, [f"train.augment={value}"])
