"""What the model tests share: a hooks object that records every trainer event, and the
mark for tests that need a CUDA device."""

from __future__ import annotations

import pytest
import torch

from model.train import TrainerHooks

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class Recorder(TrainerHooks):
    def __init__(self):
        self.steps, self.evals, self.checkpoints, self.samples = [], [], [], []

    def on_step(self, step, loss, tokens_per_s):
        self.steps.append((step, loss))

    def on_eval(self, step, metrics):
        self.evals.append((step, dict(metrics)))

    def on_checkpoint(self, path, metrics):
        self.checkpoints.append((path, metrics["val_loss"]))

    def on_sample(self, step, text):
        self.samples.append((step, text))
