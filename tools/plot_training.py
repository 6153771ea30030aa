"""Draws the training curves of model_dirs as PNG (for docs/RESULTS.md).

  python tools/plot_training.py --model_dir=runs/car-x4-bicubic --out_dir=docs/curves
"""

import sys

from absl import app, flags

from car_tf.analysis import training_curves

flags.DEFINE_multi_string("model_dir", [], "Training model_dir(s) with train/ and eval/ event files.")
flags.DEFINE_string("out_dir", "docs/curves", "Where <name>_train.png and <name>_eval.png go.")


def main(argv):
    del argv
    try:
        for model_dir in flags.FLAGS.model_dir:
            for path in training_curves.plot_model_dir(model_dir, flags.FLAGS.out_dir):
                print(path)
    except ValueError as error:
        sys.exit(f"plot_training.py: error: {error}")


if __name__ == "__main__":
    app.run(main)
