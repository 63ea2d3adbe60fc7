"""One small adapter per host UNet. Each says where the original AnimateDiff inserts its motion modules, in that host's
own module tree, and which GroupNorms v1 needs across frames. Duck-typed: no host library is imported here."""

from ..errors import ConfigError
from .comfy import ComfyHost
from .diffusers import DiffusersHost

HOSTS = (DiffusersHost, ComfyHost)


def host_adapter(unet):
    """The adapter class that knows `unet`'s layout; a clear error for anything else."""
    for host in HOSTS:
        if host.accepts(unet):
            return host
    raise ConfigError(f"{type(unet).__name__} is not a UNet motion_core can patch: expected a diffusers "
                      "UNet2DConditionModel or a ComfyUI openaimodel.UNetModel")
