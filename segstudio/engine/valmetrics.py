"""Validation metrics accumulated on the device over batches: per-class Dice, IoU and pixel accuracy."""

from __future__ import annotations

import math

import torch

from segstudio.engine.events import ClassMetrics
from segstudio.engine.task import IGNORE, Task


def hard_prediction(logits: torch.Tensor, task: Task, thresholds: torch.Tensor) -> torch.Tensor:
    """Logits ``(N, C, H, W)`` → ``(N, H, W) int64`` class indices, or ``(N, K, H, W) bool`` for multi-label."""
    if task.mode == "multiclass":
        return logits.argmax(1)
    probs = logits.float().sigmoid()
    if task.mode == "binary":
        return (probs[:, 0] > thresholds[0]).long()
    return probs > thresholds.view(1, -1, 1, 1)


class MetricAccumulator:
    def __init__(self, task: Task, *, device: torch.device, thresholds: tuple[float, ...] | None = None) -> None:
        self.task = task
        k = task.num_classes
        self.thr = torch.tensor(thresholds or [0.5] * task.out_channels, device=device, dtype=torch.float32)
        self.inter = torch.zeros(k, dtype=torch.float64, device=device)
        self.pred = torch.zeros(k, dtype=torch.float64, device=device)
        self.gt = torch.zeros(k, dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.float64, device=device)
        self.valid = torch.zeros((), dtype=torch.float64, device=device)

    def counts(self) -> tuple[torch.Tensor, ...]:
        """The running sums the scores come from (a distributed run adds up every process's in place)."""
        return self.inter, self.pred, self.gt, self.correct, self.valid

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        pred = hard_prediction(logits, self.task, self.thr)
        if self.task.mode == "multilabel":
            g = target.bool()
            self.inter += (pred & g).sum(dim=(0, 2, 3)).double()
            self.pred += pred.sum(dim=(0, 2, 3)).double()
            self.gt += g.sum(dim=(0, 2, 3)).double()
            self.correct += (pred == g).sum().double()
            self.valid += float(g.numel())
            return
        valid = target != IGNORE
        k = self.task.num_classes
        p = torch.where(valid, pred, k)
        g = torch.where(valid, target, k)
        self.inter += torch.bincount(g[p == g], minlength=k + 1)[:k].double()
        self.pred += torch.bincount(p.flatten(), minlength=k + 1)[:k].double()
        self.gt += torch.bincount(g.flatten(), minlength=k + 1)[:k].double()
        self.correct += ((p == g) & valid).sum().double()
        self.valid += valid.sum().double()

    def result(self) -> tuple[float, float, float, tuple[ClassMetrics, ...]]:
        """(mean Dice, mean IoU over ``task.metric_indices``, pixel accuracy, per-class metrics).
        A class absent from GT and prediction alike scores NaN and is left out of the means."""
        inter, pred, gt = self.inter.cpu(), self.pred.cpu(), self.gt.cpu()
        per = []
        for i, name in enumerate(self.task.class_names):
            denom = float(pred[i] + gt[i])
            dice = 2 * float(inter[i]) / denom if denom > 0 else math.nan
            union = denom - float(inter[i])
            iou = float(inter[i]) / union if union > 0 else math.nan
            per.append(ClassMetrics(name=name, dice=dice, iou=iou))
        chosen = [per[i] for i in self.task.metric_indices]
        dices = [c.dice for c in chosen if not math.isnan(c.dice)]
        ious = [c.iou for c in chosen if not math.isnan(c.iou)]
        acc = float(self.correct) / float(self.valid) if float(self.valid) > 0 else math.nan
        return (
            sum(dices) / len(dices) if dices else math.nan,
            sum(ious) / len(ious) if ious else math.nan,
            acc,
            tuple(per),
        )
