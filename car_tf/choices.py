"""The names a user picks from, in one TensorFlow-free home.

The `car` parser offers them as choices before anything heavy is imported (so that
`car --help` and a bad flag answer at once); the modules that act on a choice import
their list from here.
"""

# Upscalers a CAR model can be built with (car_tf.models.car).
UPSCALERS = ("bicubic", "edsr")
# Implementations of the adaptive resampler (car_tf.ops.adaptive_resample): "auto" takes
# the compiled op when its library loads, else the pure-TF twin.
IMPLEMENTATIONS = ("auto", "custom", "composite")
# How car_tf.inference runs a ResamplerNet: "float32" throughout, or "mixed_bfloat16"
# (every layer but the kernel head's last convolution in bfloat16); "auto" takes
# mixed_bfloat16 on a CPU with bfloat16 instructions and no GPU, else float32.
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
