"""Teacher-output caching for text distillation: the cached targets are the live teacher's, training on them
follows the live run, the file is keyed on what shapes it and reused, and a mismatch is refused."""

from __future__ import annotations

import pytest
import torch

from helpers.textmodels import TEXTS, tiny_encoder, tiny_tokenizer
from karuku.errors import KarukuError
from karuku.text.distill import TextDistillConfig, distill, drop_layers
from karuku.text.teacher_cache import check_lengths, compute, teacher_outputs


def test_cached_targets_are_the_teachers_real_token_states(tmp_path):
    tok = tiny_tokenizer(tmp_path)
    teacher = tiny_encoder(layers=3).eval()
    out = compute(teacher, TEXTS, tok, [1, 3], batch_size=5)
    idx = torch.tensor([4, 0, 7])
    b = tok([TEXTS[i] for i in idx])
    with torch.no_grad():
        tr = teacher.trace(*b.inputs())
    emb, hidden = out.batch(idx)
    torch.testing.assert_close(emb, tr.embedding, atol=1e-5, rtol=0)
    real = b.attention_mask.bool()
    for j in (1, 3):  # float16 storage: 1e-3 relative
        torch.testing.assert_close(hidden[j], tr.hidden[j][real], atol=2e-2, rtol=2e-3)
    check_lengths(out, idx, b.attention_mask)
    with pytest.raises(KarukuError, match="token counts"):
        check_lengths(out, idx.flip(0), b.attention_mask)


def test_distillation_on_cached_outputs_follows_the_live_teacher(tmp_path):
    tok = tiny_tokenizer(tmp_path)
    teacher = tiny_encoder(layers=4)
    students, hists = [], []
    for cache in (False, True):
        student = drop_layers(teacher, 2, keep=[1, 3])
        cfg = TextDistillConfig(keep=[1, 3], epochs=3, batch_size=6, lr=3e-3, cache_teacher=cache)
        hists.append(distill(teacher, student, TEXTS[:12], tok, cfg, log=lambda _: None, cache_dir=tmp_path / "c"))
        students.append(student)
    assert hists[0][-1]["embedding"] == pytest.approx(hists[1][-1]["embedding"], rel=1e-2)
    assert hists[0][-1]["hidden"] == pytest.approx(hists[1][-1]["hidden"], rel=1e-2)
    for a, b in zip(students[0].parameters(), students[1].parameters()):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-2)
    files = list((tmp_path / "c").glob("teacher-*.safetensors"))
    assert len(files) == 1  # only the cached run wrote one
    logs: list[str] = []
    again = teacher_outputs(teacher, TEXTS[:12], tok.with_max_length(40), [2, 4], tmp_path / "c", logs.append)
    assert "read from" in logs[-1] and sorted(again.hidden) == [2, 4]
    teacher_outputs(teacher, TEXTS[:11], tok.with_max_length(40), [2, 4], tmp_path / "c", logs.append)
    teacher_outputs(teacher, TEXTS[:12], tok.with_max_length(40), [4], tmp_path / "c", logs.append)
    assert len(list((tmp_path / "c").glob("teacher-*.safetensors"))) == 3  # other texts / targets: other keys


def test_a_damaged_cache_file_is_computed_again(tmp_path):
    from safetensors.torch import save_file

    tok = tiny_tokenizer(tmp_path)
    teacher = tiny_encoder(layers=3).eval()
    first = teacher_outputs(teacher, TEXTS[:6], tok, [2], tmp_path / "c", lambda _: None)
    (path,) = (tmp_path / "c").glob("teacher-*.safetensors")
    save_file({"embeddings": first.embeddings}, str(path))  # readable, but its offsets and hints are gone
    logs = []
    again = teacher_outputs(teacher, TEXTS[:6], tok, [2], tmp_path / "c", logs.append)
    assert "read from" not in logs[0] and torch.equal(again.offsets, first.offsets)
    path.write_bytes(b"not a safetensors file")
    logs.clear()
    again = teacher_outputs(teacher, TEXTS[:6], tok, [2], tmp_path / "c", logs.append)
    assert "unreadable" in logs[0] and torch.equal(again.embeddings, first.embeddings)


def test_token_term_targets_the_teachers_last_state_cached_or_live(tmp_path):
    tok = tiny_tokenizer(tmp_path)
    teacher = tiny_encoder(layers=4)
    students, hists = [], []
    for cache in (False, True):
        student = drop_layers(teacher, 2, keep=[0, 2])  # its last layer is not the teacher's: a real target
        cfg = TextDistillConfig(keep=[0, 2], epochs=4, batch_size=6, lr=3e-3, hidden_weight=0, token_weight=1,
                                cache_teacher=cache)
        seen: list[int] = []
        hists.append(distill(teacher, student, TEXTS[:12], tok, cfg, log=lambda _: None, cache_dir=tmp_path / "c",
                             hook=lambda step, seen=seen: seen.append(step) or {"probe": step}))
        students.append(student)
        assert seen == [8] and hists[-1][-1]["probe"] == 8 and student.training is False
    assert hists[0][-1]["token"] == pytest.approx(hists[1][-1]["token"], rel=1e-2)
    for a, b in zip(students[0].parameters(), students[1].parameters()):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-2)
    (file,) = (tmp_path / "c").glob("teacher-*.safetensors")  # the cache holds the teacher's last state (4)
    again = teacher_outputs(teacher, TEXTS[:12], tok.with_max_length(128), [4], tmp_path / "c", lambda _: None)
    assert sorted(again.hidden) == [4]
    # the term is what it says: zero for the teacher against itself, positive for a student that differs
    b = tok(TEXTS[:6])
    with torch.no_grad():
        t = teacher.trace(*b.inputs())
        s = students[1].trace(*b.inputs())
    from karuku.text.distill import loss_terms
    cfg = TextDistillConfig(layers=4, hidden_weight=0, token_weight=1)
    assert float(loss_terms(t, t, b.attention_mask, [1, 2, 3, 4], cfg)["token"]) == pytest.approx(0, abs=1e-6)
    assert float(loss_terms(s, t, b.attention_mask, [1, 3], cfg)["token"]) > 1e-3
