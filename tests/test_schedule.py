import math

import pytest

from sarlib import lambda_schedule


def test_warmup_then_cosine_to_zero():
    w = [lambda_schedule(e, 100, lambda0=0.01, warmup=10) for e in range(100)]
    assert w[0] == 0.0
    assert w[9] == pytest.approx(0.01) and w[10] == pytest.approx(0.01)
    assert all(b > a for a, b in zip(w[:9], w[1:10]))  # strictly increasing warm-up
    assert all(b <= a for a, b in zip(w[10:], w[11:]))  # non-increasing decay
    assert w[-1] == pytest.approx(0.0, abs=1e-12)
    mid = 10 + (99 - 10) / 2
    assert lambda_schedule(int(mid), 100) == pytest.approx(0.005 * (1 + math.cos(math.pi * (int(mid) - 10) / 89)))


def test_constant_and_no_warmup():
    assert {lambda_schedule(e, 20, lambda0=0.3, decay="constant") for e in range(20)} == {0.3}
    assert lambda_schedule(0, 20, lambda0=0.3, warmup=0) == pytest.approx(0.3)


def test_runs_shorter_than_warmup():
    w = [lambda_schedule(e, 3, lambda0=1.0, warmup=10) for e in range(3)]
    assert w == pytest.approx([0.0, 1 / 9, 2 / 9])


@pytest.mark.parametrize("bad", [dict(epoch=5, epochs=5), dict(epoch=-1, epochs=5), dict(epoch=0, epochs=5, decay="step")])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        lambda_schedule(**bad)


# ----------------------------------------------------------------------------- learning-rate timing


def _authors_epoch_lrs(epochs=300, global_batch=1024):
    """The lr each epoch trains at in the authors' (DeiT's) loop, from the recipe's formula: timm's
    cosine lr(t) = min + (base - min) * (1 + cos(pi * t / epochs)) / 2 after a linear warm-up
    lr(t) = warmup + t * (base - warmup) / 5 for t < 5; the scheduler is stepped with `epoch` after each
    epoch, so epoch e trains at lr(e - 1) and epoch 0 at the warm-up start set at construction."""
    base, warmup_lr, min_lr, warmup = 5e-4 * global_batch / 512, 1e-6, 1e-5, 5

    def lr(t):
        if t < warmup:
            return warmup_lr + t * (base - warmup_lr) / warmup
        return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * t / epochs))

    return [warmup_lr] + [lr(e - 1) for e in range(1, epochs)], [lr(e) for e in range(epochs)]


def _run_schedule(cfg, global_batch, epochs_to_run=None, schedule=None, optimizer=None):
    import torch

    from sarlib.train.lr import EpochLRSchedule

    if schedule is None:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr * global_batch / 512)
        schedule = EpochLRSchedule(optimizer, epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs,
                                   warmup_lr=cfg.warmup_lr, min_lr=cfg.min_lr, step=cfg.lr_step)
    lrs = []
    for epoch in epochs_to_run if epochs_to_run is not None else range(cfg.epochs):
        lrs.append(schedule.start_epoch(epoch))
        optimizer.step()  # the epoch's training
        schedule.end_epoch(epoch)
    return lrs, schedule, optimizer


def test_paper_profile_trains_each_epoch_at_the_authors_lr():
    from sarlib.train.config import load_profile

    paper = load_profile("paper")
    assert paper.lr_step == "after_epoch" and paper.epochs == 300
    authors, per_epoch = _authors_epoch_lrs()
    got, _, _ = _run_schedule(paper, global_batch=1024)
    assert got == pytest.approx(authors, rel=1e-12, abs=1e-15)
    assert got[0] == got[1] == pytest.approx(1e-6)  # two epochs at the warm-up start
    assert got[2] == pytest.approx(1e-6 + (1e-3 - 1e-6) / 5)
    # the default timing trains epoch e at lr(e): epoch 1 at 2.0e-4, a one-epoch shorter warm-up
    ours, _, _ = _run_schedule(paper.replace(lr_step="before_epoch"), global_batch=1024)
    assert ours == pytest.approx(per_epoch, rel=1e-12, abs=1e-15)
    assert ours[1] == pytest.approx(2.008e-4)


@pytest.mark.parametrize("timing", ["before_epoch", "after_epoch"])
def test_lr_sequence_survives_a_checkpoint_round_trip(timing):
    from sarlib.train.config import load_profile

    cfg = load_profile("paper", lr_step=timing, epochs=20)
    whole, _, _ = _run_schedule(cfg, global_batch=512)
    head, schedule, optimizer = _run_schedule(cfg, global_batch=512, epochs_to_run=range(7))
    saved = {"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict()}
    # a fresh process: new optimizer and schedule, restored from the checkpoint
    _, fresh, fresh_opt = _run_schedule(cfg, global_batch=512, epochs_to_run=[])
    fresh_opt.load_state_dict(saved["optimizer"])
    fresh.load_state_dict(saved["scheduler"])
    tail, _, _ = _run_schedule(cfg, global_batch=512, epochs_to_run=range(7, 20), schedule=fresh, optimizer=fresh_opt)
    assert head + tail == whole


def test_unknown_lr_timing_is_rejected():
    import torch

    from sarlib.train.config import TrainConfig
    from sarlib.train.lr import EpochLRSchedule

    with pytest.raises(ValueError, match="lr_step must be"):
        TrainConfig(lr_step="mid_epoch")
    with pytest.raises(ValueError, match="lr_step must be"):
        EpochLRSchedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), epochs=3, warmup_epochs=0,
                        warmup_lr=0.0, min_lr=0.0, step="mid_epoch")
