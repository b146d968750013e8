"""Layer dropping + distillation: a shallower student initialised from some of the teacher's layers, trained on
unlabelled text to reproduce the teacher's sentence embeddings and, as hints, its hidden states.

The student's layer i stands for a group of the teacher's layers (6 → 3: teacher layers {0, 1}, {2, 3}, {4, 5});
it starts as a copy of one teacher layer of its group (`init`: "first" — DistilBERT's every other layer —
or "last") and its output is pulled towards the teacher's hidden state after the group. `keep` names the teacher
layers outright (each then ends its group): on all-MiniLM-L6-v2 keeping the last layer matters most — before any
training, layers (0, 2, 4, 5) keep 0.82 mean cosine on held-out fortunes against 0.35 for (0, 1, 2, 3) and
(0, 2, 5) 0.58 against 0.35 for (0, 2, 4) (docs/bench/text.md). The loss per batch:

    embedding_weight · ((1 − cos(s, t)) + mse_scale · ‖s − t‖²)  +  hidden_weight · Σ_i MSE(h_s[i], h_t[g(i)])
    + token_weight · mean over real tokens of (1 − cos(h_s[last], h_t[last]))
    + attention_weight · Σ_i KL(attention_t[g(i)] ‖ attention_s[i])   (only where head counts agree)

The token term pulls every real token's output of the student's last layer towards the teacher's last hidden
state by direction: the pooled embedding is their mean, so it is the same target seen ~30 times per text
instead of once, and unlike the MSE hint it is not dominated by the few outlier dimensions of MiniLM's states.

over real tokens only (padding never counts). The teacher runs in inference mode beside the student, so any
text does: the fortunes corpus here.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from karuku.config import Config
from karuku.errors import KarukuError
from karuku.text.encoder import SentenceEncoder
from karuku.text.members import load_member, member_path, save_member
from karuku.text.qembedding import QEmbedding
from karuku.text.teacher_cache import check_lengths, teacher_outputs
from karuku.text.tokenizer import Tokenizer


class TextDistillConfig(Config):
    """How to drop layers and train the student."""

    layers: int = Field(3, ge=1, description="student layers (the teacher's are split into this many groups)")
    init: Literal["first", "last"] = Field("first", description="which teacher layer of its group a student "
                                                                "layer starts from")
    keep: list[int] | None = Field(None, description="the teacher layers the student keeps, in order (sets "
                                                     "`layers`; default: `layers` groups picked by `init`)")
    epochs: float = Field(2.0, gt=0, description="passes over the training texts (fractions allowed)")
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate (linear warm-up 5 %, then linear decay)")
    weight_decay: float = Field(0.01, ge=0)
    max_length: int = Field(128, ge=8, description="tokens per training text (longer ones are cut)")
    embedding_weight: float = Field(1.0, ge=0)
    mse_scale: float = Field(100.0, ge=0, description="weight of the squared distance beside 1 − cos (unit-length "
                                                      "embeddings: both are small)")
    hidden_weight: float = Field(1.0, ge=0, description="hidden-state hints (MSE per group)")
    token_weight: float = Field(0.0, ge=0, description="per-token cosine of the last layer's output to the "
                                                       "teacher's last hidden state")
    attention_weight: float = Field(0.0, ge=0, description="attention-probability hints (KL), where heads match")
    freeze_words: bool = Field(False, description="keep the word-embedding table the teacher's (not trained): "
                                                  "tokens the training texts never show stay consistent with "
                                                  "the ones they do")
    word_bits: Literal[4, 8] | None = Field(None, description="freeze the word-embedding table at its weight-only "
                                              "rounding to this many bits (the int8 file's table, blocks of 32), "
                                              "so the layers learn the table they will be deployed with; "
                                              "implies freeze_words")
    members: int = Field(1, ge=1, description="train this many students from the same start, each on its own "
                                               "shuffle (seed, seed + 1, ...), and keep the mean of their weights "
                                               "(a uniform model soup; costs `members` times the steps)")
    word_qat: bool = Field(False, description="with word_bits: the table keeps training through its rounding "
                                              "(the forward pass sees the rounded table, gradients pass straight "
                                              "through to the float one) and ends rounded, instead of frozen at it")
    member_word_bits: list[Literal[4, 8] | None] | None = Field(
        None, description="each soup member's own word_bits, one per member (default: `word_bits` for all); "
                          "members that differ (a trained table beside one frozen at its rounding) make a more "
                          "diverse soup")
    refine_epochs: float = Field(0.0, ge=0, description="after the soup: train the mean of the members this many "
                                                        "more epochs (seed `seed + members`) with `word_bits`, which "
                                                        "puts a mean of trained tables back on the int8 file's grid")
    refine_lr: float | None = Field(None, gt=0, description="the refinement's learning rate (default: lr / 10)")
    seed: int = 0
    cache_teacher: bool = Field(True, description="compute the teacher's outputs once and reuse them every epoch "
                                                  "(stored in the run folder; not with attention hints)")

    @model_validator(mode="after")
    def _keep(self):
        if self.keep is not None:
            if not self.keep or any(b <= a for a, b in zip(self.keep, self.keep[1:])) or min(self.keep) < 0:
                raise ValueError("keep must list teacher layers in increasing order, from 0")
            if "layers" in self.model_fields_set and self.layers != len(self.keep):
                raise ValueError(f"layers {self.layers} but keep names {len(self.keep)}; give one of them")
            self.layers = len(self.keep)
        if self.member_word_bits is not None and len(self.member_word_bits) != self.members:
            raise ValueError(f"member_word_bits names {len(self.member_word_bits)} widths for {self.members} "
                             "members; give one per member")
        if self.word_qat and self.word_bits is None and not any(self.member_word_bits or []):
            raise ValueError("word_qat trains the table through its word_bits rounding; give word_bits")
        if self.refine_epochs and self.members == 1:
            raise ValueError("refine_epochs refines a soup; give members >= 2 (or train one student longer)")
        return self

    def word_bits_of(self, member: int) -> int | None:
        """The word_bits soup member `member` (0-based) trains with."""
        return self.word_bits if self.member_word_bits is None else self.member_word_bits[member]


def groups(teacher_layers: int, student_layers: int) -> list[range]:
    """The teacher layers each student layer stands for: as equal as possible, in order."""
    if not 1 <= student_layers <= teacher_layers:
        raise KarukuError(f"a student of {student_layers} layers from a teacher of {teacher_layers}",
                          f"choose 1 to {teacher_layers} student layers")
    bounds = [round(i * teacher_layers / student_layers) for i in range(student_layers + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def plan(teacher_layers: int, layers: int, init: str = "first", keep: list[int] | None = None) -> list[tuple[int, int]]:
    """Per student layer: (the teacher layer it starts as, the teacher hidden-state index its hint targets)."""
    if keep is not None:
        if keep[-1] >= teacher_layers:
            raise KarukuError(f"keep names teacher layer {keep[-1]} of a teacher with {teacher_layers}",
                              f"name layers 0 to {teacher_layers - 1}")
        return [(k, k + 1) for k in keep]
    return [(g[0] if init == "first" else g[-1], g[-1] + 1) for g in groups(teacher_layers, layers)]


def drop_layers(model: SentenceEncoder, layers: int, init: str = "first",
                keep: list[int] | None = None) -> SentenceEncoder:
    """A student with `layers` layers, each a copy of the first (or last) teacher layer of its group, or of the
    teacher layers `keep` names."""
    picks = [p for p, _ in plan(len(model.layers), layers, init, keep)]
    c = model.cfg
    student = SentenceEncoder(replace(c, heads=tuple(c.heads[i] for i in picks),
                                      intermediate=tuple(c.intermediate[i] for i in picks),
                                      ffn_rank=tuple(c.rank(i) for i in picks), extra=copy.deepcopy(c.extra)))
    student.embed.load_state_dict(model.embed.state_dict())
    for dst, i in zip(student.layers, picks):
        dst.load_state_dict(model.layers[i].state_dict())
    return student


def loss_terms(s, t, mask: torch.Tensor, targets: list[int], cfg: TextDistillConfig,
               last: int | None = None) -> dict[str, torch.Tensor]:
    """The loss's parts for one batch (student trace `s`, teacher trace `t`; `last`: the teacher's last
    hidden-state index, for the token term)."""
    cos = F.cosine_similarity(s.embedding, t.embedding, dim=1)
    out = {"embedding": cfg.embedding_weight * ((1 - cos).mean()
                                                + cfg.mse_scale * (s.embedding - t.embedding).pow(2).sum(1).mean())}
    real = mask.bool()
    if cfg.token_weight:
        last = len(t.hidden) - 1 if last is None else last
        t_last = t.hidden[last] if isinstance(t, Cached) else t.hidden[last][real]
        out["token"] = cfg.token_weight * (1 - F.cosine_similarity(s.hidden[-1][real], t_last, dim=1)).mean()
    if cfg.hidden_weight:
        # a live teacher Trace holds padded (B, T, hidden) states; cached outputs hold the real rows already
        out["hidden"] = cfg.hidden_weight * sum(
            F.mse_loss(s.hidden[i + 1][real], t.hidden[j] if isinstance(t, Cached) else t.hidden[j][real])
            for i, j in enumerate(targets))
    if cfg.attention_weight:
        kl = [_attention_kl(s.attentions[i], t.attentions[j - 1], real)
              for i, j in enumerate(targets) if s.attentions[i].shape == t.attentions[j - 1].shape]
        if kl:
            out["attention"] = cfg.attention_weight * sum(kl)
    return out


@dataclass
class Cached:
    """The teacher's side of one batch read from a TeacherOutputs cache: embeddings and real-token hint rows."""
    embedding: torch.Tensor
    hidden: dict[int, torch.Tensor]


