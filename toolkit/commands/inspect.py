"""`edgetk inspect FILE.onnx|FILE.tflite`: I/O with quantization, op counts, params, MACs, TFLM arena."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toolkit.errors import EdgetkError
from toolkit.output import emit


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("inspect", help="show a model's I/O, quantization, ops, params, MACs and TFLM arena")
    p.add_argument("model", type=Path, help=".tflite or .onnx file")
    p.add_argument("--no-arena", action="store_true", help="skip the TFLite-Micro arena probe (.tflite)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def inspect_tflite(path: Path, *, arena: bool = True) -> dict[str, Any]:
    """Summary of a .tflite file, with TFLite-Micro's arena when it can allocate the model."""
    from toolkit.runtimes import tflm_arena_bytes
    from toolkit.tflite import read_model
    from toolkit.tflite.stats import summary

    info = {"format": "tflite", "path": str(path), **summary(read_model(path))}
    if arena:
        try:
            info["tflm_arena_bytes"] = tflm_arena_bytes(path)
        except EdgetkError as e:
            info["tflm_arena_bytes"] = None
            info["tflm_arena_error"] = str(e).splitlines()[-1]
    info["edgetk_peak_ram"] = _edgetk_ram(path)
    return info


def _edgetk_ram(path: Path) -> dict[str, Any]:
    """Peak RAM of edgetk's generated C (default kernel set): the arena, and with edgetk_invoke's copy buffers."""
    from toolkit.codegen import DEFAULT_KERNELS, build_model
    from toolkit.codegen.emit import io_bytes

    try:
        graph, _, pl = build_model(path)
    except EdgetkError as e:
        return {"error": str(e).splitlines()[0]}
    x, y = io_bytes(graph)
    return {"kernels": DEFAULT_KERNELS, "arena_api": pl.arena_size, "with_copy_buffers": pl.arena_size + x + y}


def _load_onnx(path: Path) -> Any:
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # noqa: BLE001 - any protobuf/checker failure means a bad file
        raise EdgetkError(f"{path} is truncated or corrupted (ONNX load failed: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''})",
                          fix="re-export the model (edgetk export RUN_DIR) or copy the file again") from None


def _text(v: Any) -> str:
    """A protobuf string field as text (protobuf hands invalid UTF-8 back as bytes)."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _shape(vi: Any) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (_text(d.dim_param) or "?")
            for d in vi.type.tensor_type.shape.dim]


def _onnx_io(vi: Any, quant: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    import onnx

    scale, zp = quant.get(vi.name, (None, None))
    dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name
    return {"name": _text(vi.name), "shape": _shape(vi), "dtype": dtype,
            "scale": None if scale is None else [float(v) for v in scale.reshape(-1)],
            "zero_point": None if scale is None else [int(v) for v in (zp.reshape(-1) if zp is not None else [0])]}


def _io_quant(graph: Any, inits: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Scale/zero point of I/O tensors: the QuantizeLinear reading an input, the DequantizeLinear writing an output."""
    quant = {}
    for n in graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and n.input[1] in inits:
            zp = inits.get(n.input[2]) if len(n.input) > 2 else None
            name = n.input[0] if n.op_type == "QuantizeLinear" else n.output[0]
            quant[name] = (inits[n.input[1]], zp)
    return quant


_WEIGHT_VIEWS = frozenset({"DequantizeLinear", "Reshape", "Transpose", "Cast", "Identity", "Squeeze", "Unsqueeze",
                           "Flatten"})
_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _const(name: str, graph: Any, inits: dict[str, Any], depth: int = 0) -> tuple[Any, str] | None:
    """(value, source initializer) of a constant tensor, looking through DequantizeLinear, Reshape, Transpose, Cast,
    Squeeze/Unsqueeze/Flatten/Identity chains on initializers (weights stored the way some exporters store them)."""
    if name in inits:
        return inits[name], name
    prod = next((n for n in graph.node if name in n.output), None)
    if prod is None or prod.op_type not in _WEIGHT_VIEWS or depth > 8 or not prod.input:
        return None
    src = _const(prod.input[0], graph, inits, depth + 1)
    if src is None:
        return None
    return _view(prod, src[0], [inits.get(i) for i in prod.input[1:]]), src[1]


