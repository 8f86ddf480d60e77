"""Models written outside mechscope's own families, for tests that mechscope gets them right.

Every model is random-init (seeded) and tiny; nothing is downloaded. The torchvision-style
nets follow torchvision's layouts (a ReLU module called twice per block, `inplace=True`,
`out += identity`, a downsample branch) without depending on torchvision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: conv-bn-relu-conv-bn, `out += identity`, the same ReLU again."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class TinyResNet(nn.Module):
    """ResNet-18 layout at toy size: stem, two stages of BasicBlocks, GAP, fc. Input (batch, 1, 16, 16)."""

    def __init__(self, n_classes: int = 4, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, stride=2), BasicBlock(2 * width, 2 * width))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(2 * width, n_classes)
        for module in self.modules():  # non-trivial running statistics, as after training
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyVGG(nn.Module):
    """VGG layout: features of conv + in-place ReLU + max-pool, `.view` flatten, classifier. Input (batch, 1, 8, 8)."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 12, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Linear(12 * 2 * 2, 16), nn.ReLU(inplace=True), nn.Linear(16, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))


class TinyMobileNet(nn.Module):
    """Depthwise-separable blocks with ReLU6 and Hardswish, GAP head. Input (batch, 3, 8, 8)."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(inplace=True))
        self.block = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.Hardswish(),
            nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16), nn.ReLU6(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.block(self.stem(x))).flatten(1))


class DictNet(nn.Module):
    """conv -> ReLU -> GAP -> Linear that returns {"logits": ..., "features": ...}. Input (batch, 1, 8, 8)."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 5, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(5, n_classes)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.act(self.conv(x))
        return {"logits": self.fc(features.mean(dim=(2, 3))), "features": features}


class TokenGRU(nn.Module):
    """Token ids (batch, pos) -> embedding -> GRU -> last state -> Linear."""

    def __init__(self, vocab: int = 11, d_model: int = 8, n_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.embed = nn.Embedding(vocab, d_model)
        self.gru = nn.GRU(d_model, d_model, batch_first=True)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        states, _ = self.gru(self.embed(tokens))  # (batch, pos, d_model)
        return self.head(states[:, -1])


def tiny_gpt2() -> nn.Module:
    """A 2-layer GPT-2 from `transformers`, random init from a config (no download)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(5)
    config = GPT2Config(vocab_size=23, n_positions=16, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, use_cache=False)
    return GPT2LMHeadModel(config).eval()


def tiny_vit() -> nn.Module:
    """A 2-layer ViT classifier from `transformers` on (batch, 3, 8, 8) images: 4 patches + a class token."""
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(6)
    config = ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=32, num_labels=3, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
    return ViTForImageClassification(config).eval()


class TupleNet(nn.Module):
    """DictNet's layers returning a tuple (logits, aux) of two tensors: the explained output is ambiguous."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = nn.Conv2d(1, 5, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(5, n_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.act(self.conv(x))
        return self.fc(features.mean(dim=(2, 3))), features.flatten(1).norm(dim=1)


class SelectOutput(nn.Module):
    """Wrap a model so that it returns `pick(model(x))`: the wrapper every method needed before `output=`."""

    def __init__(self, model: nn.Module, pick: Callable[[Any], Tensor]) -> None:
        super().__init__()
        self.model = model
        self.pick = pick

    def forward(self, x: Tensor) -> Tensor:
        return self.pick(self.model(x))


def image_bundle(shape: tuple[int, ...], n_classes: int, *, n_train: int = 48, n_test: int = 24, seed: int = 0):
    """A synthetic classification DataBundle of random images (batch, *shape) with random labels."""
    return _bundle(lambda n, g: torch.rand(n, *shape, generator=g), n_classes, n_train, n_test, seed)


def token_bundle(vocab: int, positions: int, n_classes: int, *, n_train: int = 48, n_test: int = 24, seed: int = 0):
    """A synthetic classification DataBundle of random token ids (batch, positions)."""
    return _bundle(lambda n, g: torch.randint(0, vocab, (n, positions), generator=g), n_classes, n_train, n_test,
                   seed)


def _bundle(draw, n_classes: int, n_train: int, n_test: int, seed: int):
    from mechscope.data import DataBundle

    generator = torch.Generator().manual_seed(seed)
    x_train = draw(n_train, generator)
    y_train = torch.randint(0, n_classes, (n_train,), generator=generator)
    x_test = draw(n_test, generator)
    y_test = torch.randint(0, n_classes, (n_test,), generator=generator)
    return DataBundle(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, spec={"kind": "synthetic"},
                      task="classification", n_classes=n_classes)
