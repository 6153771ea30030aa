"""Bundles a trained model_dir into car_tf/pretrained/<name>/, with its validation scores.

  python tools/package_model.py --model_dir=runs/car-x4-bicubic --name=car-x4-bicubic \
      --data_dir=data/val/Set5 --data_dir=data/val/Set14

The scores are computed with the standard protocol (car_tf.evaluation) and stored in
metrics.json beside the weights, together with this command's arguments.
"""

import sys

from absl import app, flags

from car_tf import evaluation, pretrained

flags.DEFINE_string("model_dir", None, "Training model_dir (config.json + checkpoints).", required=True)
flags.DEFINE_string("name", None, "Bundled model name, e.g. car-x4-bicubic.", required=True)
flags.DEFINE_multi_string("data_dir", [], "Validation folders to score the model on.")
flags.DEFINE_string("baseline_model", None, "SR model trained on bicubic LR, for the bicubic+edsr row.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix to bundle (e.g. runs/x/ckpt-3000), or best (the best-validated weights); default the latest.")
flags.DEFINE_string("note", "", "Free text stored in metrics.json (e.g. how far training got).")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    try:
        model = pretrained.load_model_checkpoint(FLAGS.model_dir, FLAGS.checkpoint)
        if pretrained.training_mode(FLAGS.model_dir) == "sr_baseline":
            # An SR baseline is scored as what it is: bicubic LR -> its EDSR.
            report = evaluation.evaluate(model, FLAGS.data_dir, baseline=model, car_rows=False,
                                       progress_stream=False)
        else:
            baseline = pretrained.load_model(FLAGS.baseline_model) if FLAGS.baseline_model else None
            report = evaluation.evaluate(model, FLAGS.data_dir, baseline=baseline,
                                       progress_stream=False)
    except (ValueError, OSError) as error:
        sys.exit(f"package_model.py: error: {error}")
    metrics = {
        "protocol": report.protocol,
        "results": [row.as_json() for row in report.rows],
        "note": FLAGS.note,
        "command": " ".join(sys.argv),
    }
    print(evaluation.markdown(report))
    print(pretrained.package_model(FLAGS.model_dir, FLAGS.name, metrics, checkpoint=FLAGS.checkpoint))


if __name__ == "__main__":
    app.run(main)
