"""Access tokens of the simulated host: who a client process is and which privileges it holds.

Each client process gets a token on first use, as a Windows process gets one from its logon
session. An elevated administrator (the default) holds the backup, restore, security and
symbolic-link privileges, all disabled until ``AdjustTokenPrivileges`` enables them; a standard
user (a host started with ``user="standard"``, or one process marked so) holds none of them, so
``AdjustTokenPrivileges`` answers ERROR_NOT_ALL_ASSIGNED, and opening with
``ACCESS_SYSTEM_SECURITY`` fails with ERROR_PRIVILEGE_NOT_HELD, as on Windows.

The privilege LUIDs are Windows' own well-known values, so the client can look names up
without asking the daemon (``LookupPrivilegeValueW``).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import os
import struct
import threading
from typing import Mapping

import attrs

__all__ = ["PRIVILEGES", "Token", "Tokens", "SID_ADMINISTRATORS", "SID_USERS", "SID_EVERYONE",
           "SID_AUTHENTICATED", "sid_bytes", "user_sid"]

#: Privilege name -> LUID (LowPart), as winnt.h numbers them.
PRIVILEGES: Mapping[str, int] = {
    "SeCreateTokenPrivilege": 2, "SeAssignPrimaryTokenPrivilege": 3, "SeLockMemoryPrivilege": 4,
    "SeIncreaseQuotaPrivilege": 5, "SeMachineAccountPrivilege": 6, "SeTcbPrivilege": 7,
    "SeSecurityPrivilege": 8, "SeTakeOwnershipPrivilege": 9, "SeLoadDriverPrivilege": 10,
    "SeSystemProfilePrivilege": 11, "SeSystemtimePrivilege": 12, "SeProfileSingleProcessPrivilege": 13,
    "SeIncreaseBasePriorityPrivilege": 14, "SeCreatePagefilePrivilege": 15, "SeCreatePermanentPrivilege": 16,
    "SeBackupPrivilege": 17, "SeRestorePrivilege": 18, "SeShutdownPrivilege": 19, "SeDebugPrivilege": 20,
    "SeAuditPrivilege": 21, "SeSystemEnvironmentPrivilege": 22, "SeChangeNotifyPrivilege": 23,
    "SeRemoteShutdownPrivilege": 24, "SeUndockPrivilege": 25, "SeSyncAgentPrivilege": 26,
    "SeEnableDelegationPrivilege": 27, "SeManageVolumePrivilege": 28, "SeImpersonatePrivilege": 29,
    "SeCreateGlobalPrivilege": 30, "SeTrustedCredManAccessPrivilege": 31, "SeRelabelPrivilege": 32,
    "SeIncreaseWorkingSetPrivilege": 33, "SeTimeZonePrivilege": 34, "SeCreateSymbolicLinkPrivilege": 35,
    "SeDelegateSessionUserImpersonatePrivilege": 36,
}
_NAMES = {v: k for k, v in PRIVILEGES.items()}

SE_PRIVILEGE_ENABLED_BY_DEFAULT = 0x1
SE_PRIVILEGE_ENABLED = 0x2
SE_PRIVILEGE_REMOVED = 0x4

# What an elevated administrator's token holds (and which are on from the start), and what a
# standard user's filtered token keeps.
_ADMIN = ("SeIncreaseQuotaPrivilege", "SeSecurityPrivilege", "SeTakeOwnershipPrivilege", "SeLoadDriverPrivilege",
          "SeSystemProfilePrivilege", "SeSystemtimePrivilege", "SeProfileSingleProcessPrivilege",
          "SeIncreaseBasePriorityPrivilege", "SeCreatePagefilePrivilege", "SeBackupPrivilege", "SeRestorePrivilege",
          "SeShutdownPrivilege", "SeDebugPrivilege", "SeSystemEnvironmentPrivilege", "SeChangeNotifyPrivilege",
          "SeRemoteShutdownPrivilege", "SeUndockPrivilege", "SeManageVolumePrivilege", "SeImpersonatePrivilege",
          "SeCreateGlobalPrivilege", "SeIncreaseWorkingSetPrivilege", "SeTimeZonePrivilege",
          "SeCreateSymbolicLinkPrivilege", "SeDelegateSessionUserImpersonatePrivilege")
_STANDARD = ("SeShutdownPrivilege", "SeChangeNotifyPrivilege", "SeUndockPrivilege", "SeIncreaseWorkingSetPrivilege",
             "SeTimeZonePrivilege")
_ON_BY_DEFAULT = ("SeChangeNotifyPrivilege", "SeImpersonatePrivilege", "SeCreateGlobalPrivilege")


def sid_bytes(authority: int, *subauthorities: int) -> bytes:
    return (struct.pack("<BB", 1, len(subauthorities)) + authority.to_bytes(6, "big")
            + b"".join(struct.pack("<I", s) for s in subauthorities))


SID_EVERYONE = sid_bytes(1, 0)
SID_AUTHENTICATED = sid_bytes(5, 11)
SID_ADMINISTRATORS = sid_bytes(5, 32, 544)
SID_USERS = sid_bytes(5, 32, 545)


def user_sid(uid: int) -> bytes:
    """The account SID of a simulated user: a machine domain SID with the uid as its RID."""
    return sid_bytes(5, 21, 3623811015, 3361044348, 30300820, 1000 + uid)


@attrs.define
class Token:
    """One process's primary token."""

    pid: int
    elevated: bool
    user: bytes
    #: name -> enabled, for every privilege the token holds
    privileges: dict[str, bool]

    @classmethod
    def new(cls, pid: int, elevated: bool) -> "Token":
        held = _ADMIN if elevated else _STANDARD
        return cls(pid, elevated, user_sid(os.getuid()), {name: name in _ON_BY_DEFAULT for name in held})

    def enabled(self, name: str) -> bool:
        return self.privileges.get(name, False)

    @property
    def groups(self) -> tuple[bytes, ...]:
        """SIDs an access check matches (a standard user's Administrators is deny-only)."""
        common = (self.user, SID_EVERYONE, SID_AUTHENTICATED, SID_USERS)
        return (*common, SID_ADMINISTRATORS) if self.elevated else common

    def adjust(self, disable_all: bool, changes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], bool]:
        """AdjustTokenPrivileges: returns (previous states of what changed, all assigned)."""
        previous: list[tuple[int, int]] = []
        if disable_all:
            for name, on in self.privileges.items():
                if on:
                    previous.append((PRIVILEGES[name], SE_PRIVILEGE_ENABLED))
                    self.privileges[name] = False
            return previous, True
        all_assigned = True
        for luid, attributes in changes:
            found = _NAMES.get(luid)
            if found is None or found not in self.privileges:
                all_assigned = False
                continue
            name = found
            before = self.privileges[name]
            if attributes & SE_PRIVILEGE_REMOVED:
                del self.privileges[name]
            else:
                self.privileges[name] = bool(attributes & SE_PRIVILEGE_ENABLED)
            if before != self.privileges.get(name, False):
                previous.append((luid, SE_PRIVILEGE_ENABLED if before else 0))
        return previous, all_assigned

    def privilege_list(self) -> list[tuple[int, int]]:
        """(LUID, attributes) of every privilege held, as TokenPrivileges lists them."""
        out = []
        for name, on in sorted(self.privileges.items(), key=lambda kv: PRIVILEGES[kv[0]]):
            attributes = (SE_PRIVILEGE_ENABLED if on else 0) | (
                SE_PRIVILEGE_ENABLED_BY_DEFAULT if name in _ON_BY_DEFAULT else 0)
            out.append((PRIVILEGES[name], attributes))
        return out


