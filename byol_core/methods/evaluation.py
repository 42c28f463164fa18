"""Evaluation: embeddings of frozen encoders, weighted kNN, classifier accuracy, view agreement."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..augment.views import eval_transform
from ..config import ExperimentConfig
from ..data import DataSplits


@torch.no_grad()
def embed(encoder: nn.Module, images: torch.Tensor, image_size: int, mean: Sequence[float],
          std: Sequence[float], batch_size: int = 512, device: torch.device | str = "cpu") -> torch.Tensor:
    """Representations (N, D) of uint8 images, float32 on the CPU; the encoder is put in eval mode."""
    was_training = encoder.training
    encoder.eval()
    device = torch.device(device)
    out = []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device, non_blocking=True)
            out.append(encoder(eval_transform(x, image_size, mean, std)).float().cpu())
    finally:
        encoder.train(was_training)
    if not out:
        return torch.empty(0, 0)
    return torch.cat(out)


@torch.no_grad()
def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor, query_features: torch.Tensor,
                k: int = 20, temperature: float = 0.07, num_classes: int | None = None,
                chunk: int = 1024, exclude_self: bool = False) -> torch.Tensor:
    """Weighted kNN on cosine similarity (Wu et al. 2018): neighbours vote with ``exp(sim / T)``.

    ``exclude_self``: the queries are the bank itself (query i is bank row i) and no point votes
    for itself, i.e. leave-one-out predictions of the bank's own labels.
    """
    if exclude_self and len(query_features) != len(train_features):
        raise ValueError(f"exclude_self needs the bank as queries: {len(query_features)} queries "
                         f"for {len(train_features)} bank rows.")
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    bank = F.normalize(train_features.float(), dim=1)
    k = min(k, len(bank) - 1 if exclude_self else len(bank))
    preds = []
    for start in range(0, len(query_features), chunk):
        q = F.normalize(query_features[start:start + chunk].float(), dim=1)
        sims = q @ bank.T
        if exclude_self:
            rows = torch.arange(len(q))
            sims[rows, rows + start] = -float("inf")
        sims, idx = sims.topk(k, dim=1)
        weights = (sims / temperature).exp()
        votes = torch.zeros(len(q), num_classes)
        votes.scatter_add_(1, train_labels[idx], weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 20, temperature: float = 0.07,
                 num_classes: int | None = None) -> float:
    """Share of test images whose weighted-kNN prediction is their label."""
    keep = train_labels >= 0
    preds = knn_predict(train_features[keep], train_labels[keep], test_features, k, temperature, num_classes)
    return (preds == test_labels).float().mean().item()


@torch.no_grad()
def knn_vote(encoder: nn.Module, splits: DataSplits, cfg: ExperimentConfig, query_features: torch.Tensor,
             device: torch.device | str = "cpu") -> torch.Tensor:
    """The class of each query row by the rule of every kNN number here: the labelled training images vote.

    They are embedded by ``encoder`` (which must also have made ``query_features``) and the
    ``cfg.eval.knn_k`` most cosine-similar vote with weight ``exp(sim / cfg.eval.knn_temperature)``
    (:func:`knn_predict`); images labelled -1 do not vote. Pretraining's kNN curve and score, a run's
    error analysis and the embedding page's predictions all come from here.
    """
    train = splits.labelled_train
    if not len(train):
        raise ValueError(f"data set {splits.name!r} has no labelled training images to vote with.")
    bank = embed(encoder, train.images, cfg.augment.image_size, splits.mean, splits.std, cfg.eval.batch_size, device)
    keep = train.labels >= 0
    return knn_predict(bank[keep], train.labels[keep], query_features, k=cfg.eval.knn_k,
                       temperature=cfg.eval.knn_temperature, num_classes=splits.num_classes)


@torch.no_grad()
def predict_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, image_size: int,
                     mean: Sequence[float], std: Sequence[float], batch_size: int = 512,
                     device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of a classifier on uint8 images."""
    logits = embed(model, images, image_size, mean, std, batch_size, device)
    return (logits.argmax(1) == labels).float().mean().item()


@torch.no_grad()
def view_agreement(encoder: nn.Module, images: torch.Tensor, augment: nn.Module,
                   device: torch.device | str = "cpu", seed: int = 0) -> tuple[float, float]:
    """Mean cosine similarity of two augmented views of the same image, and of different images.

    Representations are centred on their batch mean first: raw ReLU features of any network
    (random ones too) point into the same orthant and look alike (cos ~0.9). Centred, a random
    convnet scores ~0.3 on Fashion-MNIST and a BYOL-trained one ~0.6, while different images stay
    near 0; a collapsed encoder would push both numbers together.
    """
    was_training = encoder.training
    encoder.eval()
    device = torch.device(device)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            v1, v2 = augment(images.to(device))
        a, b = encoder(v1).float(), encoder(v2).float()
    finally:
        encoder.train(was_training)
    centre = torch.cat([a, b]).mean(0, keepdim=True)
    a, b = a - centre, b - centre
    same = F.cosine_similarity(a, b, dim=1).mean().item()
    different = F.cosine_similarity(a, b.roll(1, dims=0), dim=1).mean().item()
    return same, different


def pixel_features(images: torch.Tensor, image_size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Raw pixels (resized, normalised, flattened): the baseline any learned encoder must beat."""
    return eval_transform(images, image_size, mean, std).flatten(1).float()
