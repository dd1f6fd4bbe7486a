"""Training progress read back from logs (Roost's, SageMaker's, CloudWatch exports) and plotted."""

import subprocess
import sys

import cv2
import pytest

from roost.algorithm.metrics import load_curves, parse_log, plot_accuracy

CLOUDWATCH = """\
16:12:54 [10/21/2018 16:12:53 INFO 139701434767168] Epoch[0] Validation-accuracy=0.302083
16:12:58 [10/21/2018 16:12:57 INFO 139701434767168] Epoch[1] Validation-accuracy=0.291667
16:14:05 [10/21/2018 16:14:04 INFO 139701434767168] Epoch[1] Train-accuracy=0.766026
16:14:05 [10/21/2018 16:14:04 INFO 139701434767168] Epoch[1] Train-top_k_accuracy_2=0.932692
16:14:05 [10/21/2018 16:14:04 INFO 139701434767168] Epoch[1] Time cost=3.071
16:14:06 [10/21/2018 16:14:05 INFO 139701434767168] Epoch[1] Validation-top_k_accuracy_2=0.968750
"""


def test_parse_cloudwatch_text():
    c = parse_log(CLOUDWATCH)
    assert c.series["Validation-accuracy"] == {0: 0.302083, 1: 0.291667}
    assert c.series["Train-top_k_accuracy_2"] == {1: 0.932692}
    assert "Time cost" not in str(c.series)


def test_plot_from_log_and_cli(tmp_path):
    log = tmp_path / "cw.txt"
    log.write_text(CLOUDWATCH)
    out = plot_accuracy(load_curves(log), tmp_path / "a.png")
    assert cv2.imread(str(out)) is not None
    r = subprocess.run([sys.executable, "-m", "roost", "plot", str(log)], capture_output=True, text=True)
    assert r.returncode == 0 and "best Validation-accuracy=0.302083 at epoch 0" in r.stdout
    assert (tmp_path / "accuracy.png").is_file()


def test_errors(tmp_path):
    (tmp_path / "empty.log").write_text("nothing here\n")
    with pytest.raises(ValueError, match="no 'Epoch\\[N\\] Train-accuracy="):
        load_curves(tmp_path / "empty.log")
    with pytest.raises(FileNotFoundError, match="is it a Roost job folder"):
        load_curves(tmp_path)
