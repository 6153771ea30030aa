"""Flags renamed so that one concept has one name across the tools.

An old name keeps working for one release: it sets the new flag and prints a one-line
deprecation warning to stderr. Remove the old names in the release after 0.1.
"""

import sys

from absl import flags

# old name -> new name, for every tool. Listed here so docs and tests can name them all.
RENAMED = {
    "batch": "batch_size",
    "patch": "crop_size",
    "train_dir": "train_dirs",
    "output_dir": "out_dir",
}


def define_old_name(old, flag_values=flags.FLAGS):
    """Makes --`old` an alias of its new name (RENAMED[old]) that warns when used."""
    new = RENAMED[old]
    flags.DEFINE_alias(old, new, flag_values=flag_values)

    def warn_if_used(_):
        if flag_values[old].present:
            sys.stderr.write(f"warning: --{old} is deprecated and will be removed in the next "
                             f"release; use --{new}\n")
        return True

    flags.register_validator(old, warn_if_used, flag_values=flag_values)
