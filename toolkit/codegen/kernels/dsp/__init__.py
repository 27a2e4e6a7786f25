"""The dsp kernel set: Cortex-M DSP-extension kernels on weights re-laid out at generation time.

toolkit.codegen.specialize turns lowered steps into calls of these kernels (offsets folded into the
biases, requantization constants per channel, weights in the SIMD access order); on cores without the
DSP extension (and on the host) the same C computes the same bits with portable expressions.
"""
