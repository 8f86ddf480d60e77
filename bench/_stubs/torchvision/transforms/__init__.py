"""Stand-in for torchvision.transforms (pytorch-grad-cam's image preprocessing utilities only)."""


class _Unavailable:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError(f"bench stand-in: torchvision.transforms.{type(self).__name__} is not available")


class Compose(_Unavailable):
    pass


class Normalize(_Unavailable):
    pass


class ToTensor(_Unavailable):
    pass
