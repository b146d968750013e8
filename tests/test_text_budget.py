"""The text recipe's budget is the pipeline's (one name, one check): `min_fidelity`, `max_size_kb`,
`max_latency_ms` as in every recipe, plus `min_top10_overlap`; the first text recipes' `min_mean_cosine` still
reads, as `min_fidelity`."""

from __future__ import annotations

import pytest

from karuku.errors import KarukuError
from karuku.pipeline.recipe import Budget
from karuku.text.recipe import TextBudget, load_recipe

FID = {"mean_cosine": 0.93, "p1_cosine": 0.8, "top10_overlap": 0.6}


def test_text_budget_is_the_pipeline_budget_with_retrieval():
    b = TextBudget(min_fidelity=0.9, min_top10_overlap=0.7, max_size_kb=15000, max_latency_ms=2)
    assert isinstance(b, Budget)
    checks = b.checks(FID, 13_000_000, 2.5)
    assert [(c["limit"], c["ok"]) for c in checks] == [("min_fidelity", True), ("min_top10_overlap", False),
                                                       ("max_size_kb", True), ("max_latency_ms", False)]
    assert checks[2]["value"] == 13000.0 and checks[0]["allowed"] == 0.9
    assert TextBudget().min_fidelity == 0.95  # the text default
    assert TextBudget(min_mean_cosine=0.8).min_fidelity == 0.8  # the old name still reads
    with pytest.raises(KarukuError, match="give min_fidelity only"):
        TextBudget(min_mean_cosine=0.8, min_fidelity=0.9)
    with pytest.raises(KarukuError, match="max_drop does not apply to sentence encoders"):
        TextBudget(max_drop=1)
    with pytest.raises(KarukuError, match="invalid TextBudget min_top10_overlap"):
        TextBudget(min_top10_overlap=2)


def test_recipes_old_key_reads_and_file_limits_need_an_export(tmp_path):
    r = tmp_path / "r.yaml"
    r.write_text("version: 1\nname: x\ntask: sentence-embedding\nbudget: {min_mean_cosine: 0.9}\n"
                 "stages:\n  - distill: {layers: 1}\n")
    assert load_recipe(r).budget.min_fidelity == 0.9
    r.write_text("version: 1\nname: x\nbudget: {min_fidelity: 0.9, max_size_kb: 100}\nstages:\n  - distill: {}\n")
    with pytest.raises(KarukuError, match="budget.max_size_kb is measured on the ONNX file"):
        load_recipe(r)
    r.write_text("version: 1\nname: x\nbudget: {min_fidelity: 0.9, min_cosine: 0.5}\nstages:\n  - distill: {}\n")
    with pytest.raises(KarukuError, match="budget.min_cosine"):
        load_recipe(r)
    assert load_recipe("recipes/minilm-edge.yaml").budget.max_size_kb is not None


def test_a_recipes_word_bits_must_be_the_width_its_quantize_stage_stores(tmp_path):
    r = tmp_path / "r.yaml"
    head = "version: 1\nname: x\ntask: sentence-embedding\nstages:\n  - distill: {layers: 1, word_bits: 4}\n"
    for quant, held in [("{mode: dynamic}", "at 8 bits"), ("{mode: dynamic, layer_bits: {embed.word: float}}",
                                                              "in float")]:
        r.write_text(head + f"  - quantize: {quant}\n")
        with pytest.raises(KarukuError, match=f"distill.word_bits is 4, but the quantize stage stores the word "
                                              f"table {held}") as e:
            load_recipe(r)
        assert "layer_bits: {embed.word: 4}" in e.value.hint
    r.write_text(head + "  - quantize: {mode: dynamic, layer_bits: {embed.word: 4}}\n")
    assert load_recipe(r).stages[0].config().word_bits == 4
    r.write_text(head)  # nothing quantizes after it: the table stays at its rounding, in float
    assert load_recipe(r).stages[0].config().word_bits == 4
    # a soup member's own width is held to the same rule
    r.write_text("version: 1\nname: x\ntask: sentence-embedding\nstages:\n  - distill: {layers: 1, members: 2, "
                 "member_word_bits: [null, 8], word_bits: 4, refine_epochs: 0.5}\n"
                 "  - quantize: {mode: dynamic, layer_bits: {embed.word: 4}}\n")
    with pytest.raises(KarukuError, match=r"distill.member_word_bits\[1\] is 8, but the quantize stage stores the "
                                          "word table at 4 bits"):
        load_recipe(r)
    r.write_text(r.read_text().replace("[null, 8]", "[null, 4]"))
    assert load_recipe(r).stages[0].config().member_word_bits == [None, 4]


def test_the_pipeline_budget_reads_its_old_name_the_same_way():
    assert Budget(max_accuracy_drop=2.0).max_drop == 2.0
    assert Budget(max_accuracy_drop=2.0, max_drop=2.0).max_drop == 2.0
    with pytest.raises(KarukuError, match="give max_drop only"):
        Budget(max_accuracy_drop=2.0, max_drop=1.0)
