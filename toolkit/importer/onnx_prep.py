"""A float ONNX model from any exporter → the normal form the quantizers and the TFLite lowering take.

Steps, in order: parse (a truncated file is one error); initializers listed as graph inputs dropped; one input
and one output; a dynamic batch dimension fixed to 1; the opset lifted to OPSET with onnx.version_converter;
simplification and constant folding with onnxslim (weights behind Reshape/Transpose/Cast become plain
initializers, Conv + Add and Conv + BatchNorm fuse); then our own passes for what is left: any remaining
constant subgraph folded (onnx's reference evaluator), auto_pad → explicit pads, Conv + Add(bias) → Conv bias,
Conv + BatchNorm folded, a lone BatchNorm → depthwise 1×1 Conv, MatMul (+ Add) → Gemm, Gemm alpha/beta folded,
Dropout removed, an NHWC input's leading Transpose folded into the input. Finally every op the lowering cannot
take is listed at once (index, op type, fix).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from toolkit.errors import EdgetkError
from toolkit.quant.graph import OnnxGraph, attrs

log = logging.getLogger(__name__)

OPSET = 18          # the opset torch's exporter writes for edgetk (toolkit/export/onnx_fp32.py)
IR_VERSION = 8      # the IR version of opset 18
MIN_OPSET = 7
_FOLDABLE_SKIP = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class Prepared:
    """The canonical float model and what was done to get it."""

    proto: Any                       # onnx.ModelProto, opset OPSET, batch 1
    source_layout: str               # layout the ORIGINAL model's input takes: "NCHW" | "NHWC" | "flat"
    source_shape: tuple[int, ...]    # one sample, in the source layout
    opset: int                       # the original opset
    steps: tuple[str, ...]           # what changed, for the manifest


def parse(data: bytes, name: str) -> Any:
    """An ONNX ModelProto from bytes; a truncated or corrupted file is one error."""
    import onnx

    try:
        proto = onnx.load_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise EdgetkError(f"{name} is a truncated or corrupted ONNX file ({type(e).__name__}: {str(e)[:160]})",
                          fix="copy or export the model again; check its sha256") from None
    if not proto.graph.node:
        raise EdgetkError(f"{name} has an empty ONNX graph (or is not an ONNX model)",
                          fix="pass a float ONNX model with at least one node")
    return proto


def prepare(proto: Any, name: str) -> Prepared:
    """The canonical, checked form of a float ONNX model (see the module docstring)."""
    steps: list[str] = []
    opset = _opset(proto)
    _check_io(proto, name)
    _fix_batch(proto, name, steps)
    proto = _lift_opset(proto, opset, name, steps)  # before the next step: IR < 4 needs initializers as inputs
    _drop_initializer_inputs(proto, steps)
    proto = _slim(proto, name, steps)
    layout = _fold_input_transpose(proto, steps)
    for p in PASSES:
        _guarded(p, proto, steps, name)
    proto = _infer(proto, name)
    check_supported(proto, name)
    shape = _input_shape(proto)
    source_shape = (shape[1], shape[2], shape[0]) if layout == "NHWC" else shape
    return Prepared(proto, layout if layout == "NHWC" else ("NCHW" if len(shape) == 3 else "flat"),
                    source_shape, opset, tuple(steps))


def _guarded(rewrite: Callable[[Any, list[str]], None], proto: Any, steps: list[str], name: str) -> None:
    """Run one rewrite; a library failure on a model it did not expect becomes one error naming the rewrite."""
    try:
        rewrite(proto, steps)
    except EdgetkError:
        raise
    except Exception as e:  # noqa: BLE001 - onnx/numpy errors on an unusual graph
        raise EdgetkError(f"{name}: the import rewrite {rewrite.__name__.strip('_')} failed on this model "
                          f"({type(e).__name__}: {str(e)[:200]})",
                          fix="check the model with onnx.checker.check_model(model, full_check=True); if it passes, "
                              "report it as an edgetk import bug") from None


def _opset(proto: Any) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)


def _drop_initializer_inputs(proto: Any, steps: list[str]) -> None:
    inits = {t.name for t in proto.graph.initializer}
    keep = [i for i in proto.graph.input if i.name not in inits]
    if len(keep) != len(proto.graph.input):
        steps.append(f"dropped {len(proto.graph.input) - len(keep)} initializers listed as graph inputs")
        del proto.graph.input[:]
        proto.graph.input.extend(keep)
        proto.ir_version = max(proto.ir_version, 4)  # IR 4 lets initializers stand alone


def _data_inputs(proto: Any) -> list[Any]:
    inits = {t.name for t in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def _check_io(proto: Any, name: str) -> None:
    ins, outs = [i.name for i in _data_inputs(proto)], [o.name for o in proto.graph.output]
    if len(ins) != 1:
        raise EdgetkError(f"{name} has {len(ins)} inputs {ins}; edgetk imports single-input models",
                          fix="export the model with one input tensor (concatenate the inputs, or split the model)")
    if len(outs) != 1:
        raise EdgetkError(f"{name} has {len(outs)} outputs {outs}; edgetk imports single-output models",
                          fix="export the model with one output tensor (drop the extra outputs)")


def _dims(vi: Any) -> list[Any]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in vi.type.tensor_type.shape.dim]


def _fix_batch(proto: Any, name: str, steps: list[str]) -> None:
    vi = _data_inputs(proto)[0]
    dims = _dims(vi)
    if not dims:
        raise EdgetkError(f"{name}: the input {vi.name!r} has no shape", fix="export the model with a static input shape")
    if any(not isinstance(d, int) or d <= 0 for d in dims[1:]):
        raise EdgetkError(f"{name}: the input {vi.name!r} has dynamic dimensions {dims}; only the batch may be dynamic",
                          fix="export the model with a static input shape (batch may be dynamic)")
    if dims[0] != 1:
        steps.append(f"input batch dimension {dims[0]!r} fixed to 1")
        d0 = vi.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_value = 1
    for o in proto.graph.output:  # stale (possibly dynamic) shapes: inference recomputes them
        o.type.tensor_type.ClearField("shape")
    del proto.graph.value_info[:]


def _lift_opset(proto: Any, opset: int, name: str, steps: list[str]) -> Any:
    from onnx import version_converter

    if opset < MIN_OPSET:
        raise EdgetkError(f"{name} uses opset {opset}; edgetk imports opset {MIN_OPSET} and later",
                          fix="re-export the model with a newer opset")
    if opset >= OPSET:
        return proto
    try:
        lifted = version_converter.convert_version(proto, OPSET)
    except Exception as e:  # noqa: BLE001 - the converter raises RuntimeError/ValueError/C++ errors
        raise EdgetkError(f"{name}: onnx.version_converter cannot lift opset {opset} to {OPSET} "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})",
                          fix=f"re-export the model at opset {OPSET} (e.g. torch.onnx.export(..., opset_version={OPSET}))"
                          ) from None
    lifted.ir_version = max(lifted.ir_version, IR_VERSION)
    steps.append(f"opset {opset} lifted to {OPSET} (onnx.version_converter)")
    return lifted


def _slim(proto: Any, name: str, steps: list[str]) -> Any:
    import onnxslim

    before = len(proto.graph.node)
    try:
        slim = onnxslim.slim(proto, model_check=False)
    except Exception as e:  # noqa: BLE001 - a third-party optimizer: name it and how to get past it
        raise EdgetkError(f"{name}: onnxslim could not simplify the model ({type(e).__name__}: {str(e)[:200]})",
                          fix="check the model with onnx.checker.check_model; re-export it") from None
    steps.append(f"onnxslim: {before} → {len(slim.graph.node)} nodes (constants folded, fusions)")
    return slim


def _input_shape(proto: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in _dims(proto.graph.input[0])[1:])


def _fold_input_transpose(proto: Any, steps: list[str]) -> str:
    """An NHWC input read only by Transpose(0, 3, 1, 2): the input becomes NCHW, the Transpose goes."""
    g = OnnxGraph(proto)
    vi = proto.graph.input[0]
    cons = g.consumers[vi.name]
    if len(_dims(vi)) != 4 or len(cons) != 1 or cons[0].op_type != "Transpose" or \
            list(attrs(cons[0]).get("perm", [])) != [0, 3, 1, 2]:
        return ""
    t = cons[0]
    n, h, w, c = _dims(vi)
    _rename(proto, t.output[0], vi.name)
    proto.graph.node.remove(t)
    del vi.type.tensor_type.shape.dim[:]
    for d in (n, c, h, w):
        vi.type.tensor_type.shape.dim.add().dim_value = d
    del proto.graph.value_info[:]
    steps.append("NHWC input: its Transpose(0, 3, 1, 2) folded (the ONNX graph takes NCHW; data stays NHWC)")
    return "NHWC"


def _rename(proto: Any, old: str, new: str) -> None:
    for n in proto.graph.node:
        for i, v in enumerate(n.input):
            if v == old:
                n.input[i] = new
    for o in proto.graph.output:
        if o.name == old:
            o.name = new


def _infer(proto: Any, name: str) -> Any:
    import onnx

    try:
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
        onnx.checker.check_model(proto)
    except Exception as e:  # noqa: BLE001
        raise EdgetkError(f"{name}: the canonical model does not check ({type(e).__name__}: {str(e)[:200]})",
                          fix="report this model as an edgetk import bug") from None
    return proto


def _shapes(proto: Any) -> dict[str, tuple[int, ...]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    g = inferred.graph
    return {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
            for v in [*g.value_info, *g.input, *g.output]}


# ---- canonical passes (each edits proto in place and appends what it did to steps) ----
def _fold_constants(proto: Any, steps: list[str]) -> None:
    """Every node whose inputs are all constants, evaluated once (onnx.reference) into an initializer."""
    folded = 0
    while True:
        g = OnnxGraph(proto)
        node = next((n for n in proto.graph.node if n.op_type not in _FOLDABLE_SKIP and n.op_type != "Constant"
                     and n.input and all(not i or g.const(i) is not None for i in n.input)
                     and not any(o in g.outputs for o in n.output)), None)
        if node is None:
            break
        for o, v in zip(node.output, _eval_node(node, g)):
            g.set_init(o, np.asarray(v))
        proto.graph.node.remove(node)
        folded += 1
    for c in [n for n in proto.graph.node if n.op_type == "Constant"]:
        g = OnnxGraph(proto)
        g.set_init(c.output[0], g.const(c.output[0]))
        proto.graph.node.remove(c)
    if folded:
        steps.append(f"folded {folded} constant nodes")


def _eval_node(node: Any, g: OnnxGraph) -> list[np.ndarray]:
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    names = [i for i in node.input if i]
    inits = [numpy_helper.from_array(np.asarray(g.const(i)), i) for i in names]
    m = helper.make_model(helper.make_graph([node], "fold", [], [helper.make_empty_tensor_value_info(o)
                                                                  for o in node.output], inits),
                          opset_imports=[helper.make_opsetid("", OPSET)])
    return ReferenceEvaluator(m).run(None, {})


def _same_pads(size: int, k: int, s: int, d: int, lower: bool) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def _explicit_pads(proto: Any, steps: list[str]) -> None:
    """auto_pad SAME_UPPER / SAME_LOWER / VALID → explicit pads (the lowering reads pads)."""
    from onnx import helper

    shapes = None
    for n in proto.graph.node:
        a = attrs(n)
        mode = a.get("auto_pad", b"NOTSET")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if n.op_type not in ("Conv", "MaxPool", "AveragePool") or mode == "NOTSET":
            continue
        shapes = shapes or _shapes(proto)
        x = shapes.get(n.input[0], ())
        if len(x) != 4:
            continue
        if "kernel_shape" in a:
            k = list(a["kernel_shape"])
        else:
            k = list(OnnxGraph(proto).need_const(n.input[1], n).shape[2:])
        s, d = list(a.get("strides", [1, 1])), list(a.get("dilations", [1, 1]))
        if mode == "VALID":
            pads = [0, 0, 0, 0]
        else:
            (t, b), (le, r) = (_same_pads(x[2 + i], k[i], s[i], d[i], mode == "SAME_LOWER") for i in range(2))
            pads = [t, le, b, r]
        for att in [att for att in n.attribute if att.name in ("auto_pad", "pads")]:
            n.attribute.remove(att)
        n.attribute.append(helper.make_attribute("pads", pads))
        steps.append(f"{n.op_type} {n.name or n.output[0]!r}: auto_pad {mode} → pads {pads}")


def _single_consumer(g: OnnxGraph, tensor: str, op: str) -> Any | None:
    cons = g.consumers[tensor]
    return cons[0] if len(cons) == 1 and cons[0].op_type == op and tensor not in g.outputs else None


def _other_const(g: OnnxGraph, node: Any, tensor: str) -> np.ndarray | None:
    others = [i for i in node.input if i != tensor]
    return g.const(others[0]) if len(others) == 1 else None


def _conv_add_bias(proto: Any, steps: list[str]) -> None:
    """Conv followed by Add of a per-channel constant → the Conv's bias."""
    g = OnnxGraph(proto)
    for conv in [n for n in proto.graph.node if n.op_type == "Conv"]:
        add = _single_consumer(g, conv.output[0], "Add")
        w = g.const(conv.input[1]) if len(conv.input) > 1 else None
        b = None if add is None else _other_const(g, add, conv.output[0])
        if add is None or w is None or b is None or b.size != w.shape[0] or \
                not (b.ndim == 1 or (b.ndim >= 3 and b.shape[-3] == b.size)):
            continue
        old = g.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0], np.float32)
        name = g.set_init(g.fresh(f"{conv.name or conv.output[0]}_bias"), (old + b.reshape(-1)).astype(np.float32))
        _set_input(conv, 2, name)
        _bypass(proto, add, conv.output[0])
        g.reindex()
        steps.append(f"Conv {conv.name or conv.output[0]!r} + Add → Conv with bias")


