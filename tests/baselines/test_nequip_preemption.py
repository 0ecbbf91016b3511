"""PreemptionCheckpoint on a tiny Lightning model: a signal during an epoch's validation lets that epoch end
whole (its timing record, one scheduler step) and the resumed run logs every epoch exactly once; so does
Lightning's own SIGTERM stop (its SIGTERMException, a SystemExit with status 0 that made a preempted run look
finished, is turned into the save and exit 75). A signal
during an epoch's last training batch does not (known limitation, documented in nequip_callbacks: the save
after that batch resumes in the next epoch without the finished one's end); marked xfail(strict) so that a
fix shows."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("lightning")

import torch  # noqa: E402
from lightning.pytorch import LightningModule, Trainer  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from tm23data.baselines.nequip_callbacks import EpochTimer, PreemptionCheckpoint  # noqa: E402
from tm23data.baselines.nequip_run import PREEMPTED_EXIT  # noqa: E402


class _Tiny(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)}


def _loader():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


class _Signal(Callback):
    """Raises the preemption flag, as the signal handler does, in epoch ``epoch``: during its last training
    batch or during its validation."""

    def __init__(self, preemption, epoch, when):
        self.preemption, self.epoch, self.when = preemption, epoch, when

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.when == "last batch" and trainer.current_epoch == self.epoch and batch_idx == 1:
            self.preemption._flag = True

    def on_validation_start(self, trainer, pl_module):
        if trainer.current_epoch != self.epoch or trainer.sanity_checking:
            return
        if self.when == "validation":
            self.preemption._flag = True
        elif self.when == "lightning's own SIGTERM stop":  # as Lightning's handler marks a SIGTERM
            self.preemption._flag = True
            trainer._signal_connector.received_sigterm = True


def _trainer(tmp_path, callbacks, max_epochs):
    return Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False, callbacks=callbacks,
                   default_root_dir=tmp_path, num_sanity_val_steps=0)  # fmt: skip


@pytest.mark.parametrize("when", [
    pytest.param("last batch", marks=pytest.mark.xfail(strict=True, reason="the save after an epoch's last batch "
                                                       "resumes without that epoch's end (known limitation)")),
    "validation",
    "lightning's own SIGTERM stop",  # SIGTERMException (status 0) at Lightning's check: saved, exit 75
])  # fmt: skip
def test_a_signal_at_the_end_of_an_epoch_keeps_the_epoch_whole(tmp_path, when):
    log = tmp_path / "timing.jsonl"
    first = PreemptionCheckpoint(str(tmp_path))
    with pytest.raises(SystemExit) as exit_:
        _trainer(tmp_path, [EpochTimer(str(log)), first, _Signal(first, 1, when)], 4).fit(
            _Tiny(), _loader(), _loader())
    assert exit_.value.code == PREEMPTED_EXIT
    model = _Tiny()
    trainer = _trainer(tmp_path, [EpochTimer(str(log)), PreemptionCheckpoint(str(tmp_path))], 4)
    trainer.fit(model, _loader(), _loader(), ckpt_path=str(tmp_path / "last.ckpt"))
    epochs = [json.loads(x) for x in log.read_text().splitlines() if '"epoch"' in x]
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3]  # epoch 1 ended (hooks ran) before the save
    # one scheduler step per epoch (the rate logged at an epoch's end is the stepped one)
    assert [e["lr"] for e in epochs] == pytest.approx([0.05, 0.025, 0.0125, 0.00625])
