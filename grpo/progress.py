"""Console output of a run: short log lines, progress bars with ETA, and the --quiet / --verbose levels.

Colour and live bars only when the output is a terminal (rich decides, and honours NO_COLOR and
FORCE_COLOR). Written to a file or a pipe, a bar becomes a plain line at every tenth of the way, so a log
of a long run stays short and greppable.

    from grpo import progress
    progress.echo("[grpo] rollout workers ready")
    with progress.progress(steps, "grpo steps") as bar:
        for step in ...:
            bar.advance(1, reward=0.41, acc=0.3)
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import contextmanager
from typing import IO, Iterator

from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

QUIET, NORMAL, VERBOSE = 0, 1, 2  # quiet: warnings and errors only; verbose: also debug lines


class Console:
    def __init__(self, level: int = NORMAL, file: IO[str] | None = None):
        self.level = level
        # file=None makes rich write to whatever sys.stdout is at the time of writing.
        self.rich = RichConsole(file=file, highlight=False, soft_wrap=True)
        self._live: Progress | None = None  # one live display per terminal, shared by nested bars
        self._depth = 0

    def echo(self, message: str) -> None:
        if self.level >= NORMAL:
            self._line(message)

    def debug(self, message: str) -> None:
        if self.level >= VERBOSE:
            self._line(message, "dim")

    def warn(self, message: str) -> None:
        self._line(f"warning: {message}", "yellow")

    def error(self, message: str) -> None:
        self._line(f"error: {message}", "bold red")

    def _line(self, message: str, style: str | None = None) -> None:
        # Text, not a markup string: "[grpo] step 3" must print as written, brackets included.
        self.rich.print(Text(time.strftime("%H:%M:%S "), style="dim") + Text(message, style=style or ""))

    @contextmanager
    def progress(self, total: int, description: str, *, done: int = 0,
                 lines: bool = True) -> Iterator["ProgressBar"]:
        """A bar for `total` units of work; nested bars (stage > steps > generation) share one display.

        `done`: units finished before (a resumed stage); they fill the bar but do not count toward its rate.
        `lines=False`: no plain lines when not on a terminal, for a caller that logs each unit itself.
        """
        if self.level < NORMAL or (not lines and not self.rich.is_terminal):
            yield ProgressBar(self, total, description, mode="silent", done=done)
            return
        if not self.rich.is_terminal:
            yield ProgressBar(self, total, description, mode="lines", done=done)
            return
        if self._live is None:
            self._live = Progress(
                TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}", markup=False), console=self.rich)
            self._live.start()
        self._depth += 1
        bar = ProgressBar(self, total, description, mode="live", done=done)
        try:
            yield bar
        finally:
            self._depth -= 1
            if self._depth:
                self._live.remove_task(bar.task)  # an inner bar is done: only its parent stays on screen
            else:
                self._live.stop()
                self._live = None


class ProgressBar:
    """One bar; `advance(n, **fields)` moves it and shows the latest fields (reward=0.41) beside it."""

    def __init__(self, console: Console, total: int, description: str, mode: str, done: int = 0):
        self.total, self.description, self.done, self.fields = total, description, done, {}
        self._console, self._mode, self._started, self._initial = console, mode, time.monotonic(), done
        self._tenths = done * 10 // max(1, total)
        self.task = (console._live.add_task(description, total=total, completed=done, info="")
                     if mode == "live" else None)

    def advance(self, n: int = 1, **fields: object) -> None:
        self.done += n
        self.fields.update(fields)
        if self._mode == "live":
            self._console._live.update(self.task, advance=n, info=format_fields(self.fields))
        elif self._mode == "lines":
            tenths = min(10, self.done * 10 // max(1, self.total))
            if tenths > self._tenths:
                self._tenths = tenths
                self._console.echo(self.describe(time.monotonic() - self._started))

    def describe(self, elapsed: float) -> str:
        """The plain line: "grpo steps 30/100 (30%) 0:12 elapsed, ETA 0:28 reward=0.41"."""
        line = (f"{self.description} {self.done}/{self.total} ({100 * self.done // max(1, self.total)}%) "
                f"{format_duration(elapsed)} elapsed, ETA {self.eta(elapsed)}")
        return f"{line} {format_fields(self.fields)}".rstrip()

    def eta(self, elapsed: float | None = None) -> str:
        """Time left as "1:05" ("?" before the first unit), at this bar's rate so far."""
        if elapsed is None:
            elapsed = time.monotonic() - self._started
        eta = eta_seconds(self.done - self._initial, self.total - self._initial, elapsed)
        return format_duration(eta) if eta is not None else "?"


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Time left at the average rate so far; None before the first unit is done."""
    if done <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_fields(fields: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print only warnings and errors")
    group.add_argument("-v", "--verbose", action="store_true", help="also print debug lines")


def configure(args: argparse.Namespace) -> None:
    """Set the shared console's level from --quiet / --verbose (see add_verbosity_flags)."""
    console.level = QUIET if getattr(args, "quiet", False) else VERBOSE if getattr(args, "verbose", False) else NORMAL
    if (console.level < NORMAL or not console.rich.is_terminal) and "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ:
        silence_library_bars()


def silence_library_bars() -> None:
    """No tqdm bars from transformers, huggingface_hub and datasets (loading and writing weights): in a piped
    log they are \r-joined lines, and --quiet means quiet. The environment reaches Ray workers started later."""
    from transformers.utils import logging as transformers_logging

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    transformers_logging.disable_progress_bar()  # already imported with its switch read: turn it off here too


console = Console()  # the process's console: the runner, the stages and the CLI all print through it
echo, debug, warn, error, progress = console.echo, console.debug, console.warn, console.error, console.progress
