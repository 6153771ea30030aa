"""Bundles a trained model_dir into car_tf/pretrained/<name>/, with its validation scores.

  python tools/package_model.py --model_dir=runs/car-x4-bicubic --name=car-x4-bicubic \
      --data_dir=data/val/Set5 --data_dir=data/val/Set14

The scores are computed with the standard protocol (car_tf.evaluation) and stored in
metrics.json beside the weights, together with this command's arguments. With
--lr_codec=jpeg|webp and --lr_quality, the rate-distortion points and Bjontegaard deltas
(car_tf.evaluation.rate_distortion) are stored too, under "rate_distortion".
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
flags.DEFINE_string("lr_codec", "png", "Also store RD points under this codec (jpeg or webp).")
flags.DEFINE_multi_integer("lr_quality", [], "Codec qualities 1..100 for --lr_codec.")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    from car_tf import codecs
    from car_tf.evaluation import rate_distortion

    try:
        codecs.check_codec(FLAGS.lr_codec, FLAGS.lr_quality)
    except codecs.CodecError as error:
        sys.exit(f"package_model.py: error: {error}")
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
        coded = None
        if FLAGS.lr_codec != "png":
            coded = rate_distortion.evaluate(model, FLAGS.data_dir, FLAGS.lr_codec,
                                             FLAGS.lr_quality)
    except (ValueError, OSError) as error:
        sys.exit(f"package_model.py: error: {error}")
    metrics = {
        "protocol": report.protocol,
        "results": [row.as_json() for row in report.rows],
        "note": FLAGS.note,
        "command": " ".join(sys.argv),
    }
    print(evaluation.markdown(report))
    if coded is not None:
        metrics["rate_distortion"] = coded.as_json()
        print(rate_distortion.markdown(coded))
    print(pretrained.package_model(FLAGS.model_dir, FLAGS.name, metrics, checkpoint=FLAGS.checkpoint))


if __name__ == "__main__":
    app.run(main)
