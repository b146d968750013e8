import pytest
import torch

from karuku.data import DataConfig, load_splits
from karuku.models import build
from karuku.training import Hook, TrainConfig, lr_factor, score, train


@pytest.fixture(scope="module")
def splits():
    return load_splits(DataConfig(name="digits", val_size=200))


def _model(seed=0):
    torch.manual_seed(seed)
    return build("mlp-student", (1, 8, 8), 10)


def test_training_learns_digits(splits):
    model = _model()
    before = score(model, splits.test).accuracy
    result = train(model, splits, TrainConfig(epochs=3, lr=0.05, batch_size=32), verbose=False)
    after = score(model, splits.test).accuracy
    assert before < 0.3 and after > 0.9
    assert result.iterations == 3 * 39 and result.epochs == 3  # 1,237 examples / 32 → 39 batches
    assert len(result.history) == 3 and result.best_iteration in {h["iteration"] for h in result.history}


def test_same_seed_same_weights(splits):
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=32, seed=5)
    a, b = _model(), _model()
    train(a, splits, cfg, verbose=False)
    train(b, splits, cfg, verbose=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_iterations_and_eval_every(splits):
    model = _model()
    result = train(model, splits, TrainConfig(iterations=50, eval_every=10, batch_size=32), verbose=False)
    assert result.iterations == 50
    assert [h["iteration"] for h in result.history] == [10, 20, 30, 40, 50]  # every 10 iterations, not at epoch ends
    best = min(result.history, key=lambda h: h["val_loss"])
    assert (result.best_iteration, result.best_val_loss) == (best["iteration"], best["val_loss"])


class Crash(Exception):
    pass


class CrashAt(Hook):
    def __init__(self, iteration):
        self.iteration = iteration

    def after_step(self, state):
        if state.iteration == self.iteration:
            raise Crash()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_after_a_crash_reaches_the_same_weights(splits, tmp_path, optimizer):
    cfg = TrainConfig(epochs=3, lr=0.01, batch_size=32, optimizer=optimizer, seed=2)
    reference = _model()
    train(reference, splits, cfg, verbose=False)
    state = tmp_path / "run.state"
    crashed = _model()
    with pytest.raises(Crash):
        train(crashed, splits, cfg, hooks=[CrashAt(39 + 39 + 5)], state_path=state, verbose=False)
    assert state.exists()
    resumed = _model()  # a fresh process rebuilds the same model; the state restores weights, optimiser and RNG
    result = train(resumed, splits, cfg, hooks=[CrashAt(10**9)], state_path=state, verbose=False)
    assert state.exists()  # kept (at the end of training) until the caller's result is written: resume.discard
    assert result.iterations == 3 * 39
    assert all(torch.equal(p, q) for p, q in zip(reference.parameters(), resumed.parameters()))


def test_state_from_other_settings_is_refused(splits, tmp_path):
    state = tmp_path / "run.state"
    with pytest.raises(Crash):
        train(_model(), splits, TrainConfig(epochs=2, batch_size=32), hooks=[CrashAt(45)], state_path=state,
              verbose=False)
    from karuku.errors import KarukuError

    with pytest.raises(KarukuError, match="belongs to another run: its training settings differ"):
        train(_model(), splits, TrainConfig(epochs=2, batch_size=32, lr=0.5), hooks=[CrashAt(10**9)],
              state_path=state, verbose=False)


class Recorder(Hook):
    def __init__(self):
        self.events = []

    def on_start(self, state):
        self.events.append("start")

    def loss(self, state, x, y, output):
        return torch.nn.functional.cross_entropy(output, y) * 0.0 + output.pow(2).mean()

    def after_backward(self, state):
        self.events.append("backward")

    def after_step(self, state):
        self.events.append(("step", state.iteration))

    def on_epoch_end(self, state):
        self.events.append("epoch")


def test_hooks_see_every_stage_and_can_replace_the_loss(splits):
    rec = Recorder()
    model = _model()
    train(model, splits, TrainConfig(iterations=3, batch_size=32, lr=0.1), hooks=[rec], verbose=False)
    assert rec.events == ["start", "backward", ("step", 1), "backward", ("step", 2), "backward", ("step", 3), "epoch"]
    # the replaced loss (mean squared logits) drove the logits towards zero
    assert model(splits.test.tensors[0]).abs().mean() < 1.0


def test_lr_schedules():
    assert lr_factor(TrainConfig(schedule="constant"), 50, 100) == 1.0
    cos = TrainConfig(schedule="cosine")
    assert lr_factor(cos, 0, 100) == 1.0 and abs(lr_factor(cos, 50, 100) - 0.5) < 1e-12
    step = TrainConfig(schedule="step")
    assert [lr_factor(step, i, 100) for i in (0, 49, 50, 75)] == [1.0, 1.0, 0.1, pytest.approx(0.01)]
    warm = TrainConfig(schedule="constant", warmup_iterations=10)
    assert lr_factor(warm, 0, 100) == pytest.approx(0.1) and lr_factor(warm, 9, 100) == 1.0


def test_augmented_training_runs(splits):
    aug = load_splits(DataConfig(name="digits", val_size=200, augment_shift=1))
    model = _model()
    train(model, aug, TrainConfig(epochs=2, lr=0.05, batch_size=32), verbose=False)
    assert score(model, aug.test).accuracy > 0.8


def test_max_grad_norm_bounds_every_update(splits):
    # plain SGD (no momentum): each update is lr × the clipped gradient, so its norm is at most lr × max norm
    cfg = TrainConfig(iterations=5, lr=1.0, momentum=0.0, batch_size=32, schedule="constant", max_grad_norm=0.01)
    model = _model()
    steps = []

    class Watch(Hook):
        def after_step(self, state):
            steps.append(torch.cat([p.detach().flatten() for p in model.parameters()]))

    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    train(model, splits, cfg, hooks=[Watch()], verbose=False)
    updates = [float((b - a).norm()) for a, b in zip([before, *steps[:-1]], steps)]
    assert len(updates) == 5 and all(0 < u <= 0.01 * (1 + 1e-4) for u in updates)
    unclipped = _model()
    train(unclipped, splits, cfg.model_copy(update={"max_grad_norm": None}, deep=True), verbose=False)
    moved = torch.cat([p.detach().flatten() for p in unclipped.parameters()]) - before
    assert float(moved.norm()) > 0.1  # the same run without clipping takes far larger steps


def test_a_diverging_run_stops_with_a_clear_error(splits):
    from karuku.errors import KarukuError

    with pytest.raises(KarukuError, match="training diverged at iteration .*max_grad_norm"):
        train(_model(), splits, TrainConfig(iterations=200, lr=1000, batch_size=32), verbose=False)
