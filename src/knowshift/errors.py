"""One exception type per kind of bad input, so callers and the CLI can report it in one line."""


class KnowshiftError(Exception):
    """Base class: a problem the user can fix, reported without a traceback by the CLI."""


class FactFileError(KnowshiftError):
    """A fact source (EntityQuestions folder, fact table) is missing or malformed."""


class UnknownRelationError(KnowshiftError):
    """A relation id was asked for that the fact set does not have."""


class ModelNotFoundError(KnowshiftError):
    """A model path or hub id could not be found or loaded."""


class ParameterError(KnowshiftError):
    """A stage or profile parameter has the wrong type or value."""
