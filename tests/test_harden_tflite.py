"""Malformed .tflite files (issue #14 items 1-2): tensor indices, quantization parameters, options.

Every case is a real flatbuffer built with the object API, read by the reader and lowered by the code
generator; each must end in one EdgetkError naming the operator (index, type) and the field, never in a
traceback, a crash of TFLite-Micro or generated C that computes something else.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from toolkit.codegen.lower import lower
from toolkit.errors import EdgetkError
from toolkit.paths import REPO_ROOT
from toolkit.tflite import read_bytes
from toolkit.tflite.build import OpSpec as O
from toolkit.tflite.build import TensorSpec as T
from toolkit.tflite.build import build_model

RNG = np.random.default_rng(14)
W12 = RNG.integers(-127, 128, size=(5, 12), dtype=np.int8)
B5 = RNG.integers(-2000, 2000, size=5).astype(np.int32)


def fc_tensors(w_scale=(0.01,), w_zp=(0,), in_q=((0.05,), (3,)), out_q=((0.2,), (-2,))) -> list[T]:
    """input [1, 12] -> FULLY_CONNECTED (weights [5, 12], bias [5]) -> output [1, 5]."""
    return [T((1, 12), scale=in_q[0], zero_point=in_q[1]), T((5, 12), data=W12, scale=w_scale, zero_point=w_zp),
            T((5,), "int32", None, data=B5), T((1, 5), scale=out_q[0], zero_point=out_q[1])]


def fc_model(tensors=None, op_in=(0, 1, 2), op_out=(3,), ins=(0,), outs=(3,), options=None) -> bytes:
    return build_model(tensors or fc_tensors(), [O("FULLY_CONNECTED", op_in, op_out, options or {})],
                       list(ins), list(outs))


def conv_model(options: dict, *, w_scale=(0.01,), out_scale=(0.2,)) -> bytes:
    w = RNG.integers(-127, 128, size=(4, 3, 3, 2), dtype=np.int8)
    t = [T((1, 6, 6, 2), scale=(0.05,), zero_point=(3,)), T((4, 3, 3, 2), data=w, scale=w_scale, zero_point=(0,) * len(w_scale)),
         T((4,), "int32", None, data=np.zeros(4, np.int32)), T((1, 4, 4, 4), scale=out_scale, zero_point=(0,))]
    opts = dict(padding="VALID", stride_w=1, stride_h=1, dilation_w_factor=1, dilation_h_factor=1)
    opts.update(options)
    return build_model(t, [O("CONV_2D", (0, 1, 2), (3,), opts)], [0], [3])


def refused(data: bytes, *words: str) -> str:
    """Read and lower: one EdgetkError whose message holds every word."""
    with pytest.raises(EdgetkError) as e:
        lower(read_bytes(data, name="m.tflite"))
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    return msg


# ---- item 1: tensor indices ----
@pytest.mark.parametrize("case, words", [
    (dict(outs=(-1,)), ["subgraph output", "-1"]),
    (dict(ins=(-1,)), ["subgraph input", "-1"]),
    (dict(outs=(4,)), ["subgraph output", "tensor 4", "4 tensors"]),
    (dict(op_out=(-1,)), ["operator 0 (FULLY_CONNECTED)", "output 0", "-1"]),
    (dict(op_in=(-1, 1, 2)), ["operator 0 (FULLY_CONNECTED)", "input 0", "-1", "not optional"]),
    (dict(op_in=(0, -1, 2)), ["operator 0 (FULLY_CONNECTED)", "input 1", "-1"]),
    (dict(op_in=(0, 1, 9)), ["operator 0 (FULLY_CONNECTED)", "input 2", "tensor 9"]),
])
def test_minus_one_and_out_of_range_indices_refused_by_the_reader(case, words):
    with pytest.raises(EdgetkError) as e:
        read_bytes(fc_model(**case), name="m.tflite")
    for w in words:
        assert w in str(e.value), str(e.value)


def test_optional_inputs_stay_allowed():
    g = read_bytes(fc_model(op_in=(0, 1, -1)))            # FULLY_CONNECTED without bias
    assert g.operators[0].inputs == (0, 1, -1)
    assert lower(g)[0].func == "et_fully_connected_s8"


def test_lstm_optional_operands_stay_allowed(external):
    """The streaming wake-word model has UNIDIRECTIONAL_SEQUENCE_LSTM-free ops; MLPerf models with -1 biases parse."""
    from toolkit.tflite import read_model

    for p in sorted(external.rglob("*.tflite")):
        g = read_model(p)
        assert all(t >= 0 for t in g.inputs + g.outputs)


def test_tflm_never_sees_a_malformed_model_in_process(tmp_path):
    """A subgraph output of -1 made TFLite-Micro SIGSEGV inside the edgetk process; now one EdgetkError."""
    from toolkit.runtimes import run_tflm

    bad = tmp_path / "minus1.tflite"
    bad.write_bytes(fc_model(outs=(-1,)))
    with pytest.raises(EdgetkError, match="minus1.tflite"):
        run_tflm(bad, np.zeros((2, 12), np.int8))
    good = tmp_path / "good.tflite"
    good.write_bytes(fc_model())
    out = run_tflm(good, RNG.integers(-128, 128, size=(3, 12), dtype=np.int8))
    assert out.shape == (3, 5) and out.dtype == np.int8


def test_profile_cli_on_minus_one_model_is_one_error(tmp_path):
    bad = tmp_path / "minus1.tflite"
    bad.write_bytes(fc_model(outs=(-1,)))
    proc = subprocess.run([sys.executable, "-m", "toolkit", "profile", str(bad), "--target", "host-sim",
                           "-o", str(tmp_path / "rep")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "subgraph output" in proc.stderr and "Traceback" not in proc.stderr


# ---- item 2: quantization parameters, options, arity ----
@pytest.mark.parametrize("tensors, words", [
    (fc_tensors(in_q=((float("nan"),), (3,))), ["tensor 0", "scale", "nan"]),
    (fc_tensors(out_q=((float("inf"),), (0,))), ["tensor 3", "scale", "inf"]),
    (fc_tensors(in_q=((-0.05,), (3,))), ["tensor 0", "scale", "-0.05"]),
    (fc_tensors(w_zp=(300,)), ["tensor 1", "zero point", "300", "int8"]),
    (fc_tensors(w_scale=(0.01, 0.02), w_zp=(0,)), ["tensor 1", "2 scales", "1 zero point"]),
    (fc_tensors(w_scale=(0.01,) * 3, w_zp=(0,) * 3), ["tensor 1", "3 scales", "axis 0", "5"]),
])
def test_quantization_parameters_refused_by_the_reader(tensors, words):
    with pytest.raises(EdgetkError) as e:
        read_bytes(fc_model(tensors), name="m.tflite")
    for w in words:
        assert w in str(e.value), str(e.value)


def _empty_zero_points(data: bytes, tensor: int) -> bytes:
    from ai_edge_litert import schema_py_generated as s
    import flatbuffers

    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    m.subgraphs[0].tensors[tensor].quantization.zeroPoint = []
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_empty_zero_point_vector_refused():
    """LiteRT refuses a scale without zero points; the reader read the empty vector as 0."""
    with pytest.raises(EdgetkError, match=r"tensor 3 .*1 scale.*0 zero point"):
        read_bytes(_empty_zero_points(fc_model(), 3), name="m.tflite")


def test_zero_scale_refused_by_codegen_with_operator_and_field():
    refused(fc_model(fc_tensors(out_q=((0.0,), (0,)))), "operator 0 (FULLY_CONNECTED)", "scale", "'t3'")


@pytest.mark.parametrize("w_scale, out_scale", [((1e30,), (1e-30,)), ((1e-40,), (1e-30,))])
def test_multiplier_shift_beyond_the_kernels_refused(w_scale, out_scale):
    """0.05 * 1e30 / 1e-30 needs a left shift of ~ 2^200: undefined in C (UBSan); refused, not generated."""
    data = conv_model({}, w_scale=w_scale, out_scale=out_scale)
    if w_scale[0] < 1e-38:  # a float32 subnormal weight scale still gives a valid (zero) multiplier, as TFLite's
        lower(read_bytes(data))
        return
    refused(data, "operator 0 (CONV_2D)", "multiplier", "shift")


@pytest.mark.parametrize("options, words", [
    (dict(stride_h=0), ["operator 0 (CONV_2D)", "stride_h", "0"]),
    (dict(stride_w=-2), ["operator 0 (CONV_2D)", "stride_w", "-2"]),
    (dict(dilation_h_factor=0), ["operator 0 (CONV_2D)", "dilation_h_factor"]),
])
def test_bad_conv_options_refused(options, words):
    refused(conv_model(options), *words)


def test_pool_stride_zero_and_missing_options_refused():
    t = [T((1, 6, 6, 2), scale=(0.05,), zero_point=(3,)), T((1, 3, 3, 2), scale=(0.05,), zero_point=(3,))]
    pool = dict(padding="VALID", stride_w=0, stride_h=2, filter_width=2, filter_height=2)
    refused(build_model(t, [O("AVERAGE_POOL_2D", (0,), (1,), pool)], [0], [1]), "operator 0 (AVERAGE_POOL_2D)", "stride_w")
    no_opts = build_model(t, [O("MAX_POOL_2D", (0,), (1,), {})], [0], [1])
    refused(no_opts, "operator 0 (MAX_POOL_2D)", "filter_height")
    t2 = [T((1, 6, 6, 2), scale=(0.05,), zero_point=(3,)), T((1, 6, 6, 2), scale=(0.05,), zero_point=(3,))]
    refused(build_model(t2, [O("MEAN", (0,), (1,), {})], [0], [1]), "operator 0 (MEAN)", "input 1")


def test_operator_without_inputs_or_outputs_refused():
    refused(fc_model(op_in=()), "operator 0 (FULLY_CONNECTED)", "input")
    with pytest.raises(EdgetkError, match=r"operator 0 \(FULLY_CONNECTED\).*output"):
        lower(read_bytes(fc_model(op_out=(), outs=(3,))))


def test_zero_sized_tensor_refused():
    t = [T((1, 0, 6, 2), scale=(0.05,), zero_point=(3,)), T((1, 0, 6, 2), scale=(0.05,), zero_point=(3,))]
    refused(build_model(t, [O("RELU", (0,), (1,))], [0], [1]), "operator 0 (RELU)", "empty")


def test_parity_runs_tflm_in_process_only_on_models_codegen_validates(tmp_path):
    from toolkit.codegen.parity import run_tflm_flat

    bad = tmp_path / "minus1.tflite"
    bad.write_bytes(fc_model(outs=(-1,)))
    with pytest.raises(EdgetkError, match="subgraph output 0"):
        run_tflm_flat(bad, np.zeros((2, 12), np.int8))
    unsupported = tmp_path / "no_options.tflite"   # readable, refused by codegen: TFLite-Micro runs it in a child
    t = [T((1, 6, 6, 2), scale=(0.05,), zero_point=(3,)), T((1, 6, 6, 2), scale=(0.05,), zero_point=(3,))]
    unsupported.write_bytes(build_model(t, [O("RELU", (0,), (1,)), O("RELU", (1,), (0,))], [0], [1]))
    from toolkit.runtimes import run_tflm

    x = RNG.integers(-128, 128, size=(2, 6, 6, 2), dtype=np.int8)
    with pytest.raises(EdgetkError, match="writes tensor"):
        lower(read_bytes(unsupported.read_bytes()))
    np.testing.assert_array_equal(run_tflm_flat(unsupported, x), run_tflm(unsupported, x).reshape(2, -1))
    good = tmp_path / "good.tflite"
    good.write_bytes(fc_model())
    x = RNG.integers(-128, 128, size=(3, 12), dtype=np.int8)
    np.testing.assert_array_equal(run_tflm_flat(good, x), run_tflm(good, x).reshape(3, -1))


# ---- found by bench/fuzz_models.py (deep check: generated C vs TFLite-Micro) ----
def test_model_output_not_written_by_any_operator_is_refused():
    """A deleted operator left the model output unwritten: the C returned its buffer as it was (81 LSB off
    TFLite-Micro); a constant as the model output likewise."""
    t = fc_tensors() + [T((1, 5), scale=(0.2,), zero_point=(-2,))]
    refused(fc_model(t, outs=(4,)), "model output 't4' (tensor 4) is not written by any operator")
    refused(fc_model(outs=(1,)), "model output 't1' (tensor 1) is a constant")


@pytest.mark.parametrize("op, ins, n_tensors, words", [
    ("HARD_SWISH", (0, 1), 3, ["operator 0 (HARD_SWISH)", "2 inputs", "reads 1"]),
    ("MEAN", (0, 1, 1), 3, ["operator 0 (MEAN)", "3 inputs", "reads 2"]),
])
def test_input_counts_tflite_micro_refuses_are_refused(op, ins, n_tensors, words):
    t = [T((1, 4, 4, 3), scale=(0.05,), zero_point=(3,)), T((2,), "int32", None, data=np.array([1, 2], np.int32)),
         T((1, 1, 1, 3) if op == "MEAN" else (1, 4, 4, 3), scale=(0.1,), zero_point=(-4,))]
    refused(build_model(t, [O(op, ins, (2,), dict(keep_dims=True) if op == "MEAN" else {})], [0], [2]), *words)


def test_fc_bias_scale_tflite_micro_refuses_is_refused():
    t = fc_tensors()
    t[2] = T((5,), "int32", (1e6,), data=B5)
    refused(fc_model(t), "operator 0 (FULLY_CONNECTED)", "bias 't2' has scale 1e+06", "2 %")
    t[2] = T((5,), "int32", (0.0005,), data=B5)   # = 0.05 x 0.01: accepted
    assert lower(read_bytes(fc_model(t)))[0].op == "FULLY_CONNECTED"


def test_constant_operand_without_quantization_is_named():
    """PAD read a constant int8 tensor without quantization: AttributeError inside the lowering before."""
    t = [T((1, 2, 2, 1), scale=(0.05,), zero_point=(3,)), T((1, 2, 2, 1), scale=None, data=np.ones((1, 2, 2, 1), np.int8)),
         T((4, 2), "int32", None, data=np.zeros((4, 2), np.int32)), T((1, 2, 2, 1), scale=(0.05,), zero_point=(3,)),
         T((1, 2, 2, 1), scale=(0.05,), zero_point=(3,))]
    msg = refused(build_model(t, [O("PAD", (1, 2), (3,)), O("ADD", (0, 3), (4,))], [0], [4]),
                  "operator 0 (PAD)", "tensor 't1' (int8) has no quantization parameters")
    assert "could not be lowered" not in msg


def test_dilation_beyond_int16_is_refused():
    """TFLite-Micro holds strides, dilations and paddings in int16 (ConvParams): a dilation of 65534 ran as -2 there
    (generated C 135 LSB off); up to 32767 both agree (bench/fuzz_models.py)."""
    refused(conv_model(dict(dilation_w_factor=65534)),
            "operator 0 (CONV_2D)", "dilation_w_factor = 65534", "int16")


def test_operator_with_a_non_empty_intermediate_is_refused():
    """TFLite-Micro refuses an intermediate tensor of non-zero size ('Does not support intermediate tensor with
    non-zero size'); the LSTM's zero-sized [0] placeholders stay accepted (found by bench/fuzz_models.py)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    from toolkit.paths import REPO_ROOT

    data = (REPO_ROOT / "tests" / "data" / "lstm_fsdd_int8.tflite").read_bytes()
    lower(read_bytes(data))
    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    lstm = next(op for op in m.subgraphs[0].operators if op.intermediates is not None and len(op.intermediates))
    m.subgraphs[0].tensors[int(lstm.intermediates[2])].shape = []
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    refused(bytes(b.Output()), "(UNIDIRECTIONAL_SEQUENCE_LSTM)", "intermediate tensor", "not empty")


@pytest.mark.parametrize("x_shape", [(1, 38, 47, 2), (1, 4, 4, 1)])
def test_quantize_edge_with_another_size_than_its_output_is_refused(x_shape):
    """A float32 input larger than QUANTIZE's int8 output: the C wrote past its buffer (ASan global-buffer-overflow,
    found by bench/fuzz_models.py)."""
    t = [T(x_shape, dtype="float32", scale=None), T((1, 4, 4, 2), scale=(0.05,), zero_point=(3,)),
         T((1, 4, 4, 2), dtype="float32", scale=None)]
    refused(build_model(t, [O("QUANTIZE", (0,), (1,)), O("DEQUANTIZE", (1,), (2,))], [0], [2]),
            "operator 0 (QUANTIZE)", "differ in size")


def _lstm_with_intermediate(index: int) -> bytes:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    from toolkit.paths import REPO_ROOT

    m = s.ModelT.InitFromPackedBuf(bytearray((REPO_ROOT / "tests" / "data" / "lstm_fsdd_int8.tflite").read_bytes()), 0)
    lstm = next(op for op in m.subgraphs[0].operators if op.intermediates is not None and len(op.intermediates))
    lstm.intermediates = [int(i) for i in lstm.intermediates]
    lstm.intermediates[2] = index
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.mark.parametrize("index", [8214, 8388630, 127])
def test_intermediate_index_out_of_range_is_refused_by_the_reader(index):
    """An LSTM intermediate pointing past the tensor table fell into codegen's catch-all (IndexError: list index out
    of range; bench/fuzz_models.py seed 1, inputs 78609, 145673, 157788): the reader names the index."""
    with pytest.raises(EdgetkError) as e:
        read_bytes(_lstm_with_intermediate(index), name="m.tflite")
    msg = str(e.value)
    for w in ("(UNIDIRECTIONAL_SEQUENCE_LSTM)", "intermediate 2", f"tensor {index}", "tensors"):
        assert w in msg, msg
    assert "could not be lowered" not in msg


def test_absent_intermediate_is_refused_with_its_position():
    refused(_lstm_with_intermediate(-1), "(UNIDIRECTIONAL_SEQUENCE_LSTM)", "intermediate 2", "absent")


def test_constant_weight_marked_variable_is_refused():
    """TFLite-Micro allocates a variable tensor in its arena and resets it, so an LSTM weight flagged isVariable ran
    as zeros there while the generated C used its data (32 LSB off; bench/fuzz_models.py seed 3, input 31251). A
    plain operator's constant flagged variable is refused the same way."""
    import dataclasses

    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    from toolkit.paths import REPO_ROOT

    m = s.ModelT.InitFromPackedBuf(bytearray((REPO_ROOT / "tests" / "data" / "lstm_fsdd_int8.tflite").read_bytes()), 0)
    m.subgraphs[0].tensors[11].isVariable = True     # recurrent-to-cell weights
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    refused(bytes(b.Output()), "(UNIDIRECTIONAL_SEQUENCE_LSTM)", "'arith.constant10'", "variable", "constant data")
    t = fc_tensors()
    t[1] = dataclasses.replace(t[1], variable=True)
    refused(fc_model(t), "operator 0 (FULLY_CONNECTED)", "variable", "constant data")


@pytest.mark.parametrize("op, w_shape, out_batches", [("DEPTHWISE_CONV_2D", (1, 3, 3, 4), 127),
                                                      ("CONV_2D", (4, 3, 3, 4), 2)])
def test_conv_output_batches_other_than_the_input_are_refused(op, w_shape, out_batches):
    """A depthwise conv [1, 6, 6, 4] -> [127, 6, 6, 4] was accepted: both runtimes compute one batch and leave the
    rest of the output as it was (bench/fuzz_models.py seed 3, input 59222)."""
    w = RNG.integers(-127, 128, size=w_shape, dtype=np.int8)
    t = [T((1, 6, 6, 4), scale=(0.05,), zero_point=(3,)), T(w_shape, data=w, scale=(0.01,), zero_point=(0,)),
         T((4,), "int32", None, data=np.zeros(4, np.int32)), T((out_batches, 6, 6, 4), scale=(0.1,), zero_point=(-4,))]
    opts = dict(padding="SAME", stride_w=1, stride_h=1, dilation_w_factor=1, dilation_h_factor=1)
    opts |= dict(depth_multiplier=1) if op == "DEPTHWISE_CONV_2D" else {}
    refused(build_model(t, [O(op, (0, 1, 2), (3,), opts)], [0], [3]), f"operator 0 ({op})", "batches")



def test_add_output_larger_than_the_broadcast_of_its_inputs_is_refused():
    """MEAN -> [1, 1, 1, 3], ADD with the input [1, 4, 4, 3] -> [3, 4, 4, 3] was accepted: the C repeated the batch,
    TFLite-Micro gave other bytes (found probing the fuzz seeds' shapes after bench/fuzz_models.py seed 3, 59222)."""
    q, q2 = dict(scale=(0.05,), zero_point=(3,)), dict(scale=(0.1,), zero_point=(-4,))
    t = [T((1, 4, 4, 3), **q), T((2,), "int32", None, data=np.array([1, 2], np.int32)), T((1, 1, 1, 3), **q2),
         T((3, 4, 4, 3), **q)]
    ops = [O("MEAN", (0, 1), (2,), dict(keep_dims=True)), O("ADD", (2, 0), (3,))]
    refused(build_model(t, ops, [0], [3]), "operator 1 (ADD)", "broadcast", "[3, 4, 4, 3]")


@pytest.mark.parametrize("op", ["ADD", "MUL", "SUB"])
def test_binary_with_a_constant_and_an_output_beyond_the_broadcast_is_refused(op):
    q = dict(scale=(0.05,), zero_point=(3,))
    c = RNG.integers(-127, 128, size=(1, 3, 4), dtype=np.int8)
    t = [T((1, 3, 4), **q), T((1, 3, 4), data=c, **q), T((3, 3, 4), scale=(0.1,), zero_point=(-4,))]
    refused(build_model(t, [O(op, (0, 1), (2,))], [0], [2]), f"operator 0 ({op})", "broadcast", "[3, 3, 4]")


@pytest.mark.parametrize("dm", [1, 3, 0])
def test_depthwise_multiplier_option_other_than_the_channel_ratio_is_refused(dm):
    """DEPTHWISE_CONV_2D [1, 6, 6, 2] -> [1, 6, 6, 4] with depth_multiplier = 1: the C used 4 / 2 = 2, TFLite-Micro
    the option (221 LSB apart; bench/fuzz_models.py seed 3, input 81245). With the option 2 both agree."""
    w = RNG.integers(-127, 128, size=(1, 3, 3, 4), dtype=np.int8)
    t = [T((1, 6, 6, 2), scale=(0.05,), zero_point=(3,)), T((1, 3, 3, 4), data=w, scale=(0.01,), zero_point=(0,)),
         T((4,), "int32", None, data=np.zeros(4, np.int32)), T((1, 6, 6, 4), scale=(0.1,), zero_point=(-4,))]
    opts = dict(padding="SAME", stride_w=1, stride_h=1, dilation_w_factor=1, dilation_h_factor=1)
    refused(build_model(t, [O("DEPTHWISE_CONV_2D", (0, 1, 2), (3,), opts | dict(depth_multiplier=dm))], [0], [3]),
            "operator 0 (DEPTHWISE_CONV_2D)", f"depth_multiplier = {dm}", "4 / 2")
    lower(read_bytes(build_model(t, [O("DEPTHWISE_CONV_2D", (0, 1, 2), (3,), opts | dict(depth_multiplier=2))],
                                 [0], [3])))


def test_mean_output_other_than_the_reduced_input_is_refused():
    """MEAN [1, 4, 4, 1] over axes 1, 2 with an output [1, 1, 1, 3]: the C and TFLite-Micro gave other bytes (12 LSB;
    found probing the fuzz seeds' shapes after bench/fuzz_models.py seed 3)."""
    q = dict(scale=(0.05,), zero_point=(3,))
    t = [T((1, 4, 4, 1), **q), T((2,), "int32", None, data=np.array([1, 2], np.int32)), T((1, 1, 1, 3), **q)]
    refused(build_model(t, [O("MEAN", (0, 1), (2,), dict(keep_dims=True))], [0], [2]),
            "operator 0 (MEAN)", "[1, 1, 1, 3]", "[1, 1, 1, 1]")


@pytest.mark.parametrize("mask, out_shape", [(1, (1, 2, 4)), (3, (1, 1, 4)), (0, (2, 4))])
def test_strided_slice_output_shape_other_than_the_slice_is_refused(mask, out_shape):
    """TFLite-Micro checks each output dimension of a STRIDED_SLICE (shrunk axes dropped) and refused a shrink mask
    the output shape did not follow, which codegen accepted (same element count; found by probing the fuzz seeds)."""
    def i32(*v: int) -> T:
        return T((len(v),), "int32", None, data=np.array(v, np.int32))
    q = dict(scale=(0.05,), zero_point=(3,))
    t = [T((1, 6, 8), **q), i32(0, 1, 0), i32(1, 5, 8), i32(1, 2, 2), T(out_shape, **q)]
    refused(build_model(t, [O("STRIDED_SLICE", (0, 1, 2, 3), (4,), dict(shrink_axis_mask=mask))], [0], [4]),
            "operator 0 (STRIDED_SLICE)", f"output {list(out_shape)}")


@pytest.mark.parametrize("value", [-1, 23, 30])
def test_unknown_quantized_bias_type_is_refused(value):
    """TFLite-Micro refuses a quantized_bias_type outside the TensorType enum (it runs 0..22); codegen accepted it
    (found by probing the fuzz seeds' options)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(bytearray(fc_model()), 0)
    m.subgraphs[0].operators[0].builtinOptions.quantizedBiasType = value
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    refused(bytes(b.Output()), "operator 0 (FULLY_CONNECTED)", f"quantized_bias_type = {value}", "TensorType")
    m.subgraphs[0].operators[0].builtinOptions.quantizedBiasType = 9
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    lower(read_bytes(bytes(b.Output())))


def softmax_model(beta: float, in_scale: float = 0.1) -> bytes:
    t = [T((1, 10), scale=(in_scale,), zero_point=(0,)), T((1, 10), scale=(1 / 256,), zero_point=(-128,))]
    return build_model(t, [O("SOFTMAX", (0,), (1,), dict(beta=beta))], [0], [1])


@pytest.mark.parametrize("beta", [1.401298464324817e-45, 1e-7])
def test_softmax_beta_that_tflite_micro_aborts_on_is_refused(beta, tmp_path):
    """Found by bench/fuzz_models.py (seed 4, input 16423: beta a float32 subnormal): TFLite-Micro's
    PreprocessSoftmaxScaling checks beta x input scale x 2^26 > 1 and aborts (SIGABRT); codegen generated C for it
    (0.1 x 1e-7 x 2^26 = 0.67 as well)."""
    from toolkit.runtimes import run_tflm

    data = softmax_model(beta)
    (tmp_path / "m.tflite").write_bytes(data)
    with pytest.raises(EdgetkError, match="TFLite-Micro"):
        run_tflm(tmp_path / "m.tflite", np.zeros((1, 10), np.int8))
    refused(data, "operator 0 (SOFTMAX)", "beta")


def test_softmax_beta_just_above_tflite_micros_bound_is_generated_and_equal(tmp_path):
    from toolkit.codegen.parity import check

    (tmp_path / "m.tflite").write_bytes(softmax_model(2e-7))  # 0.1 x 2e-7 x 2^26 = 1.34
    x = np.random.default_rng(0).integers(-128, 128, (8, 10), dtype=np.int8)
    assert check(tmp_path / "m.tflite", x, tmp_path / "c").identical == 8


@pytest.mark.parametrize("axes", [(9, 2), (1, -5), (4,)])
def test_mean_axis_outside_the_rank_is_refused(axes):
    """Found by bench/fuzz_models.py (seed 4, input 26799): MEAN over axes [9, 2] of a rank-4 tensor; codegen read 9
    as 9 mod 4 = 1 and TFLite-Micro did something else (48 LSB apart). Axes must lie in [-rank, rank)."""
    q = dict(scale=(0.05,), zero_point=(3,))
    t = [T((1, 4, 4, 3), **q), T((len(axes),), "int32", None, data=np.array(axes, np.int32)), T((1, 1, 1, 3), **q)]
    refused(build_model(t, [O("MEAN", (0, 1), (2,), dict(keep_dims=True))], [0], [2]),
            "operator 0 (MEAN)", "axis", str([a for a in axes if not -4 <= a < 4][0]))


def test_mean_negative_axes_within_the_rank_are_generated_and_equal(tmp_path):
    from toolkit.codegen.parity import check

    q = dict(scale=(0.05,), zero_point=(3,))
    t = [T((1, 4, 4, 3), **q), T((2,), "int32", None, data=np.array([-3, 2], np.int32)), T((1, 1, 1, 3), **q)]
    (tmp_path / "m.tflite").write_bytes(build_model(t, [O("MEAN", (0, 1), (2,), dict(keep_dims=True))], [0], [2]))
    x = np.random.default_rng(0).integers(-128, 128, (6, 48), dtype=np.int8)
    assert check(tmp_path / "m.tflite", x, tmp_path / "c").identical == 6


@pytest.mark.parametrize("out_shape", [(1, 5, 1), (1, 1, 5, 1)])
def test_fc_output_not_ending_in_its_units_is_refused(out_shape):
    """Found by bench/fuzz_models.py (seed 4, input 59353: MLPerf AD's first FULLY_CONNECTED with output [1, 128, 1]):
    TFLite-Micro takes 128 batches of 1 unit from such an output and read past the input (84 LSB off the C)."""
    t = fc_tensors()
    t[3] = T(out_shape, scale=(0.2,), zero_point=(-2,))
    refused(fc_model(t), "operator 0 (FULLY_CONNECTED)", "must end in the weights' 5 units")


@pytest.mark.parametrize("scale,zp", [(0.05, 3), (1 / 256, -128), (0.0, 0), (1e-45, 3), (3.4e38, 127), (1e-8, -1),
                                      (7.0, 5), (0.0137, -17)])
def test_quantize_thresholds_are_the_binary_search_over_affine_quantize(scale, zp):
    """The float32 -> int8 QUANTIZE table: the 255 searches run side by side on arrays now; each threshold must be the
    smallest float32 (order key) whose scalar AffineQuantize reaches its level, and the one below must not reach it."""
    from toolkit.codegen import quantize as qz

    th = qz.quantize_thresholds(scale, zp)
    assert th == sorted(th) and len(th) == 255
    for k, key in enumerate(th):
        want = qz.INT8_MIN + 1 + k
        if key <= qz.float_order_key(0x7F800000):   # a level no float32 reaches is past +inf
            assert qz.affine_quantize(qz._key_to_float(key), scale, zp) >= want
        assert qz.affine_quantize(qz._key_to_float(key - 1), scale, zp) < want


def test_lstm_gate_accumulator_beyond_int32_is_refused(tmp_path):
    """An LSTM gate bias of -2^31 (a word overwritten in the forget gate's bias) was accepted: the generated C's
    int32 accumulator overflowed (UBSan: signed integer overflow in et_lstm.c; bench/fuzz_models.py seed 6, input
    311114). Refused now with the bound conv/FC use (255 x sum |weights| + |bias| within int32), input and
    recurrent FCs of every gate; the unmutated model stays accepted."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    from toolkit import fuzz

    seed = (REPO_ROOT / "tests" / "data" / "lstm_fsdd_int8.tflite").read_bytes()
    assert fuzz.check_tflite(seed) == "accepted"
    m = s.ModelT.InitFromPackedBuf(bytearray(seed), 0)
    t = m.subgraphs[0].tensors[6]                    # arith.constant15: a gate bias, int32 [32]
    bias = np.frombuffer(bytes(bytearray(m.buffers[t.buffer].data)), np.int32).copy()
    bias[11] = -2**31
    m.buffers[t.buffer].data = np.frombuffer(bias.tobytes(), np.uint8)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    refused(bytes(b.Output()), "operator 0 (UNIDIRECTIONAL_SEQUENCE_LSTM)", "int32 accumulator can reach 2147",
            "beyond int32")
