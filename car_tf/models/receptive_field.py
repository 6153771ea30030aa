"""How far a chain of layers looks: the input pixels an output window depends on.

Each network states its own reach from this (ResamplerNet.reach, EDSR.reach,
BicubicUpscaler.reach, CARModel.downscale_reach / upscale_reach), so the tiled
runner (car_tf.inference) can size its halos without knowing the layers inside.

Along one axis, in the units of each layer's own grid: a stride-1 conv of kernel
size k widens an interval by k // 2 either side; any other layer says how itself,
with `input_interval(start, end)` (space-to-depth, depth-to-space, residual blocks,
per-pixel layers, the bicubic upscaler).
"""

import keras


def input_interval(layers, start, end):
    """The input interval [start, end) that `layers` (applied in order) need for the output
    interval [start, end)."""
    for layer in reversed(layers):
        if isinstance(layer, keras.layers.Conv2D):
            if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1):
                raise ValueError(f"receptive field: layer {layer.name} is strided or dilated")
            radius = max(layer.kernel_size) // 2
            start, end = start - radius, end + radius
        elif hasattr(layer, "input_interval"):
            start, end = layer.input_interval(start, end)
        else:
            raise ValueError(
                f"receptive field: don't know how far layer {layer.name} "
                f"({type(layer).__name__}) reaches"
            )
    return start, end


def network_reach(layers, input_stride, output_stride):
    """Input pixels each side that an output window of `layers` depends on.

    Args:
      layers: the layers in the order they run, a chain (skips add no reach).
      input_stride, output_stride: pixels of a common fine grid per input and
        per output pixel, e.g. (1, scale) for a downscaler, (scale, 1) for an
        upscaler. Output windows must start and end on multiples of the
        coarsest grid the chain passes through (tiles aligned to
        size_multiple do).

    Returns:
      int: how many input pixels beyond the output window's footprint,
      on the worse of the two sides, the result can depend on.
    """
    # An aligned output window [0, n): n output pixels covering a whole number
    # of the coarsest blocks. 64 * stride covers every block size used here.
    period = 64 * max(input_stride, output_stride)
    n = period // output_stride
    start, end = input_interval(layers, 0, n)
    footprint = n * output_stride // input_stride
    return max(0, -start, end - footprint)