def length_batches(lengths: torch.Tensor, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Batches of texts of similar length (little padding), in random order: texts are shuffled, sorted by
    length in windows of 50 batches, cut into batches, and the batches shuffled."""
    order = torch.randperm(len(lengths), generator=gen)
    window = batch_size * 50
    chunks = []
    for i in range(0, len(order), window):
        part = order[i:i + window]
        part = part[torch.argsort(lengths[part], stable=True)]
        chunks += list(part.split(batch_size))
    return [chunks[int(j)] for j in torch.randperm(len(chunks), generator=gen)]


def _attention_kl(s_att: torch.Tensor, t_att: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """KL(teacher ‖ student) of each real query token's attention row, averaged."""
    kl = (t_att * (t_att.clamp_min(1e-9).log() - s_att.clamp_min(1e-9).log())).sum(-1)  # (B, heads, T)
    return kl[real[:, None, :].expand_as(kl)].mean()


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of several state dicts of one architecture, tensor by tensor (float32 sums); a tensor equal in every
    state is kept as it is; tensors that are not floating point (counters, index buffers) must agree."""
    if not states:
        raise KarukuError("no weights to average", "give at least one state dict")
    if any(set(s) != set(states[0]) for s in states):
        raise KarukuError("the students have different parameters", "average students of one shape, from one start")
    out = {}
    for k, first in states[0].items():
        ts = [s[k] for s in states]
        if any(t.shape != first.shape for t in ts):
            raise KarukuError(f"the students differ at {k}", "average students of one shape, from one start")
        if all(torch.equal(t, first) for t in ts):
            # kept exactly: a float32 mean of three equal values misses them by an ulp in ~15 % of entries
            # (measured on random normals), which would move a frozen table (freeze_words) off the teacher's
            out[k] = first.clone()
        elif first.is_floating_point():
            out[k] = (torch.stack([t.float() for t in ts]).sum(0) / len(ts)).to(first.dtype)
        else:
            raise KarukuError(f"the students differ at {k} (not floating point)", "average students of one shape")
    return out


def distill(teacher: SentenceEncoder, student: SentenceEncoder, texts: list[str], tokenizer: Tokenizer,
            cfg: TextDistillConfig, log=print, cache_dir: str | Path | None = None,
            hook: Callable[[int], dict | None] | None = None, member_dir: str | Path | None = None) -> list[dict]:
    """Train `student` in place on `texts` to match `teacher`; returns the loss history (every 50 steps).

    With `cfg.cache_teacher` (and no attention hints) the teacher runs once over `texts` before training
    (karuku.text.teacher_cache; stored in `cache_dir` when given, so later stages and resumed runs reuse it).
    `hook(step)` is called at every logged step (the student in training mode); what it returns (e.g. a held-out
    measurement for a learning curve) is added to that step's record.

    With `cfg.members` > 1 the same start is trained that many times, each member on its own shuffle (seed
    `cfg.seed + m`), and `student` ends as the mean of their weights (Wortsman et al. 2022's uniform soup: students
    fine-tuned from one start stay in one basin, where the mean of their weights predicts better than each); the
    history's records then carry a `member` number. Members may differ in `word_bits` (`cfg.member_word_bits`), and
    `cfg.refine_epochs` trains the soup further (records marked `member: "refine"`), at `cfg.word_bits`. With
    `member_dir` (a folder of this stage's own) each member is stored as it finishes and read back on a rerun."""
    if student.cfg.hidden != teacher.cfg.hidden:
        raise KarukuError("student and teacher embeddings differ in width", "keep the teacher's hidden size")
    if not texts:
        raise KarukuError("no training texts", "give unlabelled texts (e.g. karuku.text.corpus)")
    targets = [t for _, t in plan(len(teacher.layers), len(student.layers), cfg.init, cfg.keep)]
    last = len(teacher.layers)
    cached = (targets if cfg.hidden_weight else []) + ([last] if cfg.token_weight else [])
    tok = tokenizer.with_max_length(min(cfg.max_length, teacher.cfg.max_positions))
    cache = None
    if cfg.cache_teacher and not cfg.attention_weight:
        cache = teacher_outputs(teacher, texts, tok, cached, cache_dir, log)
        lengths = cache.lengths
    else:
        lengths = torch.tensor([len(tok.ids(t)) for t in texts])
    if cfg.members == 1:
        return _train(teacher, student, texts, tok, cfg, targets, cache, lengths, log, hook)
    start = {k: v.detach().clone() for k, v in student.state_dict().items()}
    history, members = [], []
    for m in range(cfg.members):
        saved = member_path(member_dir, m + 1) if member_dir is not None else None
        done = load_member(saved, start, log) if saved is not None else None
        if done is not None:
            log(f"soup member {m + 1}/{cfg.members}: trained before, read from {saved}")
            members.append(done[0])
            history += done[1]
            continue
        student.load_state_dict(start)
        bits = cfg.word_bits_of(m)
        log(f"soup member {m + 1}/{cfg.members} (seed {cfg.seed + m}"
            + (f", word table at {bits} bits" if bits else "") + ")")
        one = _train(teacher, student, texts, tok, cfg.model_copy(update={"seed": cfg.seed + m, "word_bits": bits}),
                     targets, cache, lengths, log, hook)
        one = [{"member": m + 1, **r} for r in one]
        history += one
        members.append({k: v.detach().clone() for k, v in student.state_dict().items()})
        if saved is not None:
            save_member(saved, members[-1], one)
    student.load_state_dict(average_weights(members))
    if cfg.refine_epochs:
        # the mean of a trained and a frozen table is on neither's grid: a short pass at a low rate with the table
        # rounded (word_bits) lets the layers meet the table the int8 file will hold, from the soup's basin
        lr = cfg.refine_lr or cfg.lr / 10
        log(f"refining the soup: {cfg.refine_epochs:g} epochs at lr {lr:g} (seed {cfg.seed + cfg.members})")
        one = _train(teacher, student, texts, tok, cfg.model_copy(update={
            "seed": cfg.seed + cfg.members, "epochs": cfg.refine_epochs, "lr": lr}), targets, cache, lengths, log, hook)
        history += [{"member": "refine", **r} for r in one]
    return history


def _train(teacher: SentenceEncoder, student: SentenceEncoder, texts: list[str], tok: Tokenizer,
           cfg: TextDistillConfig, targets: list[int], cache, lengths: torch.Tensor, log,
           hook: Callable[[int], dict | None] | None) -> list[dict]:
    """One student's training (see `distill`)."""
    last = len(teacher.layers)
    gen = torch.Generator().manual_seed(cfg.seed)
    batches = length_batches(lengths, cfg.batch_size, gen)
    steps_per_epoch = len(batches)
    total = max(1, round(cfg.epochs * steps_per_epoch))
    # frozen words: no gradient, and no AdamW step (its decoupled weight decay would still shrink the rows)
    words = student.embed.word.weight
    words_trainable = words.requires_grad
    # word_qat: a float table (`latent`) is what trains; the student's own table is always its rounding, so the
    # forward pass and any checkpoint taken on the way hold the int8 file's table (straight-through gradients)
    latent = words.detach().clone().requires_grad_(True) if cfg.word_qat and cfg.word_bits is not None else None
    if cfg.word_bits is not None:  # the quantized file's table (before its float16 output rounding, ~1e-3 of a
        with torch.no_grad():      # value) and one that quantizes again to the same integers and scales
            words.copy_(rounded_table(words, cfg.word_bits))
    words.requires_grad_(words_trainable and not cfg.freeze_words and (cfg.word_bits is None or latent is not None))
    params = [p for p in student.parameters() if p.requires_grad and (latent is None or p is not words)]
    params += [latent] if latent is not None else []
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min((k + 1) / warm, max(0.0, (total - k) / (total - warm
                                                                                                          + 1e-9))))
    teacher.eval()
    student.train()
    history, t0 = [], time.perf_counter()
    running: dict[str, float] = {}
    for step in range(total):
        if step and step % steps_per_epoch == 0:
            batches = length_batches(lengths, cfg.batch_size, gen)
        idx = batches[step % steps_per_epoch]
        batch = tok([texts[int(i)] for i in idx])
        if cache is not None:
            check_lengths(cache, idx, batch.attention_mask)
            t = Cached(*cache.batch(idx))
        else:
            with torch.no_grad():
                t = teacher.trace(*batch.inputs())
        s = student.trace(*batch.inputs())
        terms = loss_terms(s, t, batch.attention_mask, targets, cfg, last)
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if latent is not None:
            latent.grad, words.grad = words.grad, None
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if latent is not None:
            with torch.no_grad():
                words.copy_(rounded_table(latent, cfg.word_bits))
        for k, v in terms.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        if (step + 1) % 50 == 0 or step + 1 == total:
            n = (step % 50) + 1
            rec = {"step": step + 1, **{k: v / n for k, v in running.items()},
                   "seconds": round(time.perf_counter() - t0, 1)}
            running = {}
            if hook is not None:
                rec.update(hook(step + 1) or {})
                student.train()
            history.append(rec)
            log(f"distill step {step + 1}/{total}: " + ", ".join(f"{k} {v:.4f}" for k, v in rec.items()
                                                                  if k not in ("step", "seconds")))
    words.requires_grad_(words_trainable)
    student.eval()
    return history


def rounded_table(w: torch.Tensor, bits: int) -> torch.Tensor:
    """A word table as the int8 file stores it at `bits` (QEmbedding's grid)."""
    return QEmbedding(torch.nn.Embedding.from_pretrained(w.detach()), bits).grid()
