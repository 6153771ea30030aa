"""car_tf.evaluation.report: the JSON form of a report."""

import json

from car_tf import evaluation


def test_infinite_psnr_is_null_in_json():
    row = evaluation.Row(
        "Set5", 2, "standard", "car", "edsr", float("inf"), 1.0, float("inf"), 3.0, 1
    )
    report = evaluation.Report("standard", [row], [], [], [])
    text = json.dumps(report.as_json(), allow_nan=False)
    assert json.loads(text)["results"][0]["psnr_y"] is None
