"""`python -m motion_core train` in a subprocess (plain or under `accelerate launch`), with a stand-in base model:
`motion_core.base.load_base` is replaced by one returning the tiny pixel-space UNet and the word encoder of
train_helpers (no VAE). Test-only knobs, from the environment:
  MC_TEST_SLOW=s        the text encoder sleeps s seconds per call (so a test can kill the run mid-way)
  MC_TEST_KILL_SAVE=n   the n-th torch.save writes half its bytes, then the process SIGKILLs itself
  MC_TEST_GRADS=file    process 0 saves the gradients AdamW sees at its first step there (safetensors)
"""

import io
import os
import signal
import sys
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import WordEncoder, record_first_grads, tiny_unet  # noqa: E402

torch.set_num_threads(1)


def load_base(path, *, dtype=torch.float32, device="cpu"):
    encoder = WordEncoder().to(device)
    slow = float(os.environ.get("MC_TEST_SLOW", "0"))

    def encode_prompt(captions):
        time.sleep(slow)
        return encoder(captions)
    unet = (tiny_unet() if dtype == torch.float32 else tiny_unet().to(dtype)).to(device)
    return types.SimpleNamespace(unet=unet, vae=None, text_encoder=encoder, tokenizer=None,
                                 family="sd15", encode_prompt=encode_prompt)


def kill_inside_save(n: int) -> None:
    real_save, calls = torch.save, [0]

    def save(obj, f, *args, **kwargs):
        calls[0] += 1
        if calls[0] < n:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        with open(f, "wb") as out:
            out.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
            out.flush()
            os.fsync(out.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save = save


if __name__ == "__main__":
    sys.modules["motion_core.base"] = types.SimpleNamespace(load_base=load_base)
    if os.environ.get("MC_TEST_KILL_SAVE"):
        kill_inside_save(int(os.environ["MC_TEST_KILL_SAVE"]))
    grads = {}
    if os.environ.get("MC_TEST_GRADS"):
        torch.optim.AdamW.step = record_first_grads(grads)
    from motion_core.cli import main
    code = main(sys.argv[1:])
    if code == 0:
        from accelerate.state import PartialState
        state = PartialState()
        if state.is_main_process:
            print(f"{state.distributed_type.value} processes={state.num_processes}")
    if grads and os.environ.get("RANK", "0") == "0":
        from safetensors.torch import save_file
        save_file(grads, os.environ["MC_TEST_GRADS"])
    sys.exit(code)