def _set_input(node: Any, i: int, name: str) -> None:
    while len(node.input) <= i:
        node.input.append("")
    node.input[i] = name


def _bypass(proto: Any, node: Any, replacement: str) -> None:
    """Remove `node`; its output's readers (and the graph output) read `replacement` instead."""
    out = node.output[0]
    proto.graph.node.remove(node)
    g = OnnxGraph(proto)
    if out in g.outputs:  # keep the graph output's name: the producer of `replacement` writes it
        g.producer[replacement].output[list(g.producer[replacement].output).index(replacement)] = out
        _rename(proto, replacement, out)
    else:
        _rename(proto, out, replacement)


def _bn_params(g: OnnxGraph, bn: Any) -> tuple[np.ndarray, np.ndarray] | None:
    vals = [g.const(i) for i in bn.input[1:5]]
    if any(v is None for v in vals):
        return None
    scale, bias, mean, var = (v.astype(np.float64) for v in vals)
    k = scale / np.sqrt(var + float(attrs(bn).get("epsilon", 1e-5)))
    return k, bias - mean * k


def _fold_batchnorm(proto: Any, steps: list[str]) -> None:
    """Conv → BatchNormalization folded into the Conv; a lone BatchNorm on 4-D data → depthwise 1×1 Conv."""
    from onnx import helper

    g = OnnxGraph(proto)
    for bn in [n for n in proto.graph.node if n.op_type == "BatchNormalization"]:
        kb = _bn_params(g, bn)
        prod = g.producer.get(bn.input[0])
        if kb is None or len(bn.output) > 1 and any(bn.output[1:]):
            continue
        k, b = kb
        w = g.const(prod.input[1]) if prod is not None and prod.op_type == "Conv" else None
        if w is not None and len(g.consumers[prod.output[0]]) == 1:
            old = g.const(prod.input[2]) if len(prod.input) > 2 and prod.input[2] else np.zeros(w.shape[0])
            wn = g.set_init(g.fresh(f"{prod.input[1]}_bn"), (w * k.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32))
            bn_ = g.set_init(g.fresh(f"{prod.output[0]}_bn_bias"), (old * k + b).astype(np.float32))
            prod.input[1] = wn
            _set_input(prod, 2, bn_)
            _bypass(proto, bn, prod.output[0])
            steps.append(f"BatchNormalization {bn.name or bn.output[0]!r} folded into the Conv before it")
        else:
            c = k.size
            wn = g.set_init(g.fresh(f"{bn.output[0]}_dw"), k.reshape(c, 1, 1, 1).astype(np.float32))
            bn_ = g.set_init(g.fresh(f"{bn.output[0]}_dw_bias"), b.astype(np.float32))
            conv = helper.make_node("Conv", [bn.input[0], wn, bn_], [bn.output[0]], name=bn.name or bn.output[0],
                                    group=c, kernel_shape=[1, 1])
            at = list(proto.graph.node).index(bn)
            proto.graph.node.remove(bn)
            proto.graph.node.insert(at, conv)
            steps.append(f"BatchNormalization {bn.name or bn.output[0]!r} → depthwise 1×1 Conv")
        g.reindex()