class Tokens:
    """The tokens of the host's client processes."""

    def __init__(self, elevated: bool = True) -> None:
        self.default_elevated = elevated
        self._tokens: dict[int, Token] = {}
        self._overrides: dict[int, bool] = {}
        self._foreign: set[int] = set()
        self._lock = threading.Lock()

    def of(self, pid: int) -> Token:
        with self._lock:
            token = self._tokens.get(pid)
            if token is None:
                elevated = self._overrides.get(pid, self.default_elevated)
                token = self._tokens[pid] = Token.new(pid, elevated)
            return token

    def set_user(self, pid: int, elevated: bool) -> None:
        """Run ``pid`` as an elevated administrator or a standard user (a test control)."""
        with self._lock:
            self._overrides[pid] = elevated
            self._tokens.pop(pid, None)

    def mark_foreign(self, pid: int, foreign: bool = True) -> None:
        """Make ``pid`` look like another account's protected process (OpenProcess is refused)."""
        with self._lock:
            if foreign:
                self._foreign.add(pid)
            else:
                self._foreign.discard(pid)

    def is_foreign(self, pid: int) -> bool:
        with self._lock:
            return pid in self._foreign

    def forget(self, pid: int) -> None:
        with self._lock:
            self._tokens.pop(pid, None)

    def elevated(self, pid: int) -> bool:
        return self.of(pid).elevated
