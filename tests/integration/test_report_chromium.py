"""The report of a tiny run, opened in a real browser: Debian's Chromium, headless, offline, screenshotted.

Chromium is a system package (scripts/setup_report_deps.sh, called by scripts/setup.sh). Where it is
missing the test fails and says so: a skipped browser test would hide that the report was never looked at.
"""

import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from grpo.report import write_report
from unit.report.run_builder import build_run

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 2000
TAB_BLUE, TAB_ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two line colours


def screenshot(page: Path, out: Path, profile: Path) -> Image.Image:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium with scripts/setup_report_deps.sh "
                    "(scripts/setup.sh runs it)")
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={WIDTH},{HEIGHT}",
               page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and out.exists(), f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return Image.open(out).convert("RGB")


def near(pixel: tuple[int, int, int], colour: tuple[int, int, int], tolerance: int = 16) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def test_report_renders_with_its_plots_in_headless_chromium(tmp_path):
    page = write_report(build_run(tmp_path / "runs"))
    html = page.read_text()
    images = re.findall(r"<img [^>]*src='data:image/png;base64,[A-Za-z0-9+/=]{1000,}'>", html)
    assert len(images) >= 6, "the page should embed the reward, accuracy, length, KL, entropy and timing plots"

    image = screenshot(page, tmp_path / "shot.png", tmp_path / "profile")
    assert image.size == (WIDTH, HEIGHT)
    # Not blank: the page has contrast and many colours (text, badges, anti-aliased curves).
    assert max(ImageStat.Stat(image).stddev) > 20
    colours = image.getcolors(maxcolors=WIDTH * HEIGHT)
    assert len(colours) > 200
    # The plots were decoded and drawn: matplotlib's blue and orange curves are on screen.
    counts = {name: sum(n for n, rgb in colours if near(rgb, colour))
              for name, colour in (("blue", TAB_BLUE), ("orange", TAB_ORANGE))}
    assert counts["blue"] > 500 and counts["orange"] > 500, counts
