"""The one exception tree of Facegate. Every error a user can cause says what to do."""


class FacegateError(Exception):
    """Root of every error Facegate raises on purpose."""


class ConfigError(FacegateError):
    """A setting or configuration file is wrong."""


class ModelError(FacegateError):
    """A model file is missing, corrupt, or does not have the expected signature."""


class ModelFetchError(ModelError):
    """The default models could not be downloaded or verified."""


class ImageError(FacegateError):
    """An input image cannot be read: missing, empty, corrupt, too small or too large."""
