"""The grokking recipe: train a GrokkingMLP on (a + b) mod p and save it with its progress measures.

This is what `mechscope train grokking-mlp` runs. Besides the weights, the checkpoint holds
the per-step train/test curves (`history`) and, under `extra["progress"]`, restricted and
excluded loss at regular weight snapshots, measured with the final model's key
frequencies (`extra["key_frequencies"]`), as in Nanda et al. (2023).

Measured on a shared 2-core CPU with the defaults (p = 59, half the pairs for training,
d_embed 64, width 128, AdamW lr 3e-3, weight decay 1.0): see the README section
"Modular arithmetic mechanics".

Example:
    >>> result = train_grokking_mlp("runs/grokking-mlp")
    >>> result.metrics["test_accuracy"]
    1.0
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from typing import Any

import torch
from torch import nn

from mechscope.data import modular_data
from mechscope.errors import ConfigError
from mechscope.fourier.energy import frequency_spectrum
from mechscope.fourier.progress import progress_measures
from mechscope.fourier.tables import embedding_matrix
from mechscope.devices import resolve_device
from mechscope.models import GrokkingMLP, GrokkingMLPConfig, build_seeded
from mechscope.models.grokking_transformer import GrokkingTransformer, GrokkingTransformerConfig
from mechscope.models.checkpoint import check_checkpoint_out, save_checkpoint
from mechscope.models.grokking_train import GrokkingTrainConfig, train_grokking
from mechscope.recipes.builtin import TrainedModel

__all__ = ["train_grokking_mlp", "train_grokking_transformer", "KEY_SHARE", "N_SNAPSHOTS", "TRANSFORMER_TRAINING",
           "TRANSFORMER_TRAIN_FRACTION"]

KEY_SHARE = 0.9
"""Energy share of the embedding the recorded key frequencies hold (as in `analyze_modular`)."""

N_SNAPSHOTS = 60
"""Weight snapshots replayed for the progress measures when `snapshot_every` is 0."""

TRANSFORMER_TRAINING = GrokkingTrainConfig(steps=1000, lr=3e-3, weight_decay=1.0)
"""Full-batch AdamW of the transformer recipe (the MLP's betas)."""

TRANSFORMER_TRAIN_FRACTION = 0.6
"""Share of the pairs the transformer trains on by default."""


def train_grokking_mlp(
    out: str | os.PathLike[str],
    *,
    model_config: GrokkingMLPConfig | None = None,
    train_config: GrokkingTrainConfig | None = None,
    train_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """Train a GrokkingMLP on a `train_fraction` of all pairs and write its checkpoint.

    Args:
        out: Checkpoint folder.
        model_config: Architecture; defaults to `GrokkingMLPConfig()` (p = 59).
        train_config: Optimiser settings; defaults to `GrokkingTrainConfig()`. With
            `snapshot_every=0`, about `N_SNAPSHOTS` evenly spaced snapshots are taken.
        train_fraction: Share of the p * p pairs used for training; the rest is held out.
        seed: Seeds the initial weights, the split and training.
        progress: Show a progress bar.
        device: Where to train (see `mechscope.devices.resolve_device`).

    Returns:
        TrainedModel with final train/test loss and accuracy; `epochs_run` counts
        full-batch steps.

    Raises:
        ConfigError: If `train_fraction` is not in (0, 1).
    """
    model_config = GrokkingMLPConfig() if model_config is None else model_config
    return _train_and_save("grokking-mlp", GrokkingMLP, model_config, out, train_config=train_config,
                           train_fraction=train_fraction, seed=seed, progress=progress, device=device)


def train_grokking_transformer(
    out: str | os.PathLike[str],
    *,
    model_config: GrokkingTransformerConfig | None = None,
    train_config: GrokkingTrainConfig | None = None,
    train_fraction: float = TRANSFORMER_TRAIN_FRACTION,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> TrainedModel:
    """Train a GrokkingTransformer on a `train_fraction` of all pairs and write its checkpoint.

    Same arguments and checkpoint contents as `train_grokking_mlp`; the defaults are
    `GrokkingTransformerConfig()` (p = 59, one block, d_model 128, 4 heads) and
    `TRANSFORMER_TRAINING`.
    """
    model_config = GrokkingTransformerConfig() if model_config is None else model_config
    train_config = replace(TRANSFORMER_TRAINING, seed=seed) if train_config is None else train_config
    return _train_and_save("grokking-transformer", GrokkingTransformer, model_config, out, train_config=train_config,
                           train_fraction=train_fraction, seed=seed, progress=progress, device=device)


def _train_and_save(name: str, model_cls: type[nn.Module], model_config: Any, out: str | os.PathLike[str], *,
                    train_config: GrokkingTrainConfig | None, train_fraction: float, seed: int, progress: bool,
                    device: str | torch.device) -> TrainedModel:
    """Train a modular-addition model full-batch, measure its progress, and write its checkpoint."""
    check_checkpoint_out(out)
    train_config = GrokkingTrainConfig(seed=seed) if train_config is None else train_config
    if not (isinstance(train_fraction, (int, float)) and 0.0 < train_fraction < 1.0):
        raise ConfigError(f"train_fraction must be in (0, 1), got {train_fraction!r}; e.g. 0.5.")
    if train_config.snapshot_every == 0:
        train_config = replace(train_config, snapshot_every=max(train_config.steps // N_SNAPSHOTS, 1))
    data = modular_data(model_config.modulus, "+", encoding="pairs", test_fraction=1.0 - train_fraction, seed=seed)
    model = build_seeded(model_cls, model_config, seed).to(resolve_device(device))
    run = train_grokking(model, data, train_config, progress=progress)
    keys = frequency_spectrum(embedding_matrix(model)).key_frequencies(KEY_SHARE)
    rows = progress_measures(model, run.snapshots, keys, data=data)
    extra: dict[str, Any] = {
        "target": name,
        "train_config": asdict(train_config),
        "train_fraction": train_fraction,
        "seconds": run.seconds,
        "memorised_at": run.memorised_at(),
        "grokked_at": run.grokked_at(),
        "key_frequencies": keys,
        "key_share": KEY_SHARE,
        "progress": rows,
    }
    path = save_checkpoint(out, model, data_spec=data.spec, metrics=run.metrics, history=run.history, extra=extra)
    return TrainedModel(name, path, run.metrics, train_config.steps, run.seconds)
