"""Round-trips the bundled sample images with the bundled CAR models (`make demo`)."""

from absl import app, flags

from car_tf import demo

flags.DEFINE_string("out_dir", "demo_output", "Folder for the tables and comparison pictures.")
flags.DEFINE_multi_string("model", None, "Model name or path; default: every bundled CAR model.")
flags.DEFINE_integer("figures", 5, "Comparison pictures per model (one per sample image).")


def main(argv):
    del argv
    demo.run_demo(flags.FLAGS.out_dir, flags.FLAGS.model, flags.FLAGS.figures)


if __name__ == "__main__":
    app.run(main)
