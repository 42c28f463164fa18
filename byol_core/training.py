"""Training loops: BYOL pretraining and supervised training, as plain PyTorch.

Each loop reports metric events (plain dicts) to callbacks, can be stopped from
another thread through a ``threading.Event``, and checkpoints enough state to
resume with the same step count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .augment import BYOLAugment, build_supervised_augment
from .config import ExperimentConfig, OptimConfig
from .data import DataSplits
from .device import autocast, resolve_device, use_bf16
from .evaluation import embed, knn_accuracy, predict_accuracy
from .losses import collapse_std
from .models import BYOL, Classifier, Encoder, build_encoder
from .schedules import cosine_tau, learning_rate

Callback = Callable[[dict[str, Any]], None]
MAX_EVALS = 25  # test-set evaluations per supervised run, at most (plus the final one)


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says what to change."""


@dataclass
class TrainResult:
    """What a loop returns: the trained model and how training ended."""

    model: nn.Module
    step: int
    total_steps: int
    stopped: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    test_accuracy: float | None = None

    @property
    def finished(self) -> bool:
        return not self.stopped and self.step >= self.total_steps


def build_optimizer(params: Sequence[nn.Parameter], cfg: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.momentum > 0)
    if cfg.optimizer == "lars":
        return LARS(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"optim.optimizer = {cfg.optimizer!r} is not supported.")


class LARS(torch.optim.Optimizer):
    """SGD with layer-wise trust ratios (You et al. 2017), as BYOL used for large batches.

    Biases and BatchNorm parameters (1-d tensors) skip weight decay and adaptation, as in the paper.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                                  "trust_coefficient": trust_coefficient})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    p_norm, g_norm = p.norm(), grad.norm()
                    ratio = torch.where((p_norm > 0) & (g_norm > 0),
                                        group["trust_coefficient"] * p_norm / g_norm, torch.ones_like(p_norm))
                    grad = grad * ratio
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = grad.clone()
                else:
                    buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _emit(callbacks: Sequence[Callback], event: dict[str, Any]) -> None:
    for cb in callbacks:
        cb(event)


def _plan(num_items: int, cfg: OptimConfig) -> tuple[int, int, int, int]:
    """Batch size, steps per epoch, total steps and warm-up steps for a data set of ``num_items``."""
    if num_items < 2:
        raise TrainingError(f"only {num_items} training image(s); at least 2 are needed for a batch.")
    batch = min(cfg.batch_size, num_items)
    steps_per_epoch = max(num_items // batch, 1)
    total = max(math.ceil(cfg.epochs * steps_per_epoch), cfg.min_steps, 1)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    return batch, steps_per_epoch, total, warmup


class EpochSampler:
    """Batch indices for a global step: each epoch's order is a pure function of (seed, epoch),
    so a run resumed at step k sees exactly the batches it would have seen."""

    def __init__(self, num_items: int, batch: int, seed: int, device: torch.device) -> None:
        self.num_items, self.batch, self.seed, self.device = num_items, batch, seed, device
        self.steps_per_epoch = max(num_items // batch, 1)
        self._epoch = -1
        self._order = torch.empty(0)

    def indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(self.num_items, generator=gen).to(self.device)
            self._epoch = epoch
        return self._order[pos * self.batch:(pos + 1) * self.batch]


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _restore_rng(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def _checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer, step: int, total: int) -> dict[str, Any]:
    """Everything a resume needs to replay the same run from ``step``: weights, optimiser, RNG."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "total_steps": total, "rng": _rng_state()}


