"""Typed errors of the LLM node; all are AnoleErrors, so the CLI prints them as one line."""
from host.spec.errors import AnoleError, InputError


class ModelFormatError(AnoleError):
    """A checkpoint folder is missing files, has an unknown architecture or mismatched tensors."""


class RequestError(InputError):
    """A generation request the engine cannot serve (bad ids, too long, bad sampling parameters)."""
