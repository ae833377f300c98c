"""What each account may do: ``viewer`` reads, ``editor`` also changes lists, templates and
campaigns and sends (tests included), ``admin`` also manages accounts. Each role includes the
ones below it."""

from __future__ import annotations

from enum import StrEnum

from campaigns.core.errors import InputError


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


def role_allows(role: Role, needed: Role) -> bool:
    return _RANK[role] >= _RANK[needed]


def checked_role(value: str, *, field: str = "--role") -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        choices = ", ".join(role.value for role in reversed(Role))
        raise InputError(f"{field}: expected one of {choices}, got {value[:40]!r}") from None