def _matmul_to_gemm(proto: Any, steps: list[str]) -> None:
    """MatMul(x 2-D, W constant 2-D) [+ Add(constant b)] → Gemm(x, W, b)."""
    from onnx import helper

    shapes = None
    g = OnnxGraph(proto)
    for mm in [n for n in proto.graph.node if n.op_type == "MatMul"]:
        w = g.const(mm.input[1])
        shapes = shapes or _shapes(proto)
        if w is None or w.ndim != 2 or len(shapes.get(mm.input[0], ())) != 2 or g.const(mm.input[0]) is not None:
            continue
        inputs, out, what = [mm.input[0], mm.input[1]], mm.output[0], "MatMul → Gemm"
        add = _single_consumer(g, mm.output[0], "Add")
        b = None if add is None else _other_const(g, add, mm.output[0])
        if b is not None and b.size == w.shape[1] and b.ndim <= 2:
            inputs.append(g.set_init(g.fresh(f"{mm.output[0]}_bias"), b.reshape(-1).astype(np.float32)))
            out, what = add.output[0], "MatMul + Add → Gemm"
            proto.graph.node.remove(add)
        gemm = helper.make_node("Gemm", inputs, [out], name=mm.name or out)
        at = list(proto.graph.node).index(mm)
        proto.graph.node.remove(mm)
        proto.graph.node.insert(at, gemm)
        g.reindex()
        steps.append(f"{what} ({gemm.name!r})")


