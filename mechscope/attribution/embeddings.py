"""Token-id models: attribute in embedding space and give one score per token.

Gradients do not reach integer token ids. For a model whose input is token ids (batch, pos)
and that embeds them with an `nn.Embedding` (or a Hugging Face input embedding such as
GPT-2's `transformer.wte`), the gradient methods work on that embedding layer's output
instead: the forward pass runs with the output replaced (through `mechscope.capture.patch`)
by embeddings the method chooses (the actual ones for gradient x input, points on the
straight path from a baseline for integrated gradients), and the scores (batch, pos, d_model)
are summed over the embedding dimension into one score per token (batch, pos), as Captum's
`LayerIntegratedGradients` on an embedding layer does. Completeness then holds in embedding
space: integrated gradients summed over the tokens approach f(x) - f(baseline embeddings),
with everything after the embedding layer (position embeddings included) unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechscope.attribution.targets import Target, target_scores
from mechscope.capture import capture, get_layer, patch
from mechscope.capture.outputs import OutputSpec
from mechscope.capture.record import model_device
from mechscope.errors import DataError, UnsupportedModelError

__all__ = [
    "check_tokens",
    "embed_tokens",
    "embedding_gradient",
    "find_token_embedding",
    "is_token_ids",
    "token_embedding",
]


def is_token_ids(inputs: object) -> bool:
    """True for an integer tensor (token ids), False for anything else (images are float)."""
    return isinstance(inputs, Tensor) and not (
        inputs.is_floating_point() or inputs.is_complex() or inputs.dtype == torch.bool
    )


def token_embedding(model: nn.Module, name: str | None = None) -> str:
    """The dotted name of the layer that embeds `model`'s token ids.

    Args:
        model: A model taking token ids.
        name: The embedding layer, if known; None takes `model.get_input_embeddings()` (Hugging
            Face models), else the first `nn.Embedding` in registration order.

    Raises:
        UnsupportedModelError: The model has no embedding layer to attribute through.
        LayerNameError: `name` is not a layer of `model`.
    """
    found = find_token_embedding(model, name)
    if found is None:
        raise UnsupportedModelError(
            f"{type(model).__name__} takes token ids but has no nn.Embedding (nor get_input_embeddings()); "
            "gradient methods attribute through the embedding layer's output, so pass embedding='<layer name>'."
        )
    return found


def find_token_embedding(model: nn.Module, name: str | None = None) -> str | None:
    """`token_embedding`, or None when the model has no embedding layer (`name` is still validated)."""
    if name is not None:
        get_layer(model, name)
        return name
    found: object = None
    get = getattr(model, "get_input_embeddings", None)
    if callable(get):
        try:
            found = get()
        except (NotImplementedError, AttributeError):  # a Hugging Face model without one
            found = None
    for layer, module in model.named_modules():
        if layer and (module is found if isinstance(found, nn.Module) else isinstance(module, nn.Embedding)):
            return layer
    return None


def check_tokens(inputs: Tensor, model: nn.Module, embedding: str) -> Tensor:
    """Validate a non-empty batch of token ids (batch, pos) and move it to the model's device.

    Raises:
        DataError: `inputs` is empty, has no batch axis, or holds an id outside the
            embedding's vocabulary.
    """
    if inputs.dim() < 1 or inputs.shape[0] == 0 or inputs.numel() == 0:
        raise DataError(f"token ids must be a non-empty batch (batch, pos); got {inputs.dtype} {tuple(inputs.shape)}.")
    module = get_layer(model, embedding)
    low, high = int(inputs.min()), int(inputs.max())
    vocab = module.num_embeddings if isinstance(module, nn.Embedding) else None
    if low < 0 or (vocab is not None and high >= vocab):
        raise DataError(
            f"token ids must lie in 0..{'vocab - 1' if vocab is None else vocab - 1} of embedding {embedding!r}; "
            f"got ids from {low} to {high}."
        )
    return inputs.to(model_device(model))


def embed_tokens(model: nn.Module, embedding: str, tokens: Tensor) -> Tensor:
    """The embedding layer's output for `tokens` in a forward pass of the model: (batch, pos, d_model)."""
    with torch.no_grad(), capture(model, [embedding], check_finite=False) as store:
        model(tokens)
    return store.act(embedding)


def embedding_gradient(
    model: nn.Module, embedding: str, tokens: Tensor, embeds: Tensor, target: Target, *, output: OutputSpec = None
) -> tuple[Tensor, Tensor]:
    """Gradient of each row's target score with respect to the embeddings, with the layer's output set to `embeds`.

    Args:
        model: A model taking token ids.
        embedding: Its embedding layer.
        tokens: Token ids (batch, pos).
        embeds: Replacement for the embedding layer's output, shaped like it (batch, pos, d_model).
        target: Target per row (see `mechscope.attribution.targets.Target`).
        output: Which model output holds the logits (see `mechscope.capture.select_output`).

    Returns:
        (gradient shaped like `embeds`, target class indices (batch,)).

    Raises:
        UnsupportedModelError: The embedding layer ran other than once, its output has another
            shape than `embeds`, or the explained output does not depend on it.
    """
    leaf = embeds.detach().requires_grad_(True)
    calls: list[tuple[int, ...]] = []

    def replace(out: Tensor, *, hook: object) -> Tensor:
        calls.append(tuple(out.shape))
        return leaf if out.shape == leaf.shape else out

    with torch.enable_grad(), patch(model, {embedding: replace}):
        result = model(tokens)
        if len(calls) != 1 or calls[0] != tuple(leaf.shape):
            raise UnsupportedModelError(
                f"Embedding layer {embedding!r} ran {len(calls)} times with outputs {calls} in one forward pass; "
                f"attribution replaces its one output of shape {tuple(leaf.shape)}. Pass embedding= naming the layer "
                "that embeds the token ids once."
            )
        scores, index = target_scores(result, target, output=output)
        (grad,) = torch.autograd.grad(scores.sum(), leaf, allow_unused=True)
    if grad is None:
        raise UnsupportedModelError(
            f"The explained output does not depend on embedding layer {embedding!r}; pass embedding= naming the layer "
            "that embeds the token ids."
        )
    return grad, index
