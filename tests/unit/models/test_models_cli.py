"""`grpo models make` and `grpo models list` through the real CLI entry point."""

import json

import pytest
from transformers import AutoConfig

from pipelines.cli import main
from common.errors import UserError
from grpo.models.cli import parse_overrides
from grpo.models.factory import MODEL_PRESETS


def test_make_writes_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "model"
    code = main(["models", "make", "tiny-deepseek-v3", "--out", str(out), "--seed", "3",
                 "--set", "num_hidden_layers=2", "--set", "q_lora_rank=null", "--set", "hidden_act=silu"])
    assert code == 0
    config = AutoConfig.from_pretrained(out)
    assert (config.model_type, config.num_hidden_layers, config.q_lora_rank) == ("deepseek_v3", 2, None)
    record = json.loads((out / "grpo_model.json").read_text())
    assert record["seed"] == 3
    assert record["overrides"] == {"num_hidden_layers": 2, "q_lora_rank": None, "hidden_act": "silu"}
    assert str(out) in capsys.readouterr().out


def test_make_with_an_unknown_key_fails_with_a_message(tmp_path, capsys):
    code = main(["models", "make", "tiny-qwen2", "--out", str(tmp_path / "m"), "--set", "layers=3"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown override(s) layers" in err and "num_hidden_layers" in err
    assert not (tmp_path / "m").exists()


def test_make_rejects_an_unknown_preset(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["models", "make", "gpt-5", "--out", str(tmp_path / "m")])
    assert "gpt-5" in capsys.readouterr().err


def test_list_shows_every_preset_with_its_parameter_count(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in MODEL_PRESETS:
        assert name in out
    assert "525,440" in out  # tiny-qwen2


def test_parse_overrides_reads_json_values_and_falls_back_to_strings():
    assert parse_overrides(["a=3", "b=0.5", "c=true", "d=null", "e=silu", "f=[1, 2]", "g=x=y"]) == {
        "a": 3, "b": 0.5, "c": True, "d": None, "e": "silu", "f": [1, 2], "g": "x=y"}


@pytest.mark.parametrize("item", ["num_hidden_layers", "=3"])
def test_parse_overrides_needs_key_and_value(item):
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_overrides([item])
