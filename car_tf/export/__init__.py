"""Exports of a CAR model for deployment.

  savedmodel.py  SavedModel for TF Serving (uint8 and PNG-bytes signatures), and loading it
  tflite.py      `.tflite` downscaler and upscaler for LiteRT, built-in ops only
  litert.py      running and timing `.tflite` files
  graph.py       what both put in their graphs: any input size, the resampler they use
"""
