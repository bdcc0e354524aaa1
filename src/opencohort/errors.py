"""One hierarchy of errors; each docstring says how to fix the problem."""

from __future__ import annotations


class OpencohortError(Exception):
    """Base of every error opencohort raises on purpose."""


class InputError(OpencohortError):
    """A file or value given to opencohort is malformed; fix the named file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        value: object = None,
    ) -> None:
        self.file, self.line, self.field, self.value = file, line, field, value
        where = ", ".join(
            part
            for part in (
                file,
                f"line {line}" if line is not None else None,
                f"field {field}" if field else None,
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(OpencohortError):
    """A setting or option is invalid; correct it in opencohort.toml or on the command line."""


class RuleError(OpencohortError):
    """A rule or pipeline is mis-declared (cycle, missing dependency); fix the rule declaration."""


class ReleaseError(OpencohortError):
    """A release is incomplete or fails its checks; rebuild it or inspect its manifest."""


class PermissionDenied(OpencohortError):
    """The caller lacks the role or passport needed; obtain it or use another account."""


class NotFound(OpencohortError):
    """A named object does not exist; check the name or create it first."""
