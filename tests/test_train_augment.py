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


@pytest.mark.parametrize("names", [(), ("shift", "noise"), ("shift", "noise", "mask", "gain"), ("mask", "gain")])
def test_epoch_wide_augmentation_is_batch_by_batch_bit_for_bit(names):
    """The trainer's augmented_batches (a chunk of batches at a time) against augment() batch after batch on
    real kws-digits clips: the same bits, the same draws (the generator ends in the same state), for a whole
    epoch in one chunk, in chunks that split it, batch by batch, and with a short last batch."""
    import numpy as np

    from toolkit.data import load_dataset
    from toolkit.train import augment
    from toolkit.train.trainer import batches

    r = load_recipe(REPO_ROOT / "models" / "kws-digits.toml", ["frontend.type=none"])
    x = torch.from_numpy(load_dataset(r).x_train[:203])
    order = batches(len(x), 32, 5, 1)
    assert len(order[-1]) == 11
    for chunk in (8192, 70, 1):                               # samples: the whole epoch, 2-3 batches, one
        g1, g2 = augment.generator(5, 1), augment.generator(5, 1)
        want = [augment.augment(x[torch.from_numpy(b)], names, g1) for b in order]
        got = list(augment.augmented_batches(x, order, names, g2, chunk * x[0].numel() * 4))
        assert [t.shape for t in got] == [t.shape for t in want]
        assert all(torch.equal(a, b) for a, b in zip(got, want)), (names, chunk)
        assert torch.equal(torch.randn(4, generator=g1), torch.randn(4, generator=g2))
    if names:
        assert not torch.equal(got[0], x[torch.from_numpy(np.asarray(order[0]))])


@pytest.mark.parametrize("value, words", [('["shfit"]', "did you mean 'shift'"), ('["noise", "noise"]', "twice"),
                                          ('"noise"', "must be tuple")])
def test_bad_augment_is_one_error(value, words):
    with pytest.raises(EdgetkError, match=words):
        load_recipe(DIGITS, [f"train.augment={value}"])
