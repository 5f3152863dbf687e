"""Errors ganzoo raises on bad input: each carries one line a user can act on."""


class GanzooError(Exception):
    """Base class: the message is one line that says what is wrong and what to do."""


class ConfigError(GanzooError):
    """A configuration value or choice is invalid (the message lists the valid ones)."""


class DataError(GanzooError):
    """A dataset is missing, incomplete or corrupt (the message names the expected layout)."""


class FieldMismatchError(ConfigError):
    """A model needs a Batch field that the chosen dataset does not provide."""


class WeightsError(GanzooError):
    """A pretrained weight file is missing or fails its checksum."""
