"""`Trainer`: one genome + a DataBundle → best weights and a per-epoch history.

Recipe (one search trial, or the final retrain with a bigger budget):

- Network: `build_network(genome, plan.in_channels, plan.n_classes, plan.network_plan, cell)`,
  initialised under `torch.manual_seed(seed)`.
- Loss: MONAI `DiceCELoss(to_onehot_y=True, softmax=True, include_background=False,
  batch=True)` — nnU-Net's choice: soft Dice over foreground classes computed over the whole
  batch (stable when a patch misses a class) plus cross-entropy, computed in fp32.
- Optimiser: AdamW with the genome's learning rate and `train.weight_decay`; gradients clipped
  to norm `train.grad_clip`.
- Schedule (per iteration, over the whole budget E × iters_per_epoch): linear warm-up over the
  first 5% of the steps (at most 50), then polynomial decay (1 − t)^0.9 to ~0 (nnU-Net's
  "poly"). Early stopping does not shorten the schedule: a trial is judged on the same curve
  whatever its stopping epoch.
- Wall-clock budget (`fit(seconds=S)`, used to compare networks at equal CPU seconds): the poly
  decay follows the clock instead of the step count, t = elapsed / S (validation included; the
  warm-up ends after its steps or 5% of S, whichever is first), and
  training stops when the time left would not cover the final validation (as long as the last
  one took); that last, possibly partial epoch is validated. The epochs are then a cap.
  Step counts, and so the history, depend on the machine's speed: not reproducible step for step.
- Precision: on CUDA with `train.amp`, autocast bf16 where the GPU supports it (no scaler),
  else fp16 with a GradScaler; on CPU plain fp32 (bf16 conv3d on CPU is far slower).
- Memory layout: on CPU the network runs channels_last_3d with its InstanceNorm3d layers
  computed by `group_norm` (groups = channels, the same function and the same state_dict keys):
  measured on the 2-core machine for the quickstart genome at 48³, batch 2, one step takes
  ~0.9 s instead of ~3–5 s (channels_last alone) or ~6–20 s (default layout): oneDNN's
  channels-last 3-D convolution backward is ~10× faster, and InstanceNorm3d would convert
  back to the default layout at every norm. Not applied on CUDA (not measured there).
- Data: the bundle's `train` dataset through a MONAI DataLoader with a seeded sampler drawing
  E × iters × batch patches with replacement (`bundle.train_loader` when the bundle has one);
  `num_workers` from the constructor, else the bundle's `num_workers`, else 0 (on 2 cores the
  workers would compete with the convolution threads; the patch pipeline after caching is
  cheap — `scripts/bench_train.py` measures the data-wait share).
- Validation: every `val_every` epochs and at the last epoch, MONAI sliding-window inference
  (patch-size windows, `sw_batch_size`, `sw_overlap`, Gaussian blending) over each whole
  validation volume; Dice per foreground class per volume (empty conventions as in
  `medseg_nas.metrics`), averaged over volumes; `val_dice` is the mean over classes.
- Early stopping: stop when `patience` epochs have passed since the best validation Dice
  (patience 0: never). The best weights are kept in memory (CPU copy) → `TrialResult.state_dict`.
- Failures — CUDA OOM, non-finite loss, a patch the network cannot take, any exception — are
  returned as `status="failed"` with the reason; memory is released before returning.
- Reproducibility: the same genome, seed and device give the same history on CPU (the global
  RNG state of the caller is restored afterwards).
"""

from __future__ import annotations

import gc
import logging
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from medseg_nas.device import resolve_device
from medseg_nas.metrics import confusion_counts, dice_from_confusion
from medseg_nas.sliding_window import sliding_window
from medseg_nas.space.network import NetworkSpec
from medseg_nas.results import TrialResult, TrialStatus
from medseg_nas.train.checkpoint import TrainState, save_state, state_meta
from medseg_nas.train.failures import FitPosition, TrialFailure, describe_failure, peak_rss_mb
from medseg_nas.train.fit_state import Batches, FitState, plain as _plain, val_items as _val_items, write_scalars
from medseg_nas.train.layout import swap_instance_norm
from medseg_nas.train.precision import Precision, precision_for

log = logging.getLogger(__name__)



