"""One root error type; every message is a single line that names what and where."""


class EdmError(Exception):
    """Root of every error this project raises on purpose; ``str()`` is shown to the user."""


class ConfigError(EdmError):
    """A setting is missing or malformed."""


class InputError(EdmError):
    """A file, field or argument the user gave cannot be used."""


class ConflictingRequest(InputError):
    """The request reuses a key (an Idempotency-Key) that an earlier, different request used."""


class CsvImportError(InputError):
    """A recipient CSV cannot be read at all; nothing was imported."""


class TemplateError(InputError):
    """A template cannot be loaded, compiled or rendered for every recipient."""


class NotFound(EdmError):
    """A campaign, list or template named by the user does not exist."""


class StateError(EdmError):
    """The action is not allowed in the campaign's current state."""


class ServiceUnavailable(EdmError):
    """Redis, the database or the SMTP relay cannot be reached."""