def _gemm_scales(proto: Any, steps: list[str]) -> None:
    """Gemm alpha/beta folded into constant B and C."""
    g = OnnxGraph(proto)
    for n in [n for n in proto.graph.node if n.op_type == "Gemm"]:
        a = attrs(n)
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        w = g.const(n.input[1])
        c = g.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if (alpha == 1.0 and beta == 1.0) or w is None or (len(n.input) > 2 and n.input[2] and c is None):
            continue
        n.input[1] = g.set_init(g.fresh(f"{n.input[1]}_alpha"), (w * alpha).astype(np.float32))
        if c is not None:
            n.input[2] = g.set_init(g.fresh(f"{n.input[2]}_beta"), (c * beta).astype(np.float32))
        for att in [att for att in n.attribute if att.name in ("alpha", "beta")]:
            n.attribute.remove(att)
        g.reindex()
        steps.append(f"Gemm {n.name!r}: alpha {alpha:g}, beta {beta:g} folded into its constants")


def _global_pools(proto: Any, steps: list[str]) -> None:
    """AveragePool whose window covers the whole map (no pads) → GlobalAveragePool (a spatial mean, made exact
    by toolkit.quant.dyadic)."""
    from onnx import helper

    shapes = None
    for n in [n for n in proto.graph.node if n.op_type == "AveragePool"]:
        shapes = shapes or _shapes(proto)
        a, x = attrs(n), shapes.get(n.input[0], ())
        if len(x) == 4 and list(a.get("kernel_shape", [])) == list(x[2:]) and not any(a.get("pads", [0])) and \
                not a.get("ceil_mode", 0):
            at = list(proto.graph.node).index(n)
            proto.graph.node.remove(n)
            proto.graph.node.insert(at, helper.make_node("GlobalAveragePool", [n.input[0]], [n.output[0]],
                                                         name=n.name or n.output[0]))
            steps.append(f"AveragePool {n.name or n.output[0]!r} over the whole {x[2]}×{x[3]} map → GlobalAveragePool")


