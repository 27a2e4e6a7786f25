"""[train] kernel = "fused": the DS-CNN's training step as one C call (toolkit/native/train/dscnn_train.c).

Against autograd on the same nn.Module: the loss, every parameter's gradient and the BatchNorm running statistics
agree within float rounding, for each vector width the C code picks (8, 12, 16, 32 channels), other stem
geometries and a short last batch, on 1 and 2 threads (odd batches, a batch of 1: one thread gets no sample).
In the trainer: deterministic bit for bit, exact resume (1 and 2 threads), the same accuracy class as the torch
kernel on real FSDD clips, a forked child's own workers, no data race under ThreadSanitizer, and one clear error
for what it does not support.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from toolkit.errors import EdgetkError
from toolkit.paths import repo_dir
from toolkit.recipe import load_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread", "require_tools")
RECIPE = repo_dir("models") / "kws-digits-fleet-shared.toml"
TWO_SPEAKERS = 'data.groups=["george", "jackson"]'


@pytest.fixture(scope="module")
def require_tools():
    from conftest import require_tool

    require_tool("gcc", "apt-get install gcc (the fused kernel is built with the host compiler)")


def _autograd(model, x, y, smoothing):
    model.train()
    loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=smoothing)
    model.zero_grad(set_to_none=True)
    loss.backward()
    return float(loss.detach())


GEOMETRIES = [
    (16, ((10, 4), (2, 2), (5, 1)), (49, 10), 32, 0.0),    # the fleet's width-0.25 DS-CNN: one 16-lane vector
    (32, ((10, 4), (2, 2), (5, 1)), (49, 10), 7, 0.1),     # width 0.5, a short last batch, label smoothing
    (8, ((3, 3), (1, 1), (1, 1)), (20, 9), 5, 0.0),        # 8 lanes, another stem and input
    (12, ((5, 2), (2, 1), (0, 1)), (33, 6), 3, 0.2),       # 12 channels: 4-lane vectors, no padding in h
]


def _model(channels, stem):
    from toolkit.nn.dscnn import DSCNN, DSCNNConfig
    from toolkit.nn.layers import ConvBNReLU

    torch.manual_seed(channels)
    model = DSCNN(DSCNNConfig(n_classes=7, channels=channels, blocks=3))
    model.stem = ConvBNReLU(1, channels, *stem)
    with torch.no_grad():                              # not the init: BatchNorm affine and running stats in play
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("channels,stem,shape,n,smoothing", GEOMETRIES + [
    (16, ((10, 4), (2, 2), (5, 1)), (49, 10), 1, 0.1),     # one sample: on 2 threads, thread 0 has none
])
def test_fused_step_equals_autograd(channels, stem, shape, n, smoothing, threads):
    from toolkit.train.fused import FusedDSCNN

    model = _model(channels, stem)
    ref = copy.deepcopy(model)
    x, y = torch.randn(n, 1, *shape), torch.randint(0, 7, (n,))
    fused = FusedDSCNN(model, smoothing, threads=threads)
    assert fused.threads == threads
    for step in range(2):                              # the second step reuses the gradient tensors and workspace
        got, want = fused.step(x, y), _autograd(ref, x, y, smoothing)
        assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
        scale = max(float(p.grad.abs().max()) for p in ref.parameters())
        for (name, p), q in zip(ref.named_parameters(), model.parameters()):
            assert q.grad is not None and q.grad.shape == p.grad.shape
            assert float((p.grad - q.grad).abs().max()) <= 2e-5 * scale, (step, name)
        for (name, b), c in zip(ref.named_buffers(), model.buffers()):
            if b.is_floating_point():
                assert torch.allclose(b, c, rtol=1e-5, atol=1e-6), (step, name)
            else:
                assert torch.equal(b, c), (step, name)     # num_batches_tracked
        assert scale > 1e-3


def _steps(model, x, y, threads: int, steps: int = 3) -> list[bytes]:
    """The bits of the losses, gradients and BatchNorm buffers over `steps` fused steps of a copy of model."""
    from toolkit.train.fused import FusedDSCNN

    m = copy.deepcopy(model)
    f = FusedDSCNN(m, 0.1, threads=threads)
    out = []
    for _ in range(steps):
        out.append(torch.tensor(f.step(x, y)).numpy().tobytes())
        out += [g.numpy().tobytes() for g in f.grads] + [b.numpy().tobytes() for b in m.buffers()]
    return out


@pytest.mark.parametrize("channels,stem,shape,n,smoothing", GEOMETRIES)
def test_two_threads_are_deterministic(channels, stem, shape, n, smoothing):
    """2 threads: the same bits run to run (BatchNorm sums, loss and weight gradients combined in thread order);
    1 thread the same bits as 1 thread; a 32-sample batch on 2 threads rounds differently from 1 thread (the
    sums split differently: evidence that the step did run on two threads)."""
    model = _model(channels, stem)
    x, y = torch.randn(n, 1, *shape), torch.randint(0, 7, (n,))
    two = _steps(model, x, y, 2)
    assert _steps(model, x, y, 2) == two
    one = _steps(model, x, y, 1)
    assert _steps(model, x, y, 1) == one
    if n == 32:
        assert one != two


def test_fused_workers_in_a_forked_child():
    """A child forked after the parent's 2-thread steps has no workers of its own until its first step starts
    them: its step completes (no wait on the parent's threads) with the parent's bits."""
    import multiprocessing

    model = _model(16, ((10, 4), (2, 2), (5, 1)))
    x, y = torch.randn(9, 1, 49, 10), torch.randint(0, 7, (9,))
    want = _steps(model, x, y, 2, steps=1)
    queue = multiprocessing.get_context("fork").SimpleQueue()
    child = multiprocessing.get_context("fork").Process(target=lambda: queue.put(_steps(model, x, y, 2, steps=1)))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert queue.get() == want


TSAN_DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
long dscnn_work_floats(const int32_t *g, int32_t threads);
int dscnn_threads_ready(int32_t threads);
float dscnn_train_step(const int32_t *g, const float *fgeo, float *const *params, float *const *grads,
                       float *const *stats, int64_t *const *tracked, const float *x, const int64_t *y, float *work,
                       int32_t threads);
enum { C = 16, BLOCKS = 2, L = 1 + 2 * BLOCKS, K = 5, N = 7 };
int main(void)
{
    int32_t g[11] = {N, 20, 9, 3, 3, 1, 1, 1, 1, BLOCKS, K};
    float fgeo[3] = {0.1f, 1e-5f, 0.1f}, x[N * 20 * 9], *p[3 * L + 2], *gr[3 * L + 2], *stats[2 * L];
    int64_t y[N], *tracked[L];
    srand(1);
    for (int i = 0; i < 3 * L + 2; i++) {
        long size = i == 3 * L ? K * C : i == 3 * L + 1 ? K : i % 3 ? C : i / 3 % 2 == 0 && i ? C * C : 9 * C;
        p[i] = malloc(sizeof(float) * size);
        gr[i] = malloc(sizeof(float) * size);
        for (long j = 0; j < size; j++) p[i][j] = (float)rand() / RAND_MAX - 0.5f;
    }
    for (int i = 0; i < 2 * L; i++) {
        stats[i] = malloc(sizeof(float) * C);
        for (int c = 0; c < C; c++) stats[i][c] = (float)(i % 2);
    }
    for (int i = 0; i < L; i++) tracked[i] = calloc(1, sizeof(int64_t));
    for (int i = 0; i < N * 180; i++) x[i] = (float)rand() / RAND_MAX;
    for (int i = 0; i < N; i++) y[i] = i % K;
    if (dscnn_threads_ready(3) != 3) return 2;
    for (int step = 0; step < 120; step++) {               /* 2 and 3 threads on a pool of 2 workers, n = 1..7 */
        int threads = 2 + step % 2;
        g[0] = 1 + step % N;
        float *work = malloc(sizeof(float) * dscnn_work_floats(g, threads));
        float loss = dscnn_train_step(g, fgeo, p, gr, stats, tracked, x, y, work, threads);
        free(work);
        if (!(loss > 0.0f)) return 3;
    }
    puts("ok");
    return 0;
}
"""


def test_fused_threads_under_thread_sanitizer(tmp_path: Path):
    """The worker pool, the slot claiming and the partials under gcc's ThreadSanitizer (a C driver: the kernel
    needs an instrumented main program): 120 steps on 2 and 3 threads sharing one pool, 1 to 7 samples; no data
    race is reported."""
    import os
    import subprocess

    from toolkit.native.build import build_executable
    from toolkit.train.fused import SOURCE

    driver = tmp_path / "tsan_driver.c"
    driver.write_text(TSAN_DRIVER)
    try:
        exe = build_executable([SOURCE, driver], name="dscnn_train_tsan",
                               extra_flags=("-O1", "-g", "-march=native", "-fsanitize=thread", "-pthread",
                                            "-DCH=16", "-lm"))
    except EdgetkError as e:
        if "tsan" not in str(e).lower():
            raise
        pytest.skip(f"gcc cannot link -fsanitize=thread here ({e}); fix: install libtsan (apt-get install libtsan2)")
    env = {**os.environ, "TSAN_OPTIONS": "halt_on_error=1 exitcode=66"}
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, env=env)
    if "unexpected memory mapping" in run.stderr:
        pytest.skip("ThreadSanitizer cannot map its shadow memory on this kernel; fix: sysctl vm.mmap_rnd_bits=28")
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
    assert "ThreadSanitizer" not in run.stderr, run.stderr[-3000:]


