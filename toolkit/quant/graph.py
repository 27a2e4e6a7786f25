"""A small index over an ONNX graph: producers, consumers, constants — shared by QDQ passes and lowering."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from toolkit.errors import EdgetkError


class OnnxGraph:
    """Producer/consumer maps and constant access for one ONNX ModelProto (rebuilt after edits)."""

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.reindex()

    def reindex(self) -> None:
        """Recompute the maps after nodes or initializers changed."""
        from onnx import numpy_helper

        g = self.proto.graph
        self.inits = {i.name: i for i in g.initializer}
        self.consts: dict[str, np.ndarray] = {}
        for n in g.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        for n in g.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.outputs = [o.name for o in g.output]
        self.inputs = [i.name for i in g.input if i.name not in self.inits]

    def const(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant output, else None."""
        from onnx import numpy_helper

        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        return self.consts.get(name)

    def need_const(self, name: str, node: Any) -> np.ndarray:
        """A constant input of `node`, or an error naming the node."""
        v = self.const(name)
        if v is None:
            raise EdgetkError(f"node {node.name!r} ({node.op_type}): input {name!r} must be a constant",
                              fix="export with static shapes (batch 1) so shapes fold to constants")
        return v

    def set_init(self, name: str, value: np.ndarray) -> str:
        """Add or replace an initializer; returns its name."""
        from onnx import numpy_helper

        t = numpy_helper.from_array(np.asarray(value), name)
        if name in self.inits:
            self.inits[name].CopyFrom(t)
        else:
            self.proto.graph.initializer.append(t)
            self.inits[name] = self.proto.graph.initializer[-1]
        return name

    def fresh(self, base: str) -> str:
        """A tensor name not used yet."""
        used = set(self.inits) | set(self.producer) | {i.name for i in self.proto.graph.input}
        k, name = 0, base
        while name in used:
            k += 1
            name = f"{base}_{k}"
        return name


def attrs(node: Any) -> dict[str, Any]:
    """A node's attributes as a plain dict."""
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def qparams(g: OnnxGraph, node: Any) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero_point) of a QuantizeLinear/DequantizeLinear node."""
    scale = g.need_const(node.input[1], node).astype(np.float32)
    zp = g.need_const(node.input[2], node) if len(node.input) > 2 and node.input[2] else np.zeros_like(
        scale, dtype=np.int8)
    return scale, zp
