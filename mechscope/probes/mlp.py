"""MLPProbe: a multilayer perceptron read-out, the non-linear member of the probe family.

Over-parameterised MLP probes can memorise arbitrary labels of the input types they
have seen (Hewitt & Liang, 2019, "Designing and Interpreting Probes with Control
Tasks"), so compare their selectivity, not only their accuracy, with a linear probe's.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mechscope.errors import ConfigError
from mechscope.probes.base import NetworkProbe

__all__ = ["MLPProbe", "ACTIVATIONS"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
"""Hidden nonlinearities the network probes know."""


class MLPProbe(NetworkProbe):
    """Fully connected hidden layers, then one linear head per label group.

    Args:
        hidden_sizes: Units of each hidden layer, e.g. (64,) or (256, 256).
        activation: "relu", "tanh" or "gelu".
        dropout: Dropout probability after each hidden layer.
        standardize: Centre and scale each input feature (statistics of the training set).
        lr: Adam learning rate.
        max_epochs: Upper bound on passes over the training set.
        batch_size: Examples per step; None trains full-batch.
        weight_decay: L2 penalty handed to Adam.
        stop_accuracy: Stop once every head reaches this training accuracy (checked every
            epoch on up to 512 distinct rows, else every 5); None, or any continuous
            group, trains all `max_epochs`.
        seed: Seeds the initial weights, dropout and shuffling.

    Fitted attributes:
        network_, history_, n_epochs_ (see NetworkProbe); mean_, scale_ (input statistics).

    Example:
        >>> MLPProbe(hidden_sizes=(128,), seed=1).fit(acts, labels).score(acts_test, labels_test)
    """

    def __init__(
        self,
        *,
        hidden_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        dropout: float = 0.0,
        standardize: bool = True,
        lr: float = 1e-2,
        max_epochs: int = 300,
        batch_size: int | None = None,
        weight_decay: float = 0.0,
        stop_accuracy: float | None = 1.0,
        seed: int = 0,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.dropout = dropout
        self.standardize = standardize
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.stop_accuracy = stop_accuracy
        self.seed = seed

    def _check_params(self) -> None:
        super()._check_params()
        check_hidden(self.hidden_sizes, self.activation, self.dropout)

    def _fit_standardiser(self, x: Tensor) -> None:
        flat = x.reshape(x.shape[0], -1)
        if self.standardize:
            scale = flat.std(dim=0, unbiased=False)
            self.mean_, self.scale_ = flat.mean(dim=0), scale.where(scale > 1e-12, scale.new_ones(()))
        else:
            self.mean_, self.scale_ = flat.new_zeros(flat.shape[1]), flat.new_ones(flat.shape[1])

    def _prepare(self, x: Tensor) -> Tensor:
        return (x.reshape(x.shape[0], -1) - self.mean_.to(x.device)) / self.scale_.to(x.device)

    def _build_network(self, input_shape: tuple[int, ...], n_outputs: int) -> nn.Module:
        return fully_connected(input_shape[0], self.hidden_sizes, n_outputs, self.activation, self.dropout)


def fully_connected(
    n_features: int, hidden_sizes: Sequence[int], n_outputs: int, activation: str, dropout: float
) -> nn.Sequential:
    """Linear -> activation -> dropout for each hidden size, then a Linear to `n_outputs`."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_sizes:
        layers += [nn.Linear(width, int(size)), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(size)
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


def check_hidden(hidden_sizes: object, activation: object, dropout: object) -> None:
    """Validate the fully connected part shared by MLPProbe and ConvProbe (raise ConfigError)."""
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence) or any(
        isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden_sizes
    ):
        raise ConfigError(
            f"hidden_sizes must be a sequence of positive integers, got {hidden_sizes!r}; "
            "e.g. (30, 30), or () for no hidden layer."
        )
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {sorted(ACTIVATIONS)!r}, got {activation!r}.")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be a probability in [0, 1), got {dropout!r}; e.g. dropout=0.5.")
