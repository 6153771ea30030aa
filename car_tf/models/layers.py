"""Small Keras layers shared by the CAR networks.

All of them are NHWC and stride 1 (where they convolve); none is a Lambda, so
models built from them save to `.keras` and load with safe_mode=True. run_chain applies
a list of them, running a space-to-depth and the 1 x 1 conv after it as one strided
convolution of the conv's own weights.
"""

import math

import keras
import tensorflow as tf

from car_tf.models.receptive_field import input_interval

_PACKAGE = "car_tf"

# Mean RGB of the DIV2K training set, in [0, 1]; both ResamplerNet and EDSR
# subtract it first (paper section 4.1.2; EDSR's MeanShift).
DIV2K_MEAN_RGB = (0.4488, 0.4371, 0.4040)


def count_trainable_params(layer):
    """Number of trainable scalars in a built layer or model."""
    return sum(math.prod(weight.shape) for weight in layer.trainable_weights)


def build_chain(layers, input_shape):
    """Builds `layers` one after another from `input_shape`; returns the final shape.

    The networks build their sub-layers eagerly, from shapes alone, so that a
    model has all its weights before its first call (parameter counts, and
    `.keras` loading, which restores weights right after `build`).
    """
    shape = tuple(input_shape)
    for layer in layers:
        if not layer.built:
            layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


@keras.saving.register_keras_serializable(package=_PACKAGE)
def leaky_relu(x):
    """LeakyReLU with slope 0.2 written as max(x, 0.2 x).

    Same values and gradients as tf.nn.leaky_relu, but it keeps grappler's
    remapper from fusing conv + bias + LeakyRelu in training graphs, where the
    fusion fails ("remapper failed ... LeakyReluGrad") and takes every other
    fusion of the graph down with it.
    """
    return tf.maximum(x, 0.2 * x)


def add_sublayers(owner, layers):
    """Makes each layer an attribute of `owner`, named after it; returns them as a tuple.

    Keras 3 keeps a list of layers in its own tracked list, which
    tf.train.Checkpoint does not follow: weights held only in a list would be
    silently missing from training checkpoints. Attributes are followed by
    both Keras and TensorFlow; the returned tuple (untracked by TensorFlow)
    just keeps the order.
    """
    for layer in layers:
        if hasattr(owner, layer.name):
            raise ValueError(f"{type(owner).__name__} already has an attribute {layer.name!r}")
        setattr(owner, layer.name, layer)
    return tuple(layers)


def _pair(value, name):
    pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(pair) != 2 or any(int(v) != v or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return tuple(int(v) for v in pair)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReflectionConv2D(keras.layers.Conv2D):
    """Stride-1 convolution of an input reflection-padded by kernel_size // 2.

    The output keeps the input's height and width: [N, H, W, C] -> [N, H, W, filters].
    Reflection padding (rather than zeros) keeps the image borders from looking
    like dark edges to the ResamplerNet, as in the authors' network. H and W
    must exceed kernel_size // 2 (tf.pad REFLECT cannot pad more than that).
    """

    def __init__(self, filters, kernel_size, **kwargs):
        kernel_size = _pair(kernel_size, "kernel_size")
        if any(size % 2 == 0 for size in kernel_size):
            raise ValueError(f"ReflectionConv2D needs odd kernel sizes, got {kernel_size}")
        for key, keep in (("padding", "valid"), ("strides", (1, 1)), ("dilation_rate", (1, 1)),
                          ("data_format", "channels_last")):
            given = kwargs.pop(key, keep)
            if (tuple(given) if isinstance(given, list) else given) != keep:
                raise ValueError(f"ReflectionConv2D fixes {key}={keep!r}, got {given!r}")
        super().__init__(
            filters, kernel_size, padding="valid", data_format="channels_last", **kwargs
        )

    def call(self, inputs):
        pad_h, pad_w = self.kernel_size[0] // 2, self.kernel_size[1] // 2
        padded = tf.pad(inputs, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]], mode="REFLECT")
        return super().call(padded)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.filters)

    def get_config(self):
        config = super().get_config()
        for key in ("padding", "strides", "dilation_rate", "data_format"):
            config.pop(key, None)
        return config


def conv2d(filters, kernel_size, padding, activation=None, name=None):
    """A stride-1, biased, "same"-sized conv with reflection or zero padding.

    padding: "reflect" (ResamplerNet) or "zero" (EDSR, as in Lim et al.).
    """
    if padding == "reflect" and kernel_size > 1:
        return ReflectionConv2D(filters, kernel_size, activation=activation, name=name)
    if padding not in ("reflect", "zero"):
        raise ValueError(f"padding must be 'reflect' or 'zero', got {padding!r}")
    return keras.layers.Conv2D(
        filters, kernel_size, padding="same", activation=activation, name=name
    )


