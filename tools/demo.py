"""Round-trips the bundled sample images with the bundled CAR models (`make demo`)."""

from absl import app, flags

from car_tf import demo

flags.DEFINE_string("out_dir", "demo_output", "Folder for the tables and comparison pictures.")
flags.DEFINE_multi_string("model", None, "Model name or path; default: every bundled CAR model.")
flags.DEFINE_integer("figures", 5, "Comparison pictures per model (one per sample image).")
flags.DEFINE_bool("html", True, "Also write <out_dir>/index.html and the pictures it shows "
                  "(--nohtml: the tables and comparison pictures only).")


def main(argv):
    del argv
    demo.run_demo(flags.FLAGS.out_dir, flags.FLAGS.model, flags.FLAGS.figures, flags.FLAGS.html)


if __name__ == "__main__":
    app.run(main)
