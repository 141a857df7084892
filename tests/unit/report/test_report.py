"""write_report on synthetic runs: a finished one, a failed one, partial and damaged ones."""

import base64
import io
import json
import re

import pytest
from PIL import Image

from common.errors import UserError
from grpo.report import write_report
from grpo.report.rundir import load_run, run_status

from run_builder import build_run

DATA_URI = re.compile(r"<img alt='([^']*)'[^>]*src='data:image/png;base64,([A-Za-z0-9+/=]+)'>")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = build_run(tmp_path_factory.mktemp("finished"))
    return run_dir, write_report(run_dir).read_text()


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    run_dir = build_run(tmp_path_factory.mktemp("failed"), failed=True)
    return run_dir, write_report(run_dir).read_text()


def test_report_embeds_every_plot_as_a_png_identical_to_the_file_beside_it(finished):
    run_dir, html = finished
    images = DATA_URI.findall(html)
    files = sorted((run_dir / "report").glob("*.png"))
    assert len(images) == len(files) >= 6
    titles = " ".join(title for title, _ in images)
    for name in ("Reward", "Accuracy", "Response length", "KL", "Entropy", "Time per step"):
        assert name in titles
    on_disk = {f.read_bytes() for f in files}
    for _, data in images:
        png = base64.b64decode(data)
        assert png in on_disk
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.width >= 600 and len(image.convert("L").getcolors(256)) > 10


def test_report_needs_nothing_from_the_network(finished):
    _, html = finished
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", html)
    assert "<script" not in html


def test_stage_table_shows_before_and_after(finished):
    run_dir, html = finished
    assert "accuracy 0.200 → 0.650" in html  # mean of the first 3 and the last 3 of 12 steps
    assert "@base 0.120, current 0.450" in html
    assert "12/12" in html and "<th>loss first</th><td>3.2</td>" in html
    assert run_status(load_run(run_dir)) == ("finished", "3 stages finished")
    assert "badge finished'>finished" in html


def test_samples_show_best_and_worst_with_reward_components(finished):
    _, html = finished
    assert "of 12 logged steps" in html and "<h4>Step 1</h4>" in html and "<h4>Step 12</h4>" in html
    assert html.count("<h4>Step ") == 8
    assert "math_accuracy: 1<br>format: 1" in html and "math_accuracy: 0<br>format: 1" in html
    assert "&lt;answer&gt;7&lt;/answer&gt;" in html and "&lt;answer&gt;8&lt;/answer&gt;" in html


def test_failed_run_says_where_and_why(failed):
    run_dir, html = failed
    assert "Stage grpo (rl) failed after step 7 of 12" in html
    assert "RuntimeError: loss is NaN at micro-batch 3" in html
    assert "Raised at <code>File &quot;/work/main/grpo/learner/learner.py&quot;, line 88, in train</code>" in html
    assert "End of the traceback" in html and "raise RuntimeError(&quot;loss is NaN" in html
    assert "Last checkpoint: step-000005" in html
    state, detail = run_status(load_run(run_dir))
    assert state == "resumable"
    assert detail == ("stage grpo failed after step 7/12: RuntimeError: loss is NaN at micro-batch 3; "
                      "resumes from step-000005")
    assert "badge pending'>pending" in html  # the eval stage never ran
    assert len(DATA_URI.findall(html)) >= 6  # the curves up to the failure are there


def test_completions_are_escaped(tmp_path):
    run_dir = build_run(tmp_path)
    hostile = "</pre><script>alert(1)</script><img src=x onerror=alert(2)>"
    with (run_dir / "stages/grpo/samples.jsonl").open("a") as f:
        f.write(json.dumps({"step": 13, "which": "best", "prompt": hostile, "completion": hostile,
                            "reward": 1.0, "components": {"<b>": 1.0}}) + "\n")
    html = write_report(run_dir).read_text()
    assert "<script" not in html and "onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;: 1" in html


def test_long_completions_are_cut(tmp_path):
    run_dir = build_run(tmp_path)
    with (run_dir / "stages/grpo/samples.jsonl").open("a") as f:
        f.write(json.dumps({"step": 13, "which": "worst", "prompt": "p", "completion": "x" * 10_000,
                            "reward": 0.0, "components": {}}) + "\n")
    html = write_report(run_dir).read_text()
    assert "… (6000 more characters)" in html and "x" * 10_000 not in html


