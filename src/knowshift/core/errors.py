"""Every exception knowshift raises on purpose, in one place. Each is named for what went wrong,
so callers and the CLI can report it in one line (no traceback) and tests can ask for it."""


class KnowshiftError(Exception):
    """Base class: a problem the user can fix, reported without a traceback by the CLI."""


class ParameterError(KnowshiftError):
    """A parameter, profile or override has an unknown name, the wrong type or a bad value."""


class FactFileError(KnowshiftError):
    """A fact source (EntityQuestions folder, fact table) is missing or malformed."""


class DataFileError(FactFileError):
    """An audit DATA file is missing, of an unknown format, or has bad rows."""


class UnknownRelationError(KnowshiftError):
    """A relation id was asked for that the fact set does not have."""


class ModelNotFoundError(KnowshiftError):
    """A model path or hub id could not be found or loaded."""


class DeviceUnavailableError(KnowshiftError):
    """A device was asked for (e.g. ``cuda``) that this machine does not have."""


class MissingStageOutputError(KnowshiftError):
    """A stage needs the output of an earlier stage that has not been run (or was deleted);
    the message names the stage to run."""


class StageFailedError(KnowshiftError):
    """A stage notebook raised, or finished without writing its declared products."""


class BookBuildError(KnowshiftError):
    """The book did not build; the message lists the build's warnings and errors."""


class BookCheckError(KnowshiftError):
    """The browser check of a built book could not run (no Chromium, no book)."""