class _BlockLayer(keras.layers.Layer):
    """A weight-free layer that moves pixels between space and depth in b x b blocks."""

    def __init__(self, block_size, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpaceToDepth(_BlockLayer):
    """[N, H, W, C] -> [N, H/b, W/b, C*b*b] (tf.nn.space_to_depth, "pixel unshuffle")."""

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        b = self.block_size
        return (n, None if h is None else h // b, None if w is None else w // b, c * b * b)

    def input_interval(self, start, end):
        """One output pixel is made of block_size input pixels."""
        return start * self.block_size, end * self.block_size


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DepthToSpace(_BlockLayer):
    """[N, H, W, C*b*b] -> [N, H*b, W*b, C] (tf.nn.depth_to_space, sub-pixel "pixel shuffle")."""

    def call(self, inputs):
        if self.block_size == 1:
            return inputs
        return tf.nn.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        b = self.block_size
        return (n, None if h is None else h * b, None if w is None else w * b, c // (b * b))

    def input_interval(self, start, end):
        """block_size output pixels come from one input pixel."""
        return math.floor(start / self.block_size), math.ceil(end / self.block_size)


def is_pointwise_conv(layer):
    """Whether `layer` is a stride-1, undilated 1 x 1 keras Conv2D (what conv2d gives for
    kernel_size 1)."""
    return (isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1)
            and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
            and layer.data_format == "channels_last" and layer.groups == 1)


def space_to_depth_conv(inputs, space_to_depth, conv):
    """conv(space_to_depth(inputs)) for a SpaceToDepth layer and a pointwise Conv2D `conv`,
    computed as one convolution of stride b = block_size with conv's own kernel [1, 1, b*b*C, F]
    read as [b, b, C, F] (tf.nn.space_to_depth orders a block's channels by row, column, then
    C). The same weights and sums without the space-to-depth copy, which cost a third of
    these layers' CPU time in float32 (docs/BENCHMARKS.md, "SavedModel: 25 MP x4"). Runs
    under conv's dtype policy, as conv itself would.
    """
    if not is_pointwise_conv(conv):
        raise ValueError(f"space_to_depth_conv needs a 1x1 stride-1 Conv2D, got {conv.name}")
    block = space_to_depth.block_size
    dtype = conv.compute_dtype
    kernel = tf.cast(conv.kernel, dtype)
    channels = kernel.shape[2] // (block * block)
    kernel = tf.reshape(kernel, [block, block, channels, kernel.shape[3]])
    outputs = tf.nn.conv2d(tf.cast(inputs, dtype), kernel, block, "VALID")
    if conv.use_bias:
        outputs = tf.nn.bias_add(outputs, tf.cast(conv.bias, dtype))
    return outputs if conv.activation is None else conv.activation(outputs)


def run_chain(layers, inputs):
    """The layers applied one after another, each SpaceToDepth followed by a pointwise Conv2D
    run as one convolution (space_to_depth_conv)."""
    layers = list(layers)
    index = 0
    while index < len(layers):
        layer = layers[index]
        following = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(layer, SpaceToDepth) and is_pointwise_conv(following):
            inputs = space_to_depth_conv(inputs, layer, following)
            index += 2
        else:
            inputs = layer(inputs)
            index += 1
    return inputs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MeanShift(keras.layers.Layer):
    """Adds sign * mean_rgb to an RGB image; a constant, not a weight. [N,H,W,3] -> same."""

    def __init__(self, mean_rgb=DIV2K_MEAN_RGB, sign=-1.0, **kwargs):
        super().__init__(**kwargs)
        self.mean_rgb = tuple(float(v) for v in mean_rgb)
        self.sign = float(sign)

    def call(self, inputs):
        shift = tf.constant([self.sign * v for v in self.mean_rgb], dtype=inputs.dtype)
        return inputs + shift

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def input_interval(self, start, end):
        """Per pixel: no reach."""
        return start, end

    def get_config(self):
        return {**super().get_config(), "mean_rgb": list(self.mean_rgb), "sign": self.sign}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResidualBlock(keras.layers.Layer):
    """x + res_scale * conv(act(conv(x))), two 3x3 convs with biases, no normalisation.

    [N, H, W, features] -> same. ResamplerNet uses it with LeakyReLU(0.2),
    reflection padding and res_scale 1; EDSR with ReLU, zero padding and its
    residual scaling.
    """

    def __init__(self, features, activation="relu", res_scale=1.0, padding="zero",
                 kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.features = int(features)
        self.activation = keras.activations.get(activation)
        self.res_scale = float(res_scale)
        self.padding = padding
        self.kernel_size = int(kernel_size)
        self.conv1 = conv2d(self.features, self.kernel_size, padding, self.activation, name="conv1")
        self.conv2 = conv2d(self.features, self.kernel_size, padding, name="conv2")

    def build(self, input_shape):
        if input_shape[-1] != self.features:
            raise ValueError(
                f"ResidualBlock with {self.features} features got {input_shape[-1]} input channels"
            )
        build_chain([self.conv1, self.conv2], input_shape)

    def call(self, inputs):
        residual = self.conv2(self.conv1(inputs))
        if self.res_scale != 1.0:
            residual = residual * self.res_scale
        return inputs + residual

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def input_interval(self, start, end):
        """x + conv2(act(conv1(x))): the skip adds no reach."""
        return input_interval([self.conv1, self.conv2], start, end)

    def get_config(self):
        return {
            **super().get_config(),
            "features": self.features,
            "activation": keras.activations.serialize(self.activation),
            "res_scale": self.res_scale,
            "padding": self.padding,
            "kernel_size": self.kernel_size,
        }
