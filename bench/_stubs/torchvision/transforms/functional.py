"""Stand-in for torchvision.transforms.functional (pytorch-grad-cam's SESS method only)."""


def resize(*args: object, **kwargs: object) -> None:
    raise NotImplementedError("bench stand-in: torchvision.transforms.functional.resize is not available")