def _restore(checkpoint: dict[str, Any] | None, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load a checkpoint made by :func:`_checkpoint`; returns the step to continue from (0 without one)."""
    if checkpoint is None:
        return 0
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    _restore_rng(checkpoint["rng"])
    return int(checkpoint["step"])


def _check_finite(loss_value: float, step: int, what: str) -> None:
    if not math.isfinite(loss_value):
        raise TrainingError(f"{what} loss became {loss_value} at step {step}; lower the learning rate "
                            "(byol.optim.lr / supervised.optim.lr) or use precision=fp32, then resume.")


class _Throughput:
    """Images per second between two reads, measured on the host clock."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.n = 0

    def add(self, n: int) -> None:
        self.n += n

    def read(self) -> float:
        now = time.perf_counter()
        rate = self.n / max(now - self.t0, 1e-9)
        self.t0, self.n = now, 0
        return rate


class _MetricWindow:
    """Sums step metrics on the device; reading them forces a host sync, so it happens only on flush."""

    def __init__(self, log_every: int) -> None:
        self.log_every = log_every
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.speed = _Throughput()

    def add(self, images: int, **values: torch.Tensor) -> None:
        for key, value in values.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1
        self.speed.add(images)

    def due(self, end_of_epoch: bool) -> bool:
        return self.count >= self.log_every or (end_of_epoch and self.count > 0)

    def flush(self) -> dict[str, float]:
        out = {key: (total / self.count).item() for key, total in self.sums.items()}
        out["img_per_s"] = self.speed.read()
        self.sums, self.count = {}, 0
        return out

    def pause(self) -> None:
        """Forget the time since the last read (evaluation is not training throughput)."""
        self.speed.read()


def prepare_runtime(cfg: ExperimentConfig) -> tuple[torch.device, bool]:
    """Device and bf16 flag for a config; sets torch's CPU threads if asked."""
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    device = resolve_device(cfg.runtime.device)
    return device, use_bf16(cfg.runtime.precision, device)


def images_on_device(images: torch.Tensor, device: torch.device, max_share: float = 0.4) -> torch.Tensor:
    """The uint8 data set where batches are indexed without DataLoader workers.

    On the GPU when it takes at most ``max_share`` of the free memory (uint8 is 4x smaller than
    float; STL10's 105k images at 96 px are 2.9 GB), else in pinned host memory so each batch
    copies to the GPU asynchronously. CPU and MPS keep host tensors.
    """
    if device.type != "cuda":
        return images
    free, _total = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() <= max_share * free:
        try:
            return images.to(device, non_blocking=True)
        except torch.OutOfMemoryError:
            pass
    return images.pin_memory()


def knn_eval(encoder: Encoder, splits: DataSplits, cfg: ExperimentConfig, device: torch.device) -> float:
    """Weighted-kNN test accuracy of an encoder, using the labelled training images as the memory bank."""
    train = splits.labelled_train
    size = cfg.augment.image_size
    train_feats = embed(encoder, train.images, size, splits.mean, splits.std, cfg.eval.batch_size, device)
    test_feats = embed(encoder, splits.test.images, size, splits.mean, splits.std, cfg.eval.batch_size, device)
    return knn_accuracy(train_feats, train.labels, test_feats, splits.test.labels,
                        k=cfg.eval.knn_k, temperature=cfg.eval.knn_temperature,
                        num_classes=splits.num_classes)


def byol_step(model: BYOL, augment: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, *,
              lr: float, tau: float, bf16: bool, channels_last: bool,
              forward: Callable[..., Any] | None = None) -> Any:
    """One BYOL update from a uint8 batch on the training device: augment, forward, backward, EMA.

    Never reads a value back to the host, so consecutive steps queue on the GPU without stalls.
    """
    with torch.no_grad():
        view_1, view_2 = augment(images)
    if channels_last:
        view_1 = view_1.contiguous(memory_format=torch.channels_last)
        view_2 = view_2.contiguous(memory_format=torch.channels_last)
    _set_lr(optimizer, lr)
    with autocast(images.device, bf16):
        out = (forward or model)(view_1, view_2)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    optimizer.step()
    model.update_target(tau)
    return out


def pretrain_byol(cfg: ExperimentConfig, splits: DataSplits, *, callbacks: Sequence[Callback] = (),
                  stop_event: threading.Event | None = None,
                  checkpoint: dict[str, Any] | None = None,
                  save_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """BYOL pretraining on ``splits.pretrain_images()``; labels are never looked at except by the kNN check.

    ``checkpoint`` (from a previous ``save_checkpoint`` call) resumes at its step.
    """
    device, bf16 = prepare_runtime(cfg)
    torch.manual_seed(cfg.seed)
    images = images_on_device(splits.pretrain_images(), device)
    optim_cfg = cfg.byol.optim
    batch, steps_per_epoch, total, warmup = _plan(len(images), optim_cfg)

    model = BYOL.from_config(cfg.model, cfg.augment.image_size).to(device)
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    augment = BYOLAugment(cfg.augment, splits.mean, splits.std).to(device)
    optimizer = build_optimizer(model.online_parameters(), optim_cfg, device)
    forward = torch.compile(model) if cfg.runtime.compile else model

    start = _restore(checkpoint, model, optimizer)

    def make_checkpoint(step: int) -> dict[str, Any]:
        return _checkpoint(model, optimizer, step, total)

    history: list[dict[str, Any]] = []

    def emit(event: dict[str, Any]) -> None:
        history.append(event)
        _emit(callbacks, event)

    _emit(callbacks, {"kind": "start", "stage": "byol", "step": start, "total_steps": total,
                      "steps_per_epoch": steps_per_epoch, "batch_size": batch, "device": str(device),
                      "num_images": len(images)})
    model.train()
    window = _MetricWindow(cfg.runtime.log_every)
    sampler = EpochSampler(len(images), batch, cfg.seed, images.device)
    step = start
    stopped = False
    while step < total:
        if stop_event is not None and stop_event.is_set():
            stopped = True
            break
        idx = sampler.indices(step)
        lr = learning_rate(step, total, optim_cfg.lr, warmup, optim_cfg.schedule)
        tau = cosine_tau(step, total, cfg.byol.tau_base)
        out = byol_step(model, augment, optimizer, images[idx].to(device, non_blocking=True), lr=lr, tau=tau,
                        bf16=bf16, channels_last=cfg.runtime.channels_last, forward=forward)
        window.add(len(idx), loss=out.loss, collapse_std=collapse_std(out.projections))
        step += 1
        end_of_epoch = step % steps_per_epoch == 0 or step == total
        if window.due(end_of_epoch):
            metrics = window.flush()
            _check_finite(metrics["loss"], step, "BYOL")
            emit({"kind": "step", "stage": "byol", "step": step, "total_steps": total,
                  "epoch": step / steps_per_epoch, "lr": lr, "tau": tau, **metrics,
                  "collapse_reference": 1.0 / math.sqrt(out.projections.shape[1])})
        if end_of_epoch:
            epoch_done = math.ceil(step / steps_per_epoch)
            event: dict[str, Any] = {"kind": "epoch", "stage": "byol", "epoch": epoch_done, "step": step,
                                     "total_steps": total}
            every = cfg.byol.knn_every_epochs
            if every and (epoch_done % every == 0 or step == total) and splits.labelled_train.labels.numel():
                model.eval()
                event["knn_accuracy"] = knn_eval(model.online_encoder, splits, cfg, device)
                model.train()
                window.pause()
            emit(event)
            if save_checkpoint is not None and (epoch_done % cfg.runtime.checkpoint_every_epochs == 0
                                                or step == total):
                save_checkpoint(make_checkpoint(step))
    if stopped and save_checkpoint is not None:
        save_checkpoint(make_checkpoint(step))
    model.eval()
    return TrainResult(model=model, step=step, total_steps=total, stopped=stopped, history=history)


def train_supervised(cfg: ExperimentConfig, splits: DataSplits, mode: str, *,
                     encoder_state: dict[str, torch.Tensor] | None = None,
                     callbacks: Sequence[Callback] = (), stop_event: threading.Event | None = None,
                     checkpoint: dict[str, Any] | None = None,
                     save_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Supervised training on the labelled training images, evaluated on the test set each epoch.

    ``mode``: ``scratch`` (random init), ``finetune`` (start from ``encoder_state``, train all
    weights) or ``linear`` (frozen encoder from ``encoder_state`` or random, train a linear head
    on precomputed features).
    """
    if mode not in ("scratch", "finetune", "linear"):
        raise ValueError(f"mode = {mode!r}; use 'scratch', 'finetune' or 'linear'.")
    if mode == "finetune" and encoder_state is None:
        raise ValueError("fine-tuning needs a BYOL encoder: pass the run to start from.")
    train = splits.labelled_train
    if splits.num_classes < 2 or len(train) == 0:
        raise TrainingError(f"data set {splits.name!r} has no labelled training images; supervised "
                            "training needs class labels (for a folder, use one subfolder per class).")
    device, bf16 = prepare_runtime(cfg)
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(cfg.model)
    if encoder_state is not None:
        encoder.model.load_state_dict(encoder_state)
    encoder = encoder.to(device)
    feat_dim = encoder.feature_dim(cfg.augment.image_size)
    model = Classifier(encoder, feat_dim, splits.num_classes).to(device)
    if cfg.runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if mode == "linear":
        return _train_linear(cfg, splits, model, device, callbacks, stop_event)

    optim_cfg = cfg.supervised.optim
    images = images_on_device(train.images, device)
    labels = train.labels.to(device)
    batch, steps_per_epoch, total, warmup = _plan(len(images), optim_cfg)
    augment = build_supervised_augment(cfg.augment.image_size, cfg.supervised.crop_scale_min,
                                       cfg.supervised.flip_p, splits.mean, splits.std,
                                       backend=cfg.augment.backend).to(device)
    optimizer = build_optimizer(list(model.parameters()), optim_cfg, device)
    start = _restore(checkpoint, model, optimizer)
    history: list[dict[str, Any]] = []

    def emit(event: dict[str, Any]) -> None:
        history.append(event)
        _emit(callbacks, event)

    def make_checkpoint(step: int) -> dict[str, Any]:
        return _checkpoint(model, optimizer, step, total)

    _emit(callbacks, {"kind": "start", "stage": mode, "step": start, "total_steps": total,
                      "steps_per_epoch": steps_per_epoch, "batch_size": batch, "device": str(device),
                      "num_images": len(images)})
    step, stopped, accuracy = start, False, None
    sampler = EpochSampler(len(images), batch, cfg.seed, device)
    window = _MetricWindow(cfg.runtime.log_every)
    # With few labels an epoch is a step or two: test (and checkpoint) at most ~MAX_EVALS times.
    eval_every = max(1, math.ceil(total / steps_per_epoch / MAX_EVALS))
    model.train()
    while step < total:
        if stop_event is not None and stop_event.is_set():
            stopped = True
            break
        idx = sampler.indices(step)
        with torch.no_grad():
            x = augment(images[idx])
        if cfg.runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        lr = learning_rate(step, total, optim_cfg.lr, warmup, optim_cfg.schedule)
        _set_lr(optimizer, lr)
        with autocast(device, bf16):
            loss = F.cross_entropy(model(x).float(), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.add(len(idx), loss=loss)
        step += 1
        end_of_epoch = step % steps_per_epoch == 0 or step == total
        if window.due(end_of_epoch):
            metrics = window.flush()
            _check_finite(metrics["loss"], step, "supervised")
            emit({"kind": "step", "stage": mode, "step": step, "total_steps": total,
                  "epoch": step / steps_per_epoch, "lr": lr, **metrics})
        if end_of_epoch:
            epoch_done = math.ceil(step / steps_per_epoch)
            event = {"kind": "epoch", "stage": mode, "epoch": epoch_done, "step": step, "total_steps": total}
            if epoch_done % eval_every == 0 or step == total:
                model.eval()
                accuracy = predict_accuracy(model, splits.test.images, splits.test.labels,
                                            cfg.augment.image_size, splits.mean, splits.std,
                                            cfg.eval.batch_size, device)
                model.train()
                window.pause()
                event["test_accuracy"] = accuracy
                if save_checkpoint is not None:
                    save_checkpoint(make_checkpoint(step))
            emit(event)
    if stopped and save_checkpoint is not None:
        save_checkpoint(make_checkpoint(step))
    model.eval()
    return TrainResult(model=model, step=step, total_steps=total, stopped=stopped, history=history,
                       test_accuracy=accuracy)


def _train_linear(cfg: ExperimentConfig, splits: DataSplits, model: Classifier, device: torch.device,
                  callbacks: Sequence[Callback], stop_event: threading.Event | None) -> TrainResult:
    """Linear probe: features of the frozen encoder computed once, then a linear layer trained on them."""
    size, bs = cfg.augment.image_size, cfg.eval.batch_size
    model.eval()
    train = splits.labelled_train
    x_train = embed(model.encoder, train.images, size, splits.mean, splits.std, bs, device).to(device)
    x_test = embed(model.encoder, splits.test.images, size, splits.mean, splits.std, bs, device).to(device)
    # Standardise with training statistics: makes one learning rate work across backbones.
    mu, sigma = x_train.mean(0, keepdim=True), x_train.std(0, keepdim=True).clamp_min(1e-6)
    x_train, x_test = (x_train - mu) / sigma, (x_test - mu) / sigma
    y_train, y_test = train.labels.to(device), splits.test.labels.to(device)
    head = nn.Linear(x_train.shape[1], splits.num_classes).to(device)
    optim_cfg = cfg.supervised.linear_optim
    batch, steps_per_epoch, total, warmup = _plan(len(x_train), optim_cfg)
    optimizer = build_optimizer(list(head.parameters()), optim_cfg, device)
    history: list[dict[str, Any]] = []
    _emit(callbacks, {"kind": "start", "stage": "linear", "step": 0, "total_steps": total,
                      "steps_per_epoch": steps_per_epoch, "batch_size": batch, "device": str(device),
                      "num_images": len(x_train)})
    step, stopped, accuracy = 0, False, None
    sampler = EpochSampler(len(x_train), batch, cfg.seed, device)
    while step < total:
        if stop_event is not None and stop_event.is_set():
            stopped = True
            break
        idx = sampler.indices(step)
        _set_lr(optimizer, learning_rate(step, total, optim_cfg.lr, warmup, optim_cfg.schedule))
        loss = F.cross_entropy(head(x_train[idx]), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % steps_per_epoch == 0 or step == total:
            with torch.no_grad():
                accuracy = (head(x_test).argmax(1) == y_test).float().mean().item()
            event = {"kind": "epoch", "stage": "linear", "epoch": math.ceil(step / steps_per_epoch),
                     "step": step, "total_steps": total, "loss": loss.item(), "test_accuracy": accuracy}
            history.append(event)
            _emit(callbacks, event)
    # Fold the standardisation into the head so the classifier works on raw features.
    with torch.no_grad():
        w = head.weight / sigma
        model.head.weight.copy_(w)
        model.head.bias.copy_(head.bias - (w * mu).sum(1))
    return TrainResult(model=model, step=step, total_steps=total, stopped=stopped, history=history,
                       test_accuracy=accuracy)


__all__ = ["TrainResult", "TrainingError", "build_optimizer", "knn_eval", "pretrain_byol", "train_supervised"]
