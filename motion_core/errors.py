"""Typed errors. Each one names the value at fault and the fix; the CLI turns them into exit code 2."""


class MotionCoreError(Exception):
    """Base of every error motion_core raises on purpose (bad input, not a bug)."""


class CheckpointNotFoundError(MotionCoreError, FileNotFoundError):
    """The path does not exist, or a folder lacks the files a format needs."""


class CorruptCheckpointError(MotionCoreError):
    """The file exists but cannot be read: truncated, not a checkpoint, or damaged."""


class UnsafeCheckpointError(MotionCoreError):
    """A pickle-based file asked to run code (or build an object) while loading; nothing was run."""


class NotAMotionModuleError(MotionCoreError):
    """The file is a valid checkpoint of another kind: an image model, an image LoRA, a MotionLoRA, ..."""


class UnsupportedMethodError(MotionCoreError):
    """A checkpoint of a related method (PIA, AnimateLCM-I2V, CameraCtrl) that is recognised but not run here."""


class UnknownLayoutError(MotionCoreError):
    """The keys match no known motion-module layout."""


class ConfigError(MotionCoreError, ValueError):
    """An impossible or inconsistent configuration (channels, heads, lengths)."""


class FrameCountError(MotionCoreError, ValueError):
    """More frames than the module's position encoding holds."""


class LoRAMismatchError(MotionCoreError):
    """A MotionLoRA does not fit the motion module it is merged into."""


class DataError(MotionCoreError, ValueError):
    """A training data set that cannot be used: a missing folder, no readable clips, clips too small."""


class MissingDependencyError(MotionCoreError, ImportError):
    """An optional dependency a feature needs is not installed; the message names the pip command."""
