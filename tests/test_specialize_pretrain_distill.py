"""Pretraining and distillation mechanics: few-label subsets, masks, reconstruction learning, KD loss, jobs."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from toolkit.errors import EdgetkError
from toolkit.nn import build_model
from toolkit.recipe import DistillConfig, PretrainConfig, load_recipe
from toolkit.specialize.distill import kd_loss
from toolkit.specialize.pretrain import encoder_features, few_labels, mask_spans, pretrain_encoder


pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def kws(shared):
    from toolkit.data import load_dataset

    r = load_recipe("models/kws-digits.toml", ["model.width=0.25", "train.batch_size=64"])
    return r, load_dataset(r)


def test_few_labels_is_stratified_and_seeded(kws):
    _, data = kws
    sub = few_labels(data, 10, seed=3)
    assert len(sub.y_train) == 100 and np.bincount(sub.y_train).tolist() == [10] * 10
    assert len(sub.groups_train) == 100 and len(sub.x_test) == len(data.x_test)
    assert np.array_equal(few_labels(data, 10, 3).x_train, sub.x_train)
    assert not np.array_equal(few_labels(data, 10, 4).x_train, sub.x_train)


def test_masks_hide_time_frames_only(kws):
    _, data = kws
    x = torch.from_numpy(data.x_train[:32])                                       # [32, 1, 49, 10]
    m = mask_spans(x, 0.5, 4, torch.Generator().manual_seed(0))
    frames = m[:, 0, :, 0]
    assert torch.equal(m, frames[:, None, :, None].expand_as(m))                  # whole frames
    # 7 spans of 4 frames at uniform starts in [0, 45]: P(frame hidden) ≈ 1 - (1 - 4/46)^7 = 0.47
    assert abs(float(frames.float().mean()) - (1 - (1 - 4 / 46) ** 7)) < 0.06     # measured 0.44
    for row in frames.int().tolist():                                            # hidden runs are whole spans
        runs = "".join(map(str, row)).replace("0", " ").split()
        assert runs and min(map(len, runs)) >= 4, row


def test_pretraining_learns_to_reconstruct(kws):
    recipe, data = kws
    torch.manual_seed(0)
    model = build_model(recipe, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = PretrainConfig(objective="bottleneck", epochs=4, lr=0.01, bottleneck=8)
    losses = pretrain_encoder(model, data.x_train[:256], cfg, recipe.train)
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0]
    assert not torch.equal(before["stem.0.weight"], model.state_dict()["stem.0.weight"])
    assert torch.equal(before["head.3.weight"], model.state_dict()["head.3.weight"])  # the head is not touched
    feats = encoder_features(model, torch.from_numpy(data.x_test[:4]))
    assert feats.shape == (4, 16)
    with pytest.raises(EdgetkError, match="objective"):
        pretrain_encoder(model, data.x_train[:64], dataclasses.replace(cfg, objective="jigsaw"), recipe.train)


def test_kd_loss_limits(kws):
    recipe, data = kws
    torch.manual_seed(0)
    teacher, student = build_model(recipe, data).eval(), build_model(recipe, data).eval()
    x, y = torch.from_numpy(data.x_train[:16]), torch.from_numpy(data.y_train[:16])
    hard = kd_loss(teacher, DistillConfig(alpha=0.0))(student, x, y)
    assert torch.allclose(hard, F.cross_entropy(student(x), y))
    assert float(kd_loss(teacher, DistillConfig(alpha=1.0))(teacher, x, y).detach()) == pytest.approx(0.0, abs=1e-6)
    soft = kd_loss(teacher, DistillConfig(alpha=1.0, temperature=2.0))(student, x, y)
    with torch.no_grad():  # T² · KL(teacher/T ‖ student/T), batch mean, written out by hand
        p_t, s_logits = F.softmax(teacher(x) / 2.0, dim=1), student(x)
        want = 4.0 * (p_t * (p_t.log() - F.log_softmax(s_logits / 2.0, dim=1))).sum(1).mean()
        ce = F.cross_entropy(s_logits, y)
    assert float(soft.detach()) == pytest.approx(float(want), rel=1e-5)
    mixed = kd_loss(teacher, DistillConfig(alpha=0.3, temperature=2.0))(student, x, y)
    assert float(mixed.detach()) == pytest.approx(0.3 * float(want) + 0.7 * float(ce), rel=1e-5)
    soft.backward()
    assert float(soft.detach()) > 0 and all(p.grad is None for p in teacher.parameters())
    with pytest.raises(EdgetkError, match="temperature"):
        kd_loss(teacher, DistillConfig(temperature=0.0))


def test_distill_and_pretrain_jobs_write_plain_runs(kws, tmp_path):
    from toolkit.specialize import run_recipe
    from toolkit.train import load_run

    from toolkit.cli import main

    recipe, _ = kws
    short = dataclasses.replace(recipe.train, epochs=1)
    teacher = tmp_path / "pre"                                     # `edgetk train` dispatches [pretrain] recipes
    assert main(["train", "models/kws-digits-pretrain.toml", "-o", str(teacher), "--set", "train.epochs=1",
                 "--set", "pretrain.epochs=1", "--set", "pretrain.labels_per_class=5", "--set", "model.width=0.25"]) == 0
    m = json.loads((teacher / "metrics.json").read_text())
    assert m["n_train"] == 50 and m["n_unlabelled"] == 2700 and len(m["pretrain_losses"]) == 1
    assert main(["train", "--resume", str(teacher)]) == 0        # a finished job resumes to the same result
    assert json.loads((teacher / "metrics.json").read_text()) == m
    kd = recipe.replace(train=short, extra={"distill": DistillConfig(teacher_run=str(teacher))})
    student = run_recipe(kd, tmp_path / "kd")
    run = load_run(student)                                        # a plain run folder: exports like any other
    assert run.metrics["teacher_run"] == str(teacher) and run.recipe.distill.teacher_run == str(teacher)
    with pytest.raises(EdgetkError, match="already holds a training run"):
        run_recipe(kd, student)                                    # a new job never overwrites one
    assert run_recipe(kd, student, resume=True) == student         # teacher reloaded, train() resumes at the end
    assert json.loads((student / "metrics.json").read_text()) == run.metrics
    with pytest.raises(EdgetkError, match="cannot be combined"):
        run_recipe(recipe.replace(extra={"distill": DistillConfig(), "pretrain": PretrainConfig()}), tmp_path / "x")