def test_fused_training_is_deterministic_resumes_exactly_and_learns(shared, tmp_path: Path):
    from toolkit.data import load_dataset
    from toolkit.train import train

    def recipe(kernel: str, threads: int = 1):
        r = load_recipe(RECIPE, ["train.epochs=4", TWO_SPEAKERS, f"train.kernel={kernel}", f"train.threads={threads}"])
        return r.replace(extra={k: v for k, v in r.extra.items() if k != "fleet"})

    data = load_dataset(recipe("fused"))
    a, b = train(recipe("fused"), tmp_path / "a", data=data), train(recipe("fused"), tmp_path / "b", data=data)
    assert _weights(a) == _weights(b)                                  # run to run: the same bits

    class Stop(Exception):
        pass

    def stop_after_2(row):
        if row["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(recipe("fused"), tmp_path / "c", data=data, progress=stop_after_2)
    train(recipe("fused"), tmp_path / "c", data=data, resume=True)
    assert _weights(tmp_path / "c") == _weights(a)                     # resumed after epoch 2: the same bits

    two = train(recipe("fused", 2), tmp_path / "two", data=data)        # [train] threads = 2: the kernel's too
    assert _weights(train(recipe("fused", 2), tmp_path / "two-b", data=data)) == _weights(two)
    assert _weights(two) != _weights(a)                                # 2 threads round differently from 1
    with pytest.raises(Stop):
        train(recipe("fused", 2), tmp_path / "two-c", data=data, progress=stop_after_2)
    train(recipe("fused", 2), tmp_path / "two-c", data=data, resume=True)
    assert _weights(tmp_path / "two-c") == _weights(two)

    t = train(recipe("torch"), tmp_path / "t", data=data)
    assert _weights(t) != _weights(a)                                  # another kernel: other rounding
    top1 = {k: _top1(d) for k, d in (("fused", a), ("torch", t))}
    assert top1["fused"] >= 0.9 and abs(top1["fused"] - top1["torch"]) <= 0.06, top1


def test_fused_kernel_refuses_what_it_cannot_train(tmp_path: Path):
    from toolkit.nn.dscnn import DSCNN, DSCNNConfig
    from toolkit.train import train
    from toolkit.train.fused import FusedDSCNN

    with pytest.raises(EdgetkError, match="dropout"):
        FusedDSCNN(DSCNN(DSCNNConfig(n_classes=3, dropout=0.2)))
    frozen = DSCNN(DSCNNConfig(n_classes=3))
    frozen.stem[0].weight.requires_grad_(False)
    with pytest.raises(EdgetkError, match="frozen"):
        FusedDSCNN(frozen)
    with pytest.raises(EdgetkError, match="architecture"):
        FusedDSCNN(torch.nn.Linear(3, 3))
    with pytest.raises(EdgetkError, match="1..8 threads") as e:
        FusedDSCNN(DSCNN(DSCNNConfig(n_classes=3, width=0.25)), threads=9)
    assert "train.threads" in e.value.fix
    f = FusedDSCNN(DSCNN(DSCNNConfig(n_classes=3, width=0.25)))
    with pytest.raises(EdgetkError, match="label"):
        f.step(torch.zeros(2, 1, 49, 10), torch.tensor([0, 3]))
    with pytest.raises(EdgetkError, match="train.kernel") as e:                 # recipe check, on load
        load_recipe(RECIPE, ["train.kernel=cuda"])
    assert "fused" in str(e.value)
    cnn = load_recipe(repo_dir("models") / "imu-motions.toml", ["train.epochs=1", "train.kernel=fused"])
    with pytest.raises(EdgetkError, match='kernel = "fused" does not support the .* architecture') as e:
        train(cnn, tmp_path / "imu")
    assert 'train.kernel = "torch"' in e.value.fix
    assert not (tmp_path / "imu" / "model.safetensors").exists()


def _weights(run: Path) -> dict[str, bytes]:
    from safetensors.numpy import load_file

    return {k: v.tobytes() for k, v in load_file(Path(run) / "model.safetensors").items()}


def _top1(run: Path) -> float:
    import json

    return json.loads((Path(run) / "metrics.json").read_text())["value"]


def test_c_adamw_is_torchs_adamw():
    """The fused kernel's AdamW (one C call over every tensor) against torch.optim.AdamW: the same update within
    float rounding over 30 steps (weight decay, bias correction), the same state_dict keys and shapes, and a
    state_dict of one loads into the other (checkpoints resume across them)."""
    from toolkit.nn.dscnn import DSCNN, DSCNNConfig
    from toolkit.train.fused import AdamW, FusedDSCNN

    torch.manual_seed(0)
    a = DSCNN(DSCNNConfig(n_classes=5, width=0.25))
    b = copy.deepcopy(a)
    lib = FusedDSCNN(a).lib
    ours = AdamW(list(a.parameters()), lib, lr=0.02, weight_decay=0.01)
    ref = torch.optim.AdamW(b.parameters(), lr=0.02, weight_decay=0.01)
    for step in range(30):
        for pa, pb in zip(a.parameters(), b.parameters()):
            g = torch.randn_like(pa) * (1 + step % 3)
            pa.grad, pb.grad = g.clone(), g.clone()
        ours.step()
        ref.step()
    torch.manual_seed(0)
    start = DSCNN(DSCNNConfig(n_classes=5, width=0.25))
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), start.parameters()))
    apart = max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))
    assert moved > 0.1 and apart < 1e-5, (moved, apart)
    sa, sb = ours.state_dict(), ref.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k in sb["state"]:
        assert sa["state"][k].keys() == sb["state"][k].keys()
        assert float(sa["state"][k]["step"]) == float(sb["state"][k]["step"]) == 30
        assert torch.allclose(sa["state"][k]["exp_avg_sq"], sb["state"][k]["exp_avg_sq"], rtol=1e-5, atol=1e-9)
    ours.load_state_dict(copy.deepcopy(sb))                    # torch's state into ours: the next step is torch's
    for p, q in zip(a.parameters(), b.parameters()):
        with torch.no_grad():
            p.copy_(q)
        p.grad, q.grad = torch.ones_like(p), torch.ones_like(q)
    ours.step()
    ref.step()
    assert max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters())) < 1e-6
