"""grpo.progress: levels, plain lines when the output is not a terminal, colour and live bars when it is."""

import argparse
import io
import os
import re
import select

import pytest

from grpo import progress as progress_module
from grpo.progress import NORMAL, QUIET, VERBOSE, Console, eta_seconds, format_duration, format_fields

ANSI = re.compile(r"\x1b\[")


def test_levels_filter_lines_and_brackets_print_as_written():
    out = io.StringIO()
    console = Console(NORMAL, file=out)
    console.echo("[grpo] step 3/10")
    console.debug("hidden")
    console.warn("slow sync")
    console.level = QUIET
    console.echo("hidden too")
    console.error("disk full")
    console.level = VERBOSE
    console.debug("details")
    lines = out.getvalue().splitlines()
    assert [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines] == [
        "[grpo] step 3/10", "warning: slow sync", "error: disk full", "details"]
    assert not ANSI.search(out.getvalue())  # not a terminal: no colour


def test_a_bar_in_a_log_file_prints_a_line_per_tenth_with_eta_and_fields():
    out = io.StringIO()
    console = Console(NORMAL, file=out)
    with console.progress(20, "grpo steps") as bar:
        for step in range(20):
            bar.advance(1, reward=step / 10, phase="learn")
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert re.fullmatch(r"\d\d:\d\d:\d\d grpo steps 2/20 \(10%\) 0:\d\d elapsed, ETA 0:\d\d reward=0.1 phase=learn",
                        lines[0])
    assert "grpo steps 20/20 (100%)" in lines[-1] and "ETA 0:00 reward=1.9" in lines[-1]


def test_a_resumed_bar_starts_at_its_done_units_and_its_rate_counts_only_new_ones():
    out = io.StringIO()
    with Console(NORMAL, file=out).progress(10, "rl steps", done=6) as bar:
        assert bar.eta() == "?"  # nothing done in this process yet
        bar.advance(1, reward=0.5)
        # 1 new step in 8 s: 3 left take 24 s (the 6 earlier steps say nothing about this process's rate)
        assert bar.describe(8.0) == "rl steps 7/10 (70%) 0:08 elapsed, ETA 0:24 reward=0.5"
        assert bar.eta(8.0) == "0:24"
    assert re.sub(r"^\d\d:\d\d:\d\d ", "", out.getvalue()).startswith("rl steps 7/10 (70%)")


def test_a_bar_whose_caller_logs_each_unit_prints_no_plain_lines():
    out = io.StringIO()
    with Console(NORMAL, file=out).progress(4, "rl steps", lines=False) as bar:
        bar.advance(4)
    assert bar.done == 4 and out.getvalue() == ""


def test_quiet_hides_bars():
    out = io.StringIO()
    with Console(QUIET, file=out).progress(3, "generate") as bar:
        bar.advance(3)
    assert bar.done == 3 and out.getvalue() == ""


def read_available(fd: int) -> str:
    chunks = []
    while select.select([fd], [], [], 0)[0]:
        chunks.append(os.read(fd, 4096))
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_gets_colour_and_a_live_bar_shared_by_nested_bars(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    master, slave = os.openpty()
    with open(slave, "w") as tty:
        console = Console(NORMAL, file=tty)
        assert console.rich.is_terminal
        console.warn("slow sync")
        with console.progress(2, "stages") as outer:
            with console.progress(4, "steps") as inner:
                inner.advance(4, reward=0.5)
                assert len(console._live.tasks) == 2
            assert len(console._live.tasks) == 1  # the finished inner bar left the display
            outer.advance(2)
        assert console._live is None
        tty.flush()
        written = read_available(master)
    os.close(master)
    assert ANSI.search(written) and "warning: slow sync" in written
    assert "stages" in written and "2/2" in written


def test_eta_and_formatting():
    assert eta_seconds(0, 10, 5.0) is None
    assert eta_seconds(4, 10, 8.0) == pytest.approx(12.0)
    assert eta_seconds(10, 10, 8.0) == 0.0
    assert format_duration(75) == "1:15" and format_duration(3725) == "1:02:05"
    assert format_fields({"reward": 0.123456, "step": 3}) == "reward=0.1235 step=3"


def test_quiet_and_verbose_flags_set_the_shared_console(monkeypatch):
    monkeypatch.setattr(progress_module.console, "level", NORMAL)
    parser = argparse.ArgumentParser()
    progress_module.add_verbosity_flags(parser)
    progress_module.configure(parser.parse_args(["--quiet"]))
    assert progress_module.console.level == QUIET
    progress_module.configure(parser.parse_args(["-v"]))
    assert progress_module.console.level == VERBOSE
    with pytest.raises(SystemExit):
        parser.parse_args(["-q", "-v"])


def test_quiet_or_piped_output_turns_off_the_libraries_own_bars(monkeypatch):
    from transformers.utils import logging as transformers_logging

    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)  # restored (unset) after the test
    monkeypatch.setattr(progress_module.console, "level", NORMAL)
    transformers_logging.enable_progress_bar()
    try:
        progress_module.configure(argparse.Namespace(quiet=True, verbose=False))
        assert not transformers_logging.is_progress_bar_enabled()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
    finally:
        transformers_logging.enable_progress_bar()
