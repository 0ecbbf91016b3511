"""Lightning callbacks used by the generated NequIP configs (imported inside ``nequip-train``).

- :class:`MinLearningRateStop`: the paper's stopping rule, "training is concluded if the learning rate
  reduced to be less than 1e-5". Lightning has no minimum-lr stop, and nequip 0.19 provides none.
- :class:`EpochTimer`: logs the wall time of each training epoch (``epoch_time_s``) so that result files
  and the benchmark can report it.
- :class:`PreemptionCheckpoint`: a signal (SIGTERM, SIGUSR1) saves the full training state and exits with
  a dedicated status, so an interrupted run continues where it stopped (:mod:`.nequip_run`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from lightning.pytorch.callbacks import Callback

from ..errors import UsageError
from .nequip_run import PREEMPTED_EXIT


def current_lr(trainer) -> float:
    """The largest learning rate over the optimizers' parameter groups."""
    return max(group["lr"] for opt in trainer.optimizers for group in opt.param_groups)


class MinLearningRateStop(Callback):
    """Stop training once the learning rate is below ``min_lr``.

    Checked at the end of every training epoch (after validation). ReduceLROnPlateau steps after this
    hook, so the epoch that brings the rate below ``min_lr`` is followed by one epoch at that rate and
    training then stops, as nequip's own ``early_stopping_lower_bounds: {LR: 1e-5}`` did (it read the
    rate in use before stepping the scheduler). ``stopped_epoch`` records where.
    """

    def __init__(self, min_lr: float = 1e-5):
        if not min_lr > 0:
            raise UsageError(f"min_lr must be positive, got {min_lr}")
        self.min_lr = float(min_lr)
        self.stopped_epoch: int | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        lr = current_lr(trainer)
        if lr < self.min_lr:
            self.stopped_epoch = trainer.current_epoch
            trainer.should_stop = True
            print(f"MinLearningRateStop: learning rate {lr:.3g} < {self.min_lr:.3g}; stopping after epoch "
                  f"{trainer.current_epoch}", flush=True)  # fmt: skip

    def state_dict(self) -> dict:
        return {"min_lr": self.min_lr, "stopped_epoch": self.stopped_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.stopped_epoch = state_dict.get("stopped_epoch")


class EpochTimer(Callback):
    """Logs ``epoch_time_s`` (wall time of the training part of each epoch, without validation) and
    ``lr`` (the rate used in that epoch) to the trainer's loggers; with ``log_file`` it also appends JSON
    lines there: ``{"event": "fit_start", "time": unix}`` (start-up ends) and one per epoch with its wall
    time and the process's CPU time (all threads; robust to other load on the machine)."""

    def __init__(self, log_file: str | None = None):
        self.log_file = log_file
        self._start = self._cpu_start = None
        self._paused = self._cpu_paused = 0.0
        self._val_start = self._val_cpu_start = None

    def _write(self, record: dict) -> None:
        if self.log_file:
            with open(self.log_file, "a") as fh:
                fh.write(json.dumps(record) + "\n")

    def on_fit_start(self, trainer, pl_module) -> None:
        self._write({"event": "fit_start", "time": time.time()})
        # a segment resumed from a mid-epoch checkpoint enters that epoch without on_train_epoch_start:
        # its time is counted from here (the rest of the epoch)
        self._start, self._cpu_start = time.perf_counter(), time.process_time()
        self._paused = self._cpu_paused = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start, self._cpu_start = time.perf_counter(), time.process_time()
        self._paused = self._cpu_paused = 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._val_start, self._val_cpu_start = time.perf_counter(), time.process_time()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._val_start is not None and self._start is not None:
            self._paused += time.perf_counter() - self._val_start
            self._cpu_paused += time.process_time() - self._val_cpu_start
        self._val_start = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._start is None:
            return
        elapsed = time.perf_counter() - self._start - self._paused
        cpu = time.process_time() - self._cpu_start - self._cpu_paused
        lr = current_lr(trainer)
        pl_module.log("epoch_time_s", elapsed, on_step=False, on_epoch=True, sync_dist=False)
        pl_module.log("lr", lr, on_step=False, on_epoch=True, sync_dist=False)
        self._write({"event": "epoch", "epoch": trainer.current_epoch, "train_s": elapsed, "train_cpu_s": cpu,
                     "lr": lr, "time": time.time()})  # fmt: skip




class PreemptionCheckpoint(Callback):
    """On SIGTERM or SIGUSR1 (a scheduler's warning before its time limit, ``scancel``, ``kill``): finish
    the current batch, save ``dirpath/last.ckpt`` (the full training state: weights, optimizer, scheduler,
    epoch and batch counters, callbacks' states) and exit with :data:`PREEMPTED_EXIT`.

    The handler only sets a flag; the save happens at the next batch end, where the state is consistent.
    Lightning's own SIGTERM stop (``SIGTERMException`` at its check points) is caught in ``on_exception`` and
    saved the same way. Known limitation: a save after an epoch's last batch resumes in the next epoch
    without the finished epoch's end (its timing record, the stop check and the plateau step of that one
    epoch are lost).
    Under DDP any rank's flag stops all ranks (one collective decision per batch), so a signal delivered to
    one process (local launch) or to all (``srun``) behaves the same.
    """

    SIGNALS = ("SIGTERM", "SIGUSR1")

    def __init__(self, dirpath: str, filename: str = "last.ckpt"):
        self.path = os.path.join(dirpath, filename)
        self._flag = False
        self._previous: dict = {}

    def _handler(self, signum, frame) -> None:
        self._flag = True
        print(f"PreemptionCheckpoint: received {signal.Signals(signum).name}; saving after this batch", flush=True)

    def on_fit_start(self, trainer, pl_module) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread
        for name in self.SIGNALS:
            if hasattr(signal, name):
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handler)

    def on_fit_end(self, trainer, pl_module) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _check(self, trainer) -> None:
        stop = self._flag
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            self._save_and_exit(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        # Lightning's own SIGTERM handling raises SIGTERMException (a SystemExit with status 0) at its own
        # check points (after an epoch's end, inside validation), which can come before this callback's next
        # check: without this, the run would end as if it had finished. Every rank raises it at the same point.
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if isinstance(exception, SIGTERMException):
            self._save_and_exit(trainer)

    def _save_and_exit(self, trainer) -> None:
        trainer.save_checkpoint(self.path)
        print(f"PreemptionCheckpoint: saved {self.path} at epoch {trainer.current_epoch}, step "
              f"{trainer.global_step}; exiting with {PREEMPTED_EXIT}", flush=True)  # fmt: skip
        sys.stdout.flush()
        os._exit(PREEMPTED_EXIT) if trainer.world_size > 1 and trainer.global_rank != 0 else sys.exit(PREEMPTED_EXIT)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._check(trainer)
