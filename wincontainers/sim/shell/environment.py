"""Environment variables as Windows keeps them: names compare without case, keep their spelling."""

from __future__ import annotations

import os
from typing import Iterator, Mapping, Optional

__all__ = ["Environment", "windows_environment"]


class Environment:
    """A process's variables; ``copy()`` gives a child (``setlocal``, a pipe side, ``cmd /c``)."""

    def __init__(self, values: Optional[Mapping[str, str]] = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name, value in (values or {}).items():
            self.set(name, value)

    def get(self, name: str) -> Optional[str]:
        item = self._items.get(name.upper())
        return item[1] if item else None

    def set(self, name: str, value: Optional[str]) -> None:
        """Set ``name``; ``None`` or an empty value removes it, as ``set NAME=`` does."""
        key = name.upper()
        if value is None or value == "":
            self._items.pop(key, None)
        else:
            old = self._items.get(key)
            self._items[key] = (old[0] if old else name, value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.upper() in self._items

    def items(self) -> Iterator[tuple[str, str]]:
        """Name and value pairs, sorted as ``set`` lists them (by name, without case)."""
        for key in sorted(self._items):
            yield self._items[key]

    def copy(self) -> "Environment":
        env = Environment()
        env._items = dict(self._items)
        return env

    def as_dict(self) -> dict[str, str]:
        return dict(self.items())


def windows_environment(hostname: str, user: str = "") -> dict[str, str]:
    """The variables a process in a Windows Server container starts with (``user`` as HCS
    names it, ``ContainerAdministrator`` by default)."""
    account = user.rsplit("\\", 1)[-1] or "ContainerAdministrator"
    profile = f"C:\\Users\\{account}"
    return {
        "ALLUSERSPROFILE": "C:\\ProgramData", "APPDATA": profile + "\\AppData\\Roaming",
        "CommonProgramFiles": "C:\\Program Files\\Common Files", "COMPUTERNAME": hostname.upper(),
        "ComSpec": "C:\\Windows\\system32\\cmd.exe", "HOMEDRIVE": "C:", "HOMEPATH": profile[2:],
        "LOCALAPPDATA": profile + "\\AppData\\Local", "NUMBER_OF_PROCESSORS": str(os.cpu_count() or 1),
        "OS": "Windows_NT",
        "Path": "C:\\Windows\\system32;C:\\Windows;C:\\Windows\\System32\\Wbem;"
                "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\;" + profile + "\\AppData\\Local\\Microsoft\\WindowsApps",
        "PATHEXT": ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC",
        "PROCESSOR_ARCHITECTURE": "AMD64", "ProgramData": "C:\\ProgramData",
        "ProgramFiles": "C:\\Program Files", "ProgramFiles(x86)": "C:\\Program Files (x86)",
        "PUBLIC": "C:\\Users\\Public", "SystemDrive": "C:", "SystemRoot": "C:\\Windows",
        "TEMP": profile + "\\AppData\\Local\\Temp", "TMP": profile + "\\AppData\\Local\\Temp",
        "USERDOMAIN": "User Manager", "USERNAME": account, "USERPROFILE": profile, "windir": "C:\\Windows",
    }
