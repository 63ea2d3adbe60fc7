"""A real ComfyUI server for the workflow tests: started on loopback from COMFYUI_PATH with a base directory made
by comfy_workspace.py (the pack linked into its custom_nodes), driven over HTTP, stopped at the end."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, comfy: Path, base: Path, python: str, args: tuple[str, ...] = ()):
        """args: ComfyUI flags beyond --cpu (precision flags such as --fp8_e4m3fn-unet)."""
        self.comfy, self.base, self.python, self.args = Path(comfy), Path(base), python, tuple(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "server.log"
        self.proc = None

    def start(self, timeout: float = 180) -> "ComfyServer":
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--base-directory", str(self.base), *self.args], cwd=self.comfy, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log()[-3000:]}")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.load(r)

    def post(self, path: str, body: dict):
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"POST {path}: HTTP {e.code}: {e.read().decode()[:2000]}") from None

    def run(self, workflow: dict, timeout: float = 1200) -> dict:
        """Queue an API workflow and wait for it; returns its history entry."""
        prompt_id = self.post("/prompt", {"prompt": workflow, "client_id": str(uuid.uuid4())})["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                return history[prompt_id]
            time.sleep(1)
        raise TimeoutError(f"workflow {prompt_id} did not finish in {timeout} s")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
