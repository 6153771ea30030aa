"""car_tf.progress: the bar on a terminal, lines elsewhere, a logger, the step rate."""

import io
import logging
import time

from car_tf.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_shows_files_and_tiles():
    stream = _Terminal()
    progress = Progress(2, unit=" files", stream=stream)
    progress.start("a.png")
    progress.parts(3, 8)
    progress.error("car: error: b.png: broken")
    progress.finish("[1/2] a.png -> o/a.png (0.1 s)")
    progress.close()
    text = stream.getvalue()
    assert "0/2 files  tile 3/8  a.png" in text
    assert "\ncar: error: b.png: broken\n" in text.replace("\r\033[K", "\n")
    assert "1/2 files" in text
    quiet = _Terminal()
    silent = Progress(2, unit=" files", quiet=True, stream=quiet)
    silent.start("a.png")
    silent.parts(1, 2)
    silent.note("car: note: hidden")
    assert quiet.getvalue() == ""


def test_lines_off_a_terminal_one_per_finished_item():
    stream = io.StringIO()
    progress = Progress(3, label="Set5 x2", stream=stream)
    for name in ("a.png", "b.png", "c.png"):
        progress.start(name)
        progress.parts(1, 4)  # tiles are not shown off a terminal
        progress.finish()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "Set5 x2 [" + "#" * 8 + "." * 16 + "] 1/3  a.png"
    assert lines[-1] == "Set5 x2 [" + "#" * 24 + "] 3/3  c.png"
    assert len(lines) == 3


def test_a_logger_gets_at_most_one_line_per_interval(caplog):
    logger = logging.getLogger("test_progress")
    progress = Progress(label="decoding", unit=" images", logger=logger, log_every_s=3600)
    with caplog.at_level(logging.INFO, logger="test_progress"):
        for _ in range(5):
            progress.finish()
        progress.error("skipping x.png")
    assert progress.done == 5
    assert [record.getMessage() for record in caplog.records] == ["skipping x.png"]
    eager = Progress(label="decoding", unit=" images", logger=logger)
    with caplog.at_level(logging.INFO, logger="test_progress"):
        eager.finish()
    assert caplog.records[-1].getMessage() == "decoding: 1 images so far"


def test_rate_leaves_out_the_first_item_and_restarts_after_each_call():
    progress = Progress(quiet=True, untimed_first=True)
    progress.start()
    time.sleep(0.2)  # the first item (tracing) is slow and must not count
    progress.finish()
    assert progress.rate() != progress.rate()  # NaN: nothing timed yet
    for _ in range(4):
        progress.start()
        time.sleep(0.02)
        progress.finish()
    rate = progress.rate()
    assert 5 < rate <= 50
    assert progress.rate() != progress.rate()
