"""Running and timing car_tf `.tflite` files with the LiteRT interpreter (the `export` extra)."""

import os
import time

import numpy as np


def _litert_interpreter(path, num_threads=None):
    # The LiteRT runtime is the `export` extra: tf.lite.Interpreter is deprecated.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as error:
        raise ImportError(
            "running .tflite files needs LiteRT: pip install 'car_tf[export]' (ai-edge-litert)"
        ) from error
    interpreter = Interpreter(model_path=path, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(path, image, num_threads=None):
    """Runs a car_tf `.tflite` file on one uint8 array shaped as its input; returns its output."""
    interpreter = _litert_interpreter(path, num_threads)
    input_detail = interpreter.get_input_details()[0]
    expected = tuple(input_detail["shape"])
    if tuple(image.shape) != expected or image.dtype != np.uint8:
        raise ValueError(
            f"{path} takes uint8 {expected}, got {image.dtype} {tuple(image.shape)}; "
            "export again with --height/--width for another size"
        )
    interpreter.set_tensor(input_detail["index"], image)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def benchmark_tflite(path, runs=10, warmup=2, num_threads=None, seed=0):
    """Times `runs` invocations of a `.tflite` file on random uint8 input, after `warmup` ones.

    Returns a dict: path, size_bytes, input_shape, output_shape, num_threads, runs,
    median_ms, mean_ms, min_ms.
    """
    interpreter = _litert_interpreter(path, num_threads)
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    image = np.random.default_rng(seed).integers(
        0, 256, size=input_detail["shape"], dtype=np.uint8
    )
    interpreter.set_tensor(input_detail["index"], image)
    for _ in range(warmup):
        interpreter.invoke()
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return {
        "path": path,
        "size_bytes": os.path.getsize(path),
        "input_shape": [int(d) for d in input_detail["shape"]],
        "output_shape": [int(d) for d in output_detail["shape"]],
        "num_threads": num_threads,
        "runs": runs,
        "median_ms": float(np.median(times_ms)),
        "mean_ms": float(np.mean(times_ms)),
        "min_ms": float(np.min(times_ms)),
    }