def test_a_crash_cut_metrics_line_and_a_resume_are_tolerated(tmp_path):
    run_dir = build_run(tmp_path)
    metrics = run_dir / "stages/grpo/metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    # The resumed run logged steps 11-12 again, with different values; then a crash cut a line in half.
    resumed = [dict(r, accuracy=1.0) for r in rows[-2:]]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows + resumed) + '{"step": 13, "accu')
    html = write_report(run_dir).read_text()
    assert "accuracy 0.200 → 0.867" in html  # last quarter: steps 10, 11, 12 with the resumed 11 and 12


def test_run_that_has_not_started_a_stage(tmp_path):
    run_dir = tmp_path / "fresh"
    run_dir.mkdir()
    (run_dir / "recipe.yaml").write_text("name: fresh\nstages:\n- {name: grpo, type: rl, steps: 4}\n")
    html = write_report(run_dir).read_text()
    assert "Run fresh" in html and "badge pending'>pending" in html and "0/4" in html
    assert run_status(load_run(run_dir)) == ("resumable", "0/1 stages finished")

    (run_dir / "recipe.yaml").unlink()
    (run_dir / "run_state.json").write_text('{"stages": {}}')
    assert "No stage has started yet." in write_report(run_dir).read_text()


def test_rl_stage_killed_before_its_first_step(tmp_path):
    run_dir = tmp_path / "killed"
    (run_dir / "stages/grpo").mkdir(parents=True)
    (run_dir / "run_state.json").write_text(json.dumps(
        {"recipe": "killed", "stages": {"grpo": {"status": "running", "type": "rl", "started": 1.0}}}))
    html = write_report(run_dir).read_text()
    assert "Stage grpo stopped without finishing (the process is gone" in html
    assert "No metrics logged yet." in html
    assert run_status(load_run(run_dir)) == ("resumable", "stage grpo interrupted after step 0")


def test_stale_plots_are_removed(tmp_path):
    run_dir = build_run(tmp_path)
    stale = run_dir / "report" / "renamed_stage-reward.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    write_report(run_dir)
    assert not stale.exists()


def test_what_is_not_a_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such run directory"):
        write_report(tmp_path / "missing")
    with pytest.raises(UserError, match="not a run directory"):
        write_report(tmp_path)
    (tmp_path / "run_state.json").write_text("{not json")
    with pytest.raises(UserError, match="run_state.json: not valid JSON"):
        write_report(tmp_path)


def _stage_table_of(html: str) -> str:
    return html[html.index("<h2>Stages</h2>"):html.index("<h2>", html.index("<h2>Stages</h2>") + 1)]


def test_stage_summaries_are_escaped_once_and_nested_ones_are_tables(tmp_path):
    run_dir = build_run(tmp_path)
    state = json.loads((run_dir / "run_state.json").read_text())
    state["stages"]["sft"]["summary"] = {
        "note": "the student's <b>loss</b>", "kept": 542,
        "rejected": {"incorrect": 736, "duplicate": 935, "over the prompt's quota": 187}}
    (run_dir / "run_state.json").write_text(json.dumps(state))
    table = _stage_table_of(write_report(run_dir).read_text())
    assert "&amp;" not in table and "&#x27;" not in table.replace("the student&#x27;s", "", 1).replace(
        "over the prompt&#x27;s quota", "", 1)  # each apostrophe is escaped once, nothing twice
    assert "the student&#x27;s &lt;b&gt;loss&lt;/b&gt;" in table and "<b>loss" not in table
    assert re.search(r"<th>rejected</th><td><table[^>]*><tr><th>incorrect</th><td>736</td></tr>"
                     r"<tr><th>duplicate</th><td>935</td></tr>", table)
    assert "{'incorrect'" not in table and "{&#x27;incorrect" not in table
    # the eval stage's per-model results are a nested table too, not a repr
    assert re.search(r"<th>@base</th><td><table[^>]*>(?:(?!</table>).)*<tr><th>pass@1</th><td>0.12</td></tr>",
                     table)