def _view(node: Any, x: Any, extra: list[Any]) -> Any:
    """The value of a view op applied to a constant (integer values of a DequantizeLinear: its shape is what counts)."""
    import numpy as np

    a = {at.name: _attr(at) for at in node.attribute}
    op = node.op_type
    if op == "Reshape" and extra and extra[0] is not None:
        shape = [int(d) if int(d) != 0 else x.shape[i] for i, d in enumerate(extra[0])]
        return x.reshape(shape)
    if op == "Transpose":
        return np.transpose(x, a.get("perm"))
    if op == "Flatten":
        ax = int(a.get("axis", 1))
        return x.reshape(int(np.prod(x.shape[:ax])), -1)
    if op in ("Squeeze", "Unsqueeze"):
        axes = a.get("axes") or ([int(v) for v in extra[0]] if extra and extra[0] is not None else None)
        if op == "Squeeze":
            return np.squeeze(x, axis=tuple(axes) if axes else None)
        return np.expand_dims(x, tuple(axes or ()))
    return x  # DequantizeLinear, Cast, Identity keep the shape


def _attr(at: Any) -> Any:
    from onnx import helper

    return helper.get_attribute_value(at)


def _weights(graph: Any, inits: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(weights by the tensor name a Conv/Gemm/MatMul reads, every parameter by its source initializer): weights
    and biases of those ops, and the constant of an Add that adds a bias to one of them (MatMul + Add, Conv + Add)."""
    weights: dict[str, Any] = {}
    params: dict[str, Any] = {}
    producers = {o: n for n in graph.node for o in n.output}
    for n in graph.node:
        if n.op_type in _WEIGHTED:
            for name in n.input[1:]:
                got = _const(name, graph, inits) if name else None
                if got is not None:
                    weights[name], params[got[1]] = got[0], got[0]
        elif n.op_type == "Add" and len(n.input) == 2:
            srcs = [producers.get(i) for i in n.input]
            for i, other in ((0, 1), (1, 0)):
                got = _const(n.input[i], graph, inits)
                if got is not None and srcs[other] is not None and srcs[other].op_type in _WEIGHTED:
                    params[got[1]] = got[0]
    return weights, params


def _node_macs(n: Any, w: dict[str, Any], shapes: dict[str, list]) -> int:
    """MACs of one Conv/Gemm/MatMul per sample (a symbolic batch dimension counts as 1)."""
    import numpy as np

    out = shapes.get(n.output[0])
    wt = w.get(n.input[1]) if len(n.input) > 1 else None
    if out is None or wt is None:
        return 0
    out = [d if isinstance(d, int) else 1 for d in out[:1]] + list(out[1:])
    if any(not isinstance(d, int) for d in out):
        return 0
    n_out = int(np.prod(out))
    if n.op_type == "Conv":
        return n_out * int(np.prod(wt.shape[1:]))
    if n.op_type == "Gemm":
        trans_b = any(a.name == "transB" and a.i for a in n.attribute)
        return n_out * int(wt.shape[1] if trans_b else wt.shape[0])
    if n.op_type == "MatMul" and wt.ndim == 2:
        return n_out * int(wt.shape[0])
    return 0


def inspect_onnx(path: Path) -> dict[str, Any]:
    """Summary of an .onnx file (float or QDQ int8); a corrupted file or tensor is one EdgetkError."""
    from onnx import numpy_helper

    model = _load_onnx(path)
    g = model.graph
    inits = {}
    for t in g.initializer:
        try:
            inits[t.name] = numpy_helper.to_array(t)
        except Exception as e:  # noqa: BLE001 - any decoding failure of a tensor means a corrupted file
            raise EdgetkError(f"{path}: initializer {t.name[:80]!r} is corrupted ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:160] if str(e) else ''})",
                              fix="re-export the model (edgetk export RUN_DIR) or copy the file again") from None
    try:
        info = _summary(path, model, inits)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        raise EdgetkError(f"{path}: the graph is malformed ({type(e).__name__}: {str(e)[:160]})",
                          fix="re-export the model (edgetk export RUN_DIR) or copy the file again") from None
    return info | _requantization(model)


def _summary(path: Path, model: Any, inits: dict[str, Any]) -> dict[str, Any]:
    from collections import Counter

    g = model.graph
    quant = _io_quant(g, inits)
    shapes = {vi.name: _shape(vi) for vi in list(g.value_info) + list(g.output) + list(g.input)}
    w, params = _weights(g, inits)
    return {"format": "onnx", "path": str(path), "opset": max((o.version for o in model.opset_import), default=0),
            "inputs": [_onnx_io(vi, quant) for vi in g.input if vi.name not in inits],
            "outputs": [_onnx_io(vi, quant) for vi in g.output],
            "ops": dict(Counter(n.op_type for n in g.node)), "n_ops": len(g.node),
            "params": int(sum(a.size for a in params.values())),
            "macs": int(sum(_node_macs(n, w, shapes) for n in g.node))}


def _requantization(model: Any) -> dict[str, Any]:
    """What edgetk's dyadic requantization did to a QDQ model (None: not applied); corrupted metadata is a
    warning (requantization_error), the rest of the summary stands."""
    from toolkit.quant.dyadic import requantization_info

    try:
        return {"requantization": requantization_info(model)}
    except EdgetkError as e:
        return {"requantization": None, "requantization_error": str(e).splitlines()[0]}


def _fmt_io(t: dict[str, Any]) -> str:
    q = "" if t["scale"] is None else (
        f"  scale {t['scale'][0]:.6g} zero_point {t['zero_point'][0]}" if len(t["scale"]) == 1
        else f"  per-channel ({len(t['scale'])} scales)")
    return f"  {t['name']}: {t['dtype']} {t['shape']}{q}"


def _print(info: dict[str, Any]) -> None:
    print(f"{info['format']}  {info['path']}")
    print("inputs:")
    print("\n".join(_fmt_io(t) for t in info["inputs"]))
    print("outputs:")
    print("\n".join(_fmt_io(t) for t in info["outputs"]))
    ops = ", ".join(f"{k} ×{v}" for k, v in sorted(info["ops"].items(), key=lambda kv: -kv[1]))
    print(f"ops ({info['n_ops']}): {ops}")
    print(f"params: {info['params']:,}   MACs: {info['macs']:,}")
    if info.get("requantization"):
        r = info["requantization"]
        print(f"requantization: dyadic scales (chosen so ONNX int8 and TFLite compute equal integers; a bundle's "
              f"fidelity.md measures it): {r['dyadic_channels']} channels, {r['inexact_channels']} inexact, "
              f"{r['exact_means']} means, {r['add_groups']} Add scale groups")
    if info.get("requantization_error"):
        print(f"warning: {info['requantization_error']}")
    if "tflm_arena_bytes" in info:
        a = info["tflm_arena_bytes"]
        print(f"TFLite-Micro arena: {a:,} B" if a is not None else
              f"TFLite-Micro arena: n/a ({info.get('tflm_arena_error', '')})")
    ram = info.get("edgetk_peak_ram")
    if ram:
        print(f"edgetk C peak RAM ({ram['kernels']} kernels): {ram['arena_api']:,} B arena with the input and output "
              f"in it; {ram['with_copy_buffers']:,} B with edgetk_invoke's copy buffers" if "error" not in ram else
              f"edgetk C peak RAM: n/a ({ram['error']})")


def run(args: argparse.Namespace) -> int:
    path: Path = args.model
    if not path.is_file():
        raise EdgetkError(f"no such file: {path}", fix="pass a .tflite or .onnx file")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        info = inspect_tflite(path, arena=not args.no_arena)
    elif suffix == ".onnx":
        info = inspect_onnx(path)
    else:
        raise EdgetkError(f"cannot inspect '{path.name}': unknown format", fix="pass a .tflite or .onnx file")
    if args.json:
        emit(info)
    else:
        _print(info)
    return 0
