"""Typed errors for caller input; the CLI turns them into one-line messages."""


class AnoleError(Exception):
    """Base class of errors caused by input the caller can fix."""


class IndexFormatError(AnoleError):
    """An index directory is missing, corrupt, truncated or from another format version."""


class InputError(AnoleError, ValueError):
    """Bad vectors, parameters or request sizes."""


class BoardError(AnoleError):
    """An FPGA board, its runtime (pynq, XRT) or its bitstream is missing, or the kernel misbehaved."""
