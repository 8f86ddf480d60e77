"""Fixtures for the report tests: small untrained models with hostile names, and reports built from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from mechscope.data import DataBundle, function_data, modular_data
from mechscope.models import ModularMLP, ModularMLPConfig, TinyReLU, TinyReLUConfig, build_seeded
from mechscope.report import ReportConfig, build_index, build_report

EVIL_LAYER = "<script>alert(1)</script>"
EVIL_LABELS = ('say "cheese"', "R&D <b>", "../../it's & done")
EVIL_TITLE = "<img src=x onerror=alert(2)>"

TINY = ReportConfig(
    k=3,
    max_units=8,
    featurevis_steps=3,
    featurevis_restarts=1,
    attribution_images=3,
    faithfulness_images=8,
    sanity_images=4,
    probe_seeds=1,
    probe_inputs=60,
    circuit_draws=2,
    ablation_inputs=40,
    article_probe=False,
)
"""The smallest sizes that still run every analysis: the tests are about pages, not numbers."""


class EvilNet(nn.Module):
    """conv -> ReLU named like a script tag -> conv -> ReLU -> GAP -> Linear(3), seeded."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.add_module(EVIL_LAYER, nn.ReLU())
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        hidden = getattr(self, EVIL_LAYER)(self.conv1(x))
        return self.fc(self.pool(self.relu2(self.conv2(hidden))).flatten(1))


def evil_data(n_train: int = 48, n_test: int = 36) -> DataBundle:
    """Random 8x8 images in [0, 1] with three classes whose names need escaping."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(n_train + n_test, 1, 8, 8, generator=generator)
    y = torch.arange(n_train + n_test) % 3
    return DataBundle(x[:n_train], y[:n_train], x[n_train:], y[n_train:], spec={"kind": "custom"},
                      task="classification", n_classes=3, class_names=EVIL_LABELS)


@dataclass(frozen=True)
class BuiltSite:
    """What the `site` fixture built, and what it saw while building."""

    root: Path  # the tour-like folder
    outside: frozenset[Path]  # files that appeared beside `root` while building (must be none)
    model: EvilNet  # the conv model, after its report was built
    state_before: dict[str, Tensor]  # its weights before


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltSite:
    """A tour-like folder: three reports (conv classifier, modular MLP, function learner) and an index."""
    root = tmp_path_factory.mktemp("site")
    before = set(root.parent.rglob("*"))
    home = ("tour", root / "index.html")
    model = EvilNet().eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    conv = build_report(model, root / "evil" / "report", data=evil_data(), config=TINY, title=EVIL_TITLE, home=home,
                        progress=False)
    mod = modular_data(2, n_train=64, n_test=64)
    mlp = build_seeded(ModularMLP, ModularMLPConfig(modulus=2, n_layers=4, hidden=3), 0).eval()
    build_report(mlp, root / "mod2" / "report", data=mod, config=TINY, title="modular mlp", home=home, progress=False)
    fn = function_data("sum", n_train=64, n_test=64)
    relu = build_seeded(TinyReLU, TinyReLUConfig(), 0).eval()
    build_report(relu, root / "sum" / "report", data=fn, config=TINY, title="tiny relu", home=home, progress=False)
    build_index(root, [conv.parent, root / "mod2" / "report", root / "sum" / "report"], title="test tour")
    outside = frozenset(p for p in set(root.parent.rglob("*")) - before if not p.is_relative_to(root))
    return BuiltSite(root, outside, model, state)


@pytest.fixture(scope="session")
def site(built: BuiltSite) -> Path:
    """The folder of the built site."""
    return built.root