def _dense_after_pool(proto: Any, steps: list[str]) -> None:
    """GlobalAveragePool → Flatten/Reshape → Gemm [→ Relu/Clip] becomes GlobalAveragePool → 1×1 Conv [→ Relu/Clip]
    → Flatten: the same TFLite CONV_2D (the lowering turns every Gemm into one), and no quantized reshape between
    the mean and the dense layer (onnxruntime's quantizer quantizes that reshape on its own, and the exact mean of
    toolkit.quant.dyadic re-scales the mean's output but not the reshape's)."""
    from onnx import helper

    g = OnnxGraph(proto)
    for pool in [n for n in proto.graph.node if n.op_type == "GlobalAveragePool"]:
        flat = _single_consumer(g, pool.output[0], "Flatten") or _single_consumer(g, pool.output[0], "Reshape")
        gemm = None if flat is None else _single_consumer(g, flat.output[0], "Gemm")
        if gemm is None or gemm.input[0] != flat.output[0] or any(
                attrs(gemm).get(k, d) != d for k, d in (("transA", 0), ("alpha", 1.0), ("beta", 1.0))):
            continue
        w = g.const(gemm.input[1])
        b = g.const(gemm.input[2]) if len(gemm.input) > 2 and gemm.input[2] else None
        if w is None or w.ndim != 2 or (len(gemm.input) > 2 and gemm.input[2] and b is None):
            continue
        w = w if attrs(gemm).get("transB", 0) else w.T  # [O, C]
        conv_w = g.set_init(g.fresh(f"{gemm.input[1]}_1x1"), w.reshape(*w.shape, 1, 1).astype(np.float32))
        ins = [pool.output[0], conv_w] + ([g.set_init(g.fresh(f"{gemm.output[0]}_b"), b.reshape(-1))] if b is not None else [])
        act = _single_consumer(g, gemm.output[0], "Relu") or _single_consumer(g, gemm.output[0], "Clip")
        last = act or gemm
        y4 = g.fresh(f"{gemm.output[0]}_4d")
        nodes = [helper.make_node("Conv", ins, [y4], name=gemm.name or y4, kernel_shape=[1, 1])]
        if act is not None:
            a4 = g.fresh(f"{act.output[0]}_4d")
            nodes.append(helper.make_node(act.op_type, [y4, *act.input[1:]], [a4], name=act.name or a4))
            y4 = a4
        nodes.append(helper.make_node("Flatten", [y4], [last.output[0]], name=g.fresh(f"{last.output[0]}_flatten"),
                                      axis=1))
        at = list(proto.graph.node).index(flat)
        for old in [flat, gemm] + ([act] if act is not None else []):
            proto.graph.node.remove(old)
        for k, n in enumerate(nodes):
            proto.graph.node.insert(at + k, n)
        g.reindex()
        steps.append(f"Gemm {gemm.name or gemm.output[0]!r} after a global pool → 1×1 Conv (then Flatten)")


