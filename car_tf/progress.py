"""Progress through a run of items (files, images, training steps), for people and logs.

One class for every long loop: the command line's files and tiles, evaluation's images,
the data cache's decoding and the training loop's step rate.
"""

import sys
import time

BAR_WIDTH = 24


class Progress:
    """Progress through `total` items (None: not known in advance).

    Shown on `stream` (default stderr): on a terminal, one bar redrawn in place that names
    the current item and how far through its parts (a big image's tiles) it is; elsewhere
    (a log file, a pipe), one line per finished item. With a `logger` instead: a line at
    most every `log_every_s` seconds. `quiet` shows errors only.

    It also times the items, between `start` and `finish`: `rate()`.

    Args:
      total: number of items, or None.
      label: what is being done, at the start of each line.
      unit: after the count on the bar, e.g. " files".
      stream: a text stream; default sys.stderr.
      quiet: show only `error` lines.
      logger: a logging.Logger to report to instead of a stream.
      log_every_s: with a logger, the least time between two lines.
      untimed_first: leave the first item out of `rate()` (it traces and compiles).
    """

    def __init__(self, total=None, label="", unit="", stream=None, quiet=False, logger=None,
                 log_every_s=0.0, untimed_first=False):
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.logger = logger
        self.log_every_s = log_every_s
        self.tty = logger is None and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.name = ""
        self.started = self._last_logged = time.monotonic()
        self._item_started = None
        self._untimed = 1 if untimed_first else 0
        self._timed_items = 0
        self._timed_seconds = 0.0
        self._drawn = False

    def _bar_line(self, parts=""):
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        bar = ""
        if self.total is not None:
            filled = BAR_WIDTH * self.done // max(self.total, 1)
            bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "] "
        label = f"{self.label} " if self.label else ""
        name = f"  {self.name}" if self.name else ""
        return f"{label}{bar}{count}{self.unit}{parts}{name}"

    def _clear(self):
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False

    def _draw(self, parts=""):
        if self.quiet or not self.tty:
            return
        self.stream.write("\r\033[K" + self._bar_line(parts)[:160])
        self.stream.flush()
        self._drawn = True

    def _write_line(self, text):
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        self._draw()

    def start(self, name=""):
        """An item begins: `name` is shown on the bar; its time starts."""
        self.name = name
        self._item_started = time.perf_counter()
        self._draw()

    def parts(self, done, total, what="tile"):
        """How far the current item is through its `total` parts (shown when there are several)."""
        if total > 1:
            self._draw(f"  {what} {done}/{total}")

    def finish(self, line=None):
        """The current item is done. Off a terminal, `line` (default: the bar line) is written."""
        if self._item_started is not None:
            seconds = time.perf_counter() - self._item_started
            self._item_started = None
            if self._untimed:
                self._untimed -= 1
            else:
                self._timed_items += 1
                self._timed_seconds += seconds
        self.done += 1
        if self.quiet:
            return
        if self.logger is not None:
            now = time.monotonic()
            if now - self._last_logged >= self.log_every_s:
                self._last_logged = now
                self.logger.info("%s: %d%s so far", self.label, self.done, self.unit)
        elif self.tty:
            self._draw()
        else:
            self.stream.write((line if line is not None else self._bar_line()) + "\n")
            self.stream.flush()

    def skip(self):
        """The current item ended without a result (its error has been shown): counted, no line."""
        self._item_started = None
        self.done += 1
        self._draw()

    def note(self, text):
        """A remark for people (not shown when quiet)."""
        if not self.quiet:
            self.error(text)

    def error(self, text):
        """A line that is always shown, above the bar."""
        if self.logger is not None:
            self.logger.warning("%s", text)
        else:
            self._write_line(text)

    def rate(self):
        """Items per second of the time spent in timed items since the last call (NaN if none)."""
        rate = self._timed_items / self._timed_seconds if self._timed_seconds > 0 else float("nan")
        self._timed_items, self._timed_seconds = 0, 0.0
        return rate

    def elapsed(self):
        """Seconds since this Progress was made."""
        return time.monotonic() - self.started

    def close(self):
        """Clears the bar (the lines above it stay)."""
        if self.logger is None:
            self._clear()
            self.stream.flush()
