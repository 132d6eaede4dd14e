"""The project's error classes. Each message names the file, key or argument and what was expected."""


class CheckpointError(ValueError):
    """A file that cannot be read as a checkpoint; the message names the file and what was expected."""


class UnsafeGlobalError(CheckpointError):
    """The pickle names a global (function or class) that is not on the allow-list."""


class ConversionError(CheckpointError):
    """A checkpoint whose keys, shapes or constructor arguments do not describe the model it claims to be."""
