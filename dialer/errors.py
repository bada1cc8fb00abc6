"""The dialer's error hierarchy.

    DialerError
    ├── UserError                 a mistake the operator can fix; shown without a traceback
    │   ├── SettingsError         a missing or invalid setting (environment / .env)
    │   ├── ConfigError           an invalid campaign config file
    │   ├── IngestError           a campaign file that cannot be ingested at all
    │   ├── NotFoundError         an id that does not exist
    │   └── StateError            an operation the campaign's state does not allow
    └── DialError                 a dial attempt that failed; classified by ``dialer.policy``

Whether a failure is retryable, and how, is decided in one place: ``dialer.policy``.
"""

from __future__ import annotations


class DialerError(Exception):
    """Base class of every error the dialer raises on purpose."""


class UserError(DialerError):
    """A mistake in input the operator controls. The CLI prints it and exits non-zero."""

    exit_code = 2


class SettingsError(UserError):
    """A setting is missing or invalid."""


class ConfigError(UserError):
    """A campaign config file is invalid; the message names each bad field."""


class IngestError(UserError):
    """A campaign file cannot be ingested at all (missing, empty, binary, too large...)."""


class NotFoundError(UserError):
    """A campaign or other id that does not exist."""

    exit_code = 3


class StateError(UserError):
    """An operation that the campaign's current state does not allow."""


class DialError(DialerError):
    """A dial attempt failed; see ``dialer.policy`` for what happens next."""
