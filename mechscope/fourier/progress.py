"""Progress measures over training: restricted and excluded loss at every weight snapshot.

Nanda et al. (2023) track, with the *final* model's key frequencies, how the restricted
loss (key frequencies only, held-out pairs) and the excluded loss (key frequencies
removed, training pairs) evolve: the excluded loss climbs while the test loss is still
high ("circuit formation"), and the restricted loss drops before the test loss does.

Example:
    >>> run = train_grokking(model, data, GrokkingTrainConfig(snapshot_every=100))
    >>> freqs = analyze_modular(model, data=data).key_frequencies
    >>> rows = progress_measures(model, run.snapshots, freqs, data=data)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

from torch import Tensor, nn

from mechscope.data.bundle import DataBundle
from mechscope.errors import ConfigError
from mechscope.fourier.losses import excluded_loss, restricted_loss, table_accuracy, table_loss
from mechscope.fourier.tables import logit_table

__all__ = ["progress_measures", "split_pairs"]


def progress_measures(
    model: nn.Module,
    snapshots: Sequence[tuple[int, dict[str, Tensor]]],
    frequencies: Iterable[int],
    *,
    data: DataBundle,
) -> list[dict[str, float]]:
    """Replay weight snapshots and measure losses on the full p x p logit table.

    Args:
        model: The architecture the snapshots belong to (its own weights are not touched).
        snapshots: (step, state_dict) pairs, e.g. `GrokkingRun.snapshots`.
        frequencies: Key frequencies (usually the final model's).
        data: The modular split; its "pairs_train" / "pairs_test" extras choose the pairs.

    Returns:
        One dict per snapshot: "step", "train_loss", "test_loss", "test_accuracy",
        "restricted_loss" (held-out pairs), "excluded_loss" (training pairs).
    """
    freqs = list(frequencies)
    train_pairs, test_pairs = split_pairs(data)
    replica = copy.deepcopy(model)
    rows = []
    for step, state in snapshots:
        replica.load_state_dict(state)
        logits = logit_table(replica, data.n_classes)
        rows.append(
            {
                "step": float(step),
                "train_loss": table_loss(logits, pairs=train_pairs),
                "test_loss": table_loss(logits, pairs=test_pairs),
                "test_accuracy": table_accuracy(logits, pairs=test_pairs),
                "restricted_loss": restricted_loss(logits, freqs, pairs=test_pairs) if freqs else float("nan"),
                "excluded_loss": excluded_loss(logits, freqs, pairs=train_pairs) if freqs else float("nan"),
            }
        )
    return rows


def split_pairs(data: DataBundle) -> tuple[Tensor, Tensor]:
    """Return the (train, test) integer pairs of a modular DataBundle.

    Raises:
        ConfigError: If the bundle has no "pairs_train" / "pairs_test" extras.
    """
    try:
        return data.extras["pairs_train"], data.extras["pairs_test"]
    except KeyError:
        raise ConfigError(
            "the data has no 'pairs_train'/'pairs_test' extras; build it with mechscope.data.modular_data(...)."
        ) from None