def _drop_dropout(proto: Any, steps: list[str]) -> None:
    for n in [n for n in proto.graph.node if n.op_type == "Dropout"]:
        if len(n.output) > 1 and n.output[1] and OnnxGraph(proto).consumers[n.output[1]]:
            continue
        _bypass(proto, n, n.input[0])
        steps.append("Dropout removed (inference)")


def _drop_unused(proto: Any, steps: list[str]) -> None:
    from toolkit.quant.qdq import drop_unused_initializers

    drop_unused_initializers(proto)


PASSES: tuple[Callable[[Any, list[str]], None], ...] = (
    _fold_constants, _drop_dropout, _explicit_pads, _fold_batchnorm, _conv_add_bias, _matmul_to_gemm,
    _gemm_scales, _global_pools, _dense_after_pool, _drop_unused,
)


# ---- what the lowering takes ----
HINTS = {
    "Mul": "an input scaling belongs in the data: remove it from the graph and scale --calib/--test",
    "Sub": "an input normalisation (x - mean) belongs in the data: remove it and normalise --calib/--test",
    "Div": "an input normalisation (x / std) belongs in the data: remove it and normalise --calib/--test",
    "MatMul": "only MatMul(x 2-D, constant 2-D weight) becomes a Gemm; flatten the input first",
    "BatchNormalization": "only a BatchNorm with constant parameters is folded",
    "Transpose": "only the NHWC input's leading Transpose(0, 3, 1, 2) is folded; export the model in NCHW",
    "Sigmoid": "not lowered yet; end the model before it (apply it to the outputs)",
}


def check_supported(proto: Any, name: str) -> None:
    """One error that lists EVERY node the lowering cannot take (index, op type, name) and the fix."""
    from toolkit.export.lower import LOWERINGS

    bad = [(i, n) for i, n in enumerate(proto.graph.node) if n.op_type not in LOWERINGS and n.op_type != "Constant"]
    if not bad:
        return
    lines = "; ".join(f"#{i} {n.op_type} ({n.name or n.output[0]!r})" for i, n in bad)
    hints = " ".join(f"{op}: {HINTS[op]}." for op in sorted({n.op_type for _, n in bad}) if op in HINTS)
    raise EdgetkError(f"{name}: {len(bad)} node(s) edgetk cannot quantize and lower to TFLite int8: {lines}",
                      fix=f"{hints + ' ' if hints else ''}edgetk lowers: {', '.join(sorted(LOWERINGS))} "
                          f"(plus BatchNorm, MatMul+Add, Dropout, auto_pad and constant subgraphs, rewritten on import)")
