"""Searches the fixed kernel with the lowest BD-rate under a real codec, without gradients
(car_tf.analysis.codec_kernel), and writes it as a fixed-kernel model folder.

  python tools/search_codec_kernel.py --scale=4 --train_dirs=split/train --images=30 \
      --lr_codec=jpeg --lr_quality=30 --lr_quality=50 --lr_quality=70 --lr_quality=90 \
      --iterations=50 --data_dir=split/heldout --model_dir=runs/search_x4_jpeg

The search starts from the symmetric separable kernel nearest --start_model's and scores
each candidate on --images HR images drawn (with --seed) from --train_dirs. Each
--data_dir is then scored apart, start kernel against found kernel, so that the choice is
judged on images it was not made on. The folder takes every model flag, and
tools/package_model.py bundles it.
"""

import sys

import numpy as np
from absl import app, flags

flags.DEFINE_integer("scale", 2, "Downscaling factor.")
flags.DEFINE_multi_string("train_dirs", [], "Folder of HR images to search on; repeatable.")
flags.DEFINE_integer("images", 30, "How many of the --train_dirs images to score each "
                     "candidate on (drawn with --seed); 0: all of them.")
flags.DEFINE_integer("seed", 0, "Seed of the image draw.")
flags.DEFINE_string("lr_codec", "jpeg", "The codec the LR is stored with: jpeg or webp.")
flags.DEFINE_multi_integer("lr_quality", [], "Codec quality 1..100; repeat (4 or more).")
flags.DEFINE_string("start_model", None, "Fixed-kernel model (bundled name or folder) whose "
                    "kernel starts the search; default car-x<scale>-fixed.")
flags.DEFINE_integer("iterations", 40, "Nelder-Mead iterations; 0: no search, the start "
                     "kernel as it is (to run --blend_iterations on it).")
flags.DEFINE_float("step", 0.05, "Initial simplex step in relative tap weights.")
flags.DEFINE_multi_string("data_dir", [], "Folder(s) of HR images to score the start and "
                          "the found kernel on afterwards, each apart.")
flags.DEFINE_string("model_dir", None, "Where to write the found kernel as a model folder.")
flags.DEFINE_integer("blend_iterations", 0, "If > 0, then also search, on the same images, "
                     "the best fixed blend of bicubic LR and the found kernel's LR and the best "
                     "content adaptive one (codec_kernel.BlendDownscaler), and score both "
                     "(the adaptive against the fixed) on each --data_dir.")


def _read(paths):
    from car_tf import image_io

    return [image_io.read_image(path).rgb for path in paths]


def _line(name, objective, curve):
    return (f"  {name}: BD-rate {objective.bd_rate(curve):+.2f}%, BD-PSNR "
            f"{objective.bd_psnr(curve):+.3f} dB against bicubic")


def main(argv):
    del argv
    options = flags.FLAGS
    from car_tf import codecs, fixed_numpy, pretrained
    from car_tf.analysis import codec_kernel
    from car_tf.data.folders import display_name, find_image_files

    if not options.train_dirs:
        sys.exit("search_codec_kernel.py: error: give --train_dirs")
    start_name = options.start_model or f"car-x{options.scale}-fixed"
    try:
        codecs.check_codec(options.lr_codec, options.lr_quality)
        kind, path = pretrained.resolve(start_name)
        start = fixed_numpy.load_fixed_kernel(path, require_manifest=kind == "bundled")
        if start.scale != options.scale:
            raise ValueError(f"{start_name} is a scale-{start.scale} kernel, not {options.scale}")
        files = [path for _, path in find_image_files(options.train_dirs)]
        if options.images:
            files = sorted(np.random.default_rng(options.seed).choice(
                files, min(options.images, len(files)), replace=False))
        objective = codec_kernel.CodecObjective(_read(files), options.scale, options.lr_codec,
                                                options.lr_quality)
        held_out = [(display_name(folder, folder),
                     codec_kernel.CodecObjective(_read(p for _, p in find_image_files(folder)),
                                                 options.scale, options.lr_codec,
                                                 options.lr_quality))
                    for folder in options.data_dir]
    except (ValueError, OSError) as error:
        sys.exit(f"search_codec_kernel.py: error: {error}")

    print(f"searching on {len(objective.images)} images; {start_name}:")
    print(_line("start", objective, objective.kernel_curve(start.kernel)))
    def report(i, value, point):
        print(f"iteration {i + 1}: BD-rate {value:+.3f}%, point {np.round(point, 4).tolist()}",
              flush=True)

    kernel, result = start.kernel, None
    if options.iterations:
        kernel, result = codec_kernel.search(objective, start.kernel, options.iterations,
                                             options.step, report)
        print(f"found after {result.evaluations} evaluations:")
        print(_line("found", objective, objective.kernel_curve(kernel)))
    blends = []
    for adaptive in (False, True) if options.blend_iterations else ():
        name = "adaptive blend" if adaptive else "fixed blend"
        print(f"searching the {name}:")
        blend, blend_result = codec_kernel.blend_search(objective, kernel,
                                                        options.blend_iterations, adaptive,
                                                        report=report)
        print(f"  offset {blend.offset:.4f}, slope {blend.slope:.4f} "
              f"(z mean {blend.z_mean:.3f}, std {blend.z_std:.3f})")
        print(_line(name, objective, objective.curve(blend)))
        blends.append((name, blend))
    for name, other in held_out:
        print(f"{name} ({len(other.images)} images):")
        print(_line(start_name, other, other.kernel_curve(start.kernel)))
        curves = {"found": other.kernel_curve(kernel)} if result else {}
        curves.update((blend_name, other.curve(blend)) for blend_name, blend in blends)
        for curve_name, curve in curves.items():
            print(_line(curve_name, other, curve))
        if blends:
            print("  adaptive blend against fixed blend: " + codec_kernel.delta_line(
                curves["fixed blend"], curves["adaptive blend"]))
    np.set_printoptions(precision=4, suppress=True, linewidth=200)
    print(kernel)
    if options.model_dir and result is not None:
        settings = {"train_dirs": options.train_dirs, "images": [str(f) for f in files],
                    "lr_codec": options.lr_codec, "lr_quality": sorted(options.lr_quality),
                    "start_model": start_name, "iterations": options.iterations,
                    "step": options.step, "relative_weights": result.best.tolist(),
                    "bd_rate": result.value, "evaluations": result.evaluations}
        print(codec_kernel.write_model_dir(kernel, options.scale, options.model_dir, settings))


if __name__ == "__main__":
    app.run(main)
