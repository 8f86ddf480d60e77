"""Recipes: the seed articles reproduced with the library, the built-in trained models, and the tour.

Each recipe composes the layers below it (data, models, analyses, plots, report) and
nothing below imports it.

- `builtin`: train the built-in models of the seed articles and save their checkpoints
  (`mechscope train ...`).
- `grokking`: train a GrokkingMLP on (a + b) mod p with its progress measures
  (`mechscope train grokking-mlp`).
- `seed000_probes`: seed 000's convolutional-probe article end to end.
- `sweep`: train and probe the modular MLP over a grid of moduli and seeds, one task per grid
  point on an engine (`mechscope sweep modular-mlp`).
- `tour`: train every built-in model, analyse it and write a report of each (`mechscope tour`).
"""

from mechscope.recipes.builtin import TrainedModel, fit_and_save, train_digit_cnn, train_modular_mlp, train_tiny_relu
from mechscope.recipes.grokking import train_grokking_mlp
from mechscope.recipes.seed000_probes import article_hidden, reproduce_article, save_probe_figures
from mechscope.recipes.sweep import SweepGrid, SweepResult, sweep_modular
from mechscope.recipes.tour import run_tour

__all__ = [
    "SweepGrid",
    "SweepResult",
    "TrainedModel",
    "article_hidden",
    "fit_and_save",
    "reproduce_article",
    "run_tour",
    "save_probe_figures",
    "sweep_modular",
    "train_digit_cnn",
    "train_grokking_mlp",
    "train_modular_mlp",
    "train_tiny_relu",
]
