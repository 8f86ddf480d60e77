"""Stand-in for torchvision.ops (pytorch-grad-cam's detection targets only)."""


def box_iou(*args: object, **kwargs: object) -> None:
    raise NotImplementedError("bench stand-in: torchvision.ops.box_iou is not available")