class Trainer:
    """Trains genomes on one DataBundle (see the module doc for the recipe).

    `bundle`: `.train` (dicts image C×patch, label 1×patch), `.val` (whole volumes), optional
    `.reseed(seed)`, `.train_loader(batch_size, num_samples, seed, num_workers)` and
    `.num_workers`. `plan`: `.patch_size`, `.network_plan`, `.in_channels`, `.n_classes`.
    `channels_last`: None = on CPU only (measured faster there).
    `network_fn(genome) -> nn.Module`: builds the network instead of `build_network` (benchmarks
    train hand-designed peers with the same recipe); `genome` is then any object with `.lr` and
    `.n_c` (downsamplings, for the patch-divisor check). None (the default): a `Genome`.
    `precision`: overrides the device's precision policy (`precision_for`); the tests use it to
    run the mixed-precision path on CPU, where CI has no GPU.
    `cell`: which cell `build_network` builds (config `space.cell`, one of space.CELLS).
    """

    def __init__(
        self,
        train_cfg,
        bundle,
        plan,
        device: str | torch.device = "auto",
        log_dir: str | Path | None = None,
        progress: bool = True,
        num_workers: int | None = None,
        channels_last: bool | None = None,
        network_fn: Callable[[Any], nn.Module] | None = None,
        precision: Precision | None = None,
        on_epoch: Callable[[dict], None] | None = None,
        cell: str = "residual",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.cfg = train_cfg
        self.clock = clock  # seconds; the wall-clock budget reads it (tests pass a fake one)
        self.on_epoch = on_epoch  # called with each epoch's history row as it ends (live curves)
        self.precision = precision  # None: `precision_for(device, train.amp)`
        self.network_fn = network_fn
        self.cell = cell
        self.bundle = bundle
        self.plan = plan
        self.device = resolve_device(device)
        self.log_dir = Path(log_dir) if log_dir else None
        self.progress = progress
        self.num_workers = int(num_workers if num_workers is not None else getattr(bundle, "num_workers", 0) or 0)
        self.channels_last = (self.device.type == "cpu") if channels_last is None else bool(channels_last)

    # -- public ------------------------------------------------------------------------------
    def fit(
        self,
        genome,
        seed: int | None = None,
        epochs: int | None = None,
        iters_per_epoch: int | None = None,
        patience: int | None = None,
        seconds: float | None = None,
        until: int | None = None,
        resume: TrainState | None = None,
        save_to: str | Path | None = None,
    ) -> TrialResult:
        """Train `genome`; never raises for a failed trial (status="failed", error=reason).

        `seconds`: a wall-clock budget (module doc); `epochs` is then only a cap.
        Successive halving (train/checkpoint.py): `until` stops after that epoch while the schedule
        still spans `epochs`; `resume` goes on from a saved state; `save_to` saves the state at the
        end. The result is then judged over the `until` epochs trained."""
        cfg = self.cfg
        seed = int(cfg.seed if seed is None else seed)
        E = int(epochs if epochs is not None else cfg.epochs)
        iters = int(iters_per_epoch if iters_per_epoch is not None else cfg.iters_per_epoch)
        pat = int(patience if patience is not None else cfg.patience)
        until = E if until is None else int(until)
        if seconds is not None and (until != E or resume is not None):
            raise ValueError("a wall-clock budget (seconds) cannot be combined with until/resume")
        result = TrialResult(status=TrialStatus.DONE, epochs_budget=until, seed=seed, device=str(self.device))
        run = FitPosition()
        t0 = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        error = None
        try:
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            # enable_grad: a caller inside no_grad/inference_mode (or one that left grad off
            # globally) still gets a trained network instead of a failed trial
            with torch.random.fork_rng(devices=devices), torch.enable_grad():
                self._fit(genome, seed, E, iters, pat, result, run, seconds, (until, resume, save_to))
        except Exception as exc:  # every failure becomes data (KeyboardInterrupt still stops)
            error = describe_failure(exc, run.where())
            log.warning("trial %s failed: %s", getattr(genome, "key", lambda: "?")(), error)
            log.debug("traceback:\n%s", traceback.format_exc())
            del exc
        if error is not None:
            result.status = TrialStatus.FAILED
            result.error = error
            result.state_dict = None
        result.history = run.history
        result.epochs_run = len(run.history)
        result.n_params = run.n_params
        t = run.timing
        steps = max(int(t["steps"]), 1)
        result.timing = {
            "train_s": round(t["train_s"], 3),
            "val_s": round(t["val_s"], 3),
            "data_wait_s": round(t["data_wait_s"], 3),
            "steps": int(t["steps"]),
            "step_ms": round(1000 * t["train_s"] / steps, 1),
            "data_wait_fraction": round(t["data_wait_s"] / t["train_s"], 4) if t["train_s"] > 0 else 0.0,
        }
        self._release()
        if self.device.type == "cuda":
            result.peak_mem_mb = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        else:
            result.peak_mem_mb = round(peak_rss_mb(), 1)
        result.seconds = round(time.perf_counter() - t0, 3)
        return result

    # -- internals ---------------------------------------------------------------------------
    def _release(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def build(self, genome) -> nn.Module:
        """The network as trained here (layout/norm tweaks on CPU), on the trainer's device."""
        plan = self.plan
        if self.network_fn is not None:
            net = self.network_fn(genome)
        else:
            net = NetworkSpec.of(plan, self.cell).build(genome)
        if self.channels_last:
            swap_instance_norm(net)
            net = net.to(memory_format=torch.channels_last_3d)
        return net.to(self.device)

    def _loader(self, seed: int, n_samples: int):
        b = self.bundle
        bs = int(self.cfg.batch_size)
        if hasattr(b, "train_loader"):
            return b.train_loader(bs, n_samples, seed=seed, num_workers=self.num_workers)
        from monai.data import DataLoader

        g = torch.Generator().manual_seed(seed)
        if isinstance(b.train, torch.utils.data.IterableDataset):
            return DataLoader(b.train, batch_size=bs, num_workers=self.num_workers, generator=g)
        sampler = torch.utils.data.RandomSampler(b.train, replacement=True, num_samples=n_samples, generator=g)
        return DataLoader(
            b.train, batch_size=bs, sampler=sampler, num_workers=self.num_workers, generator=g,
            pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0,
        )

    def _fit(self, genome, seed: int, E: int, iters: int, patience: int, result: TrialResult, run: FitPosition,
             seconds: float | None = None, rung: tuple = (None, None, None)) -> None:
        """The loop, in named steps: setup → per epoch (train_epoch → validate_epoch → end_epoch) → finish."""
        until, resume, save_to = rung
        until = E if until is None else until
        start = resume.epochs_done if resume is not None else 0
        if not start < until <= E:
            raise TrialFailure(f"nothing to train: {start} epochs done, asked to train until epoch {until} of {E}")
        f = self._setup(genome, seed, E, iters, seconds, start, resume, run)
        writer = None
        if self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(self.log_dir))
            writer.add_text("genome", genome.to_json() if hasattr(genome, "to_json") else str(genome))
        from tqdm.auto import tqdm

        bar = tqdm(total=None if seconds else (until - start) * iters, disable=not self.progress, leave=False, dynamic_ncols=True, unit="it",
                   desc=f"trial {genome.key() if hasattr(genome, 'key') else ''}".strip())
        try:
            batches = Batches(self._loader(f.data_seed, (until - start) * iters * int(self.cfg.batch_size)))
            for epoch in range(start + 1, until + 1):
                row, last = self._train_epoch(f, batches, epoch, E, iters, epoch == until, run, bar)
                mean_step = f.mean_step(run.timing["steps"])
                if not last and f.out_of_time(2 * f.val_s + mean_step):
                    last = True  # this validation, one more step and the final one would overrun
                if epoch % max(int(self.cfg.val_every), 1) == 0 or last:
                    self._validate_epoch(f, row, epoch, run)
                self._end_epoch(f, row, epoch, E, run, writer, bar)
                if last or (patience > 0 and f.e_max > 0 and epoch - f.e_max >= patience):
                    break
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        self._finish(f, genome, seed, E, iters, run, result, save_to)

    def _setup(self, genome, seed: int, E: int, iters: int, seconds: float | None, start: int, resume, run) -> FitState:
        """Checks, seeds, the network, optimiser, schedule and scaler (restored from `resume`)."""
        from monai.losses import DiceCELoss

        cfg, plan, dev = self.cfg, self.plan, self.device
        if E < 1 or iters < 1:
            raise TrialFailure(f"empty budget: epochs={E}, iters_per_epoch={iters}")
        if seconds is not None and not seconds > 0:
            raise TrialFailure(f"empty budget: seconds={seconds}")
        clock = self.clock
        t_start = clock()
        patch = tuple(int(p) for p in plan.patch_size)
        div = plan.network_plan.divisor(genome.n_c)
        if any(p % d for p, d in zip(patch, div)):
            raise TrialFailure(
                f"patch {list(patch)} is not a multiple of {list(div)}, which a network with n_c={genome.n_c} "
                f"and strides {[list(s) for s in plan.network_plan.strides[:genome.n_c]]} needs"
            )
        torch.manual_seed(seed)
        data_seed = seed + 7919 * start  # a continued trial draws fresh patches (train/checkpoint.py)
        if hasattr(self.bundle, "reseed"):
            self.bundle.reseed(data_seed)
        net = self.build(genome)
        run.n_params = int(sum(p.numel() for p in net.parameters() if p.requires_grad))
        opt = torch.optim.AdamW(net.parameters(), lr=float(genome.lr), weight_decay=float(cfg.weight_decay))
        total = E * iters
        warmup = max(1, min(50, round(0.05 * total)))

        def lr_factor(step: int) -> float:
            if seconds:  # warm-up ends after `warmup` steps or 5% of the time, whichever comes first
                done = (clock() - t_start) / seconds
                return min(1.0, max((step + 1) / warmup, done / 0.05)) * max(0.0, 1.0 - done) ** 0.9
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, 1.0 - (step - warmup) / max(1, total - warmup)) ** 0.9

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
        prec = self.precision or precision_for(dev, bool(cfg.amp))
        scaler = torch.amp.GradScaler(dev.type, enabled=prec.grad_scaler)
        f = FitState(net, opt, sched, scaler, loss_fn, prec.autocast, prec.dtype,
                     torch.channels_last_3d if self.channels_last else torch.contiguous_format, int(plan.n_classes),
                     patch, data_seed, clock, t_start, seconds)
        if resume is not None:
            net.load_state_dict(resume.network)
            opt.load_state_dict(resume.optimizer)
            sched.load_state_dict(resume.scheduler)
            scaler.load_state_dict(resume.scaler)
            run.history = list(resume.history)
            f.best, f.best_state, f.e_max = resume.best, resume.best_state, resume.e_max
        return f

    def train_step(self, f: FitState, batch) -> tuple[float, torch.Tensor, torch.Tensor]:
        """One optimisation step on one batch: (loss, logits, labels)."""
        dev, n_classes = self.device, f.n_classes
        x = _plain(batch["image"]).to(dev, non_blocking=True).float().contiguous(memory_format=f.memory_format)
        y = _plain(batch["label"]).to(dev, non_blocking=True)
        f.data_ready = time.perf_counter()
        with torch.autocast(dev.type, dtype=f.amp_dtype, enabled=f.use_amp):
            logits = f.net(x)
        if logits.shape[2:] != y.shape[2:] or logits.shape[1] != n_classes:
            raise TrialFailure(
                f"network output {tuple(logits.shape)} does not match label {tuple(y.shape)} for {n_classes} classes"
            )
        loss = f.loss_fn(logits.float(), y)
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise TrialFailure(f"non-finite loss ({lv})")
        f.opt.zero_grad(set_to_none=True)
        f.scaler.scale(loss).backward()
        f.scaler.unscale_(f.opt)
        if self.cfg.grad_clip and self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(f.net.parameters(), float(self.cfg.grad_clip))
        f.scaler.step(f.opt)
        f.scaler.update()
        f.sched.step()
        return lv, logits, y

    def _train_epoch(self, f: FitState, batches, epoch: int, E: int, iters: int, last: bool, run, bar) -> tuple[dict, bool]:
        """Up to `iters` steps (fewer when the clock runs out): the epoch's history row, and whether
        it is the last epoch."""
        run.epoch, run.phase = epoch, "train"
        f.t_epoch = time.perf_counter()
        f.net.train()
        n_classes = f.n_classes
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        cm = torch.zeros(n_classes, n_classes, dtype=torch.long, device=self.device)
        steps = 0
        for i in range(iters):
            if i > 0 and f.out_of_time(f.val_s):
                last = True
                break
            run.iteration = i + 1
            t_step = time.perf_counter()
            batch = batches.next()
            lv, logits, y = self.train_step(f, batch)
            run.timing["data_wait_s"] += f.data_ready - t_step
            loss_sum += lv
            steps += 1
            with torch.no_grad():
                cm += confusion_counts(logits.detach().argmax(1), y[:, 0], n_classes)
            run.timing["train_s"] += time.perf_counter() - t_step
            run.timing["steps"] += 1
            bar.update(1)
            bar.set_postfix(epoch=f"{epoch}/{E}", loss=f"{lv:.3f}", refresh=False)
        train_dice = dice_from_confusion(cm)
        row = {
            "epoch": epoch,
            "loss": float(loss_sum) / steps,
            "train_dice": float(sum(train_dice) / max(len(train_dice), 1)),
            "train_dice_per_class": {str(c + 1): d for c, d in enumerate(train_dice)},
            "val_dice": None,
            "val_dice_per_class": None,
            "lr": float(f.opt.param_groups[0]["lr"]),
        }
        return row, last

    def _validate_epoch(self, f: FitState, row: dict, epoch: int, run) -> None:
        """Validate, put the Dice into the epoch's row, keep the weights when they are the best."""
        run.phase = "val"
        t_val, c_val = time.perf_counter(), f.clock()
        per_class = self._validate(f.net, f.patch, f.n_classes, f.use_amp, f.amp_dtype)
        run.timing["val_s"] += time.perf_counter() - t_val
        f.val_s = f.clock() - c_val
        f.val_total += f.val_s
        row["val_dice_per_class"] = {str(c + 1): d for c, d in enumerate(per_class)}
        row["val_dice"] = float(sum(per_class) / max(len(per_class), 1))
        if row["val_dice"] > f.best:
            f.best, f.e_max = row["val_dice"], epoch
            f.best_state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in f.net.state_dict().items()}

    def _end_epoch(self, f: FitState, row: dict, epoch: int, E: int, run, writer, bar) -> None:
        """The row goes into the history, to `on_epoch`, TensorBoard and the progress bar."""
        row["seconds"] = round(time.perf_counter() - f.t_epoch, 3)
        run.history.append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)
        if writer is not None:
            write_scalars(writer, row)
        bar.set_postfix(epoch=f"{epoch}/{E}", loss=f"{row['loss']:.3f}", val=f"{f.best:.3f}")

    def _finish(self, f: FitState, genome, seed: int, E: int, iters: int, run, result: TrialResult, save_to) -> None:
        """Save the state for the next rung (successive halving) and fill the result from the best epoch."""
        if save_to is not None:
            save_state(TrainState(f.net.state_dict(), f.opt.state_dict(), f.sched.state_dict(), f.scaler.state_dict(),
                                  run.history, f.best, f.e_max, f.best_state, run.n_params, state_meta(genome, seed, E, iters)),
                       save_to)
        at = run.history[f.e_max - 1]
        result.e_max = f.e_max
        result.val_dice = float(f.best)
        result.val_dice_per_class = dict(at["val_dice_per_class"])
        result.train_dice = float(at["train_dice"])
        result.state_dict = f.best_state

    @torch.inference_mode()
    def _validate(self, net: nn.Module, patch, n_classes: int, use_amp: bool, amp_dtype) -> list[float]:
        """Mean over validation volumes of the per-class foreground Dice."""
        net.eval()
        sums = [0.0] * (n_classes - 1)
        n = 0
        for item in _val_items(self.bundle.val):
            image = _plain(item["image"])
            label = _plain(item["label"]).to(self.device)
            with torch.autocast(self.device.type, dtype=amp_dtype, enabled=use_amp):
                logits = sliding_window(
                    net, image, patch, int(self.cfg.sw_batch_size), float(self.cfg.sw_overlap), self.device
                )
            if logits.shape[1:] != label.shape[-3:]:
                raise TrialFailure(f"validation output {tuple(logits.shape)} does not match label {tuple(label.shape)}")
            if not bool(torch.isfinite(logits).all()):  # argmax of NaN is class 0: a Dice that looks real
                raise TrialFailure(f"non-finite network output on validation volume {n + 1} "
                                   f"(NaN/Inf in {'its image' if not bool(torch.isfinite(image).all()) else 'the weights'})")
            d = dice_from_confusion(confusion_counts(logits.argmax(0), label.reshape(label.shape[-3:]), n_classes))
            sums = [s + v for s, v in zip(sums, d)]
            n += 1
        if n == 0:
            raise TrialFailure("the bundle has no validation volumes")
        return [s / n for s in sums]
