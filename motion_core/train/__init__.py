"""Training motion modules and MotionLoRAs (issue 5): `train(config, unet, motion_module, encode_text, dataset, out)`.

Needs the `train` extra (accelerate, opencv-python-headless, tqdm), imported only when training runs, so importing
motion_core (or the ComfyUI pack) stays light.
"""

from .checkpoint import RunFiles, read_resume
from .config import TrainConfig, alphas_cumprod, lr_at
from .data import ClipDataset, open_dataset, scan
from .lora import add_lora, lora_state_dict, parametrize_loras, remove_lora, save_lora, unparametrize_loras
from .loop import train
from .model import new_motion_module, trainable_copy, vae_encoder

__all__ = ["ClipDataset", "RunFiles", "TrainConfig", "add_lora", "alphas_cumprod", "lora_state_dict", "lr_at",
           "new_motion_module", "open_dataset", "parametrize_loras", "read_resume", "remove_lora", "save_lora", "scan",
           "train", "trainable_copy", "unparametrize_loras", "vae_encoder"]
