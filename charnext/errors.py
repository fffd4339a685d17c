"""Errors a user can act on. The CLI prints their message on one line and exits non-zero."""

from __future__ import annotations


class CharnextError(Exception):
    """Base class for every error charnext reports to a user."""

    exit_code = 1


class TextError(CharnextError):
    """The training or evaluation text is unusable (empty, too short, not UTF-8, missing)."""


class UnknownCharactersError(CharnextError):
    """A text holds characters the vocabulary does not know."""

    def __init__(self, message: str, unknown: list[str]):
        super().__init__(message)
        self.unknown = unknown


class CheckpointError(CharnextError):
    """A checkpoint is missing, corrupt, hostile or from an unsupported version."""


class ConfigError(CharnextError):
    """An option or a combination of options makes no sense."""


class OutputExists(ConfigError):
    """The file to write exists and is not charnext's of that kind: nothing was written, and
    `force` (--force) would replace it."""

    def __init__(self, shown: str, option: str = "--out", what: str = "not a charnext file"):
        self.shown = shown  # the file, as a person reads its path
        named = f"{option} {shown}" if option else shown  # "--out x.txt"; a file beside it by name alone
        # what: "not a charnext report", or "a charnext export, not checkpoint"
        super().__init__(f"{named} exists and is {what}; not replacing it (--force replaces it)")


class UsageError(ConfigError):
    """The command was asked for nothing it can do (a usage error: exit 2, as Typer's own)."""

    exit_code = 2


class InvalidValue(UsageError):
    """One value a request cannot take: a usage error (exit 2), raised before anything loads.

    `param` is the API's name for the value (a request's field, a keyword); the command line
    names its option instead (`--alternatives must be at least 1, not 0`), and the server hands
    it back as the error's `param`.
    """

    def __init__(self, param: str, problem: str, *others: str):
        self.param = param  # the API's name: "alternatives", "num_samples", "max_time"
        self.problem = problem  # what is wrong, after the name: "must be at least 1, not 0"
        self.others = others  # other values the problem names, as {name} in it ("{init_from}")
        super().__init__(self.naming())

    def naming(self, name_of=lambda param: param) -> str:
        """The message with each value called by `name_of` (an option's flag, a JSON field)."""
        problem = self.problem.format(**{o: name_of(o) for o in self.others}) if self.others else self.problem
        return f"{name_of(self.param)} {problem}"


class DeviceError(CharnextError):
    """The requested device is not available on this machine."""


class MissingDependencyError(CharnextError):
    """An optional package that a feature needs is not installed (e.g. matplotlib for --plot)."""


class TrainingDiverged(CharnextError):
    """The training loss exploded; the checkpoints on disk are the last good ones."""

    exit_code = 3


class PreparedDataError(CharnextError):
    """A prepared data folder is missing, incomplete, corrupt or from an unsupported version."""


class DistributedError(CharnextError):
    """Another process of a multi-process run failed, vanished or stopped answering."""


class TensorFileError(ValueError):
    """The bytes are not a well-formed safetensors file (the message says why). Internal: the
    checkpoint module turns it into a CheckpointError naming the file."""
