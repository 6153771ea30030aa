"""Research yardsticks for trained models, kept out of the serving path's imports.

  kernel_analysis.py  a model against its own kernels without offsets and their spatial mean
  fixed_kernel.py     the best single fixed kernel for the bicubic upscaler
  codec_kernel.py     the best symmetric separable kernel under a real codec, searched without gradients
  training_curves.py  a run's TensorBoard scalars drawn as PNG
"""
