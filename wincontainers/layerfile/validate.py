"""``check_layer``: what in a layer tar will break an import, or a host, named file by file.

Each pitfall of layer-format.md section 4, and the import breakers seen with Cygwin and MSYS
content (WSL/LX symlinks and other reparse points HCS cannot import, hard links that cross
layers, ``$Recycle.Bin`` entries, names that do not convert), is a rule with an id. Every
finding has the path, the rule, a severity (``error`` refuses the import; ``warning`` does not)
and advice. The check streams the tar; nothing is extracted. Rules reject, they never
sanitize (silently rewriting names would change the layer and its diff ID).
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import attrs

from wincontainers.display import RichDisplay, Shown, badge, short_id
from wincontainers.layerfile.attributes import FileAttributes
from wincontainers.layerfile.codec import LayerFormatError, LayerReader, Progress, Source
from wincontainers.layerfile.entry import WHITEOUT_PREFIX, EntryKind, LayerEntry
from wincontainers.layerfile.names import namespace_problems, shown, validate_name
from wincontainers.layerfile.reparse import (
    IO_REPARSE_TAG_MOUNT_POINT,
    IO_REPARSE_TAG_SYMLINK,
    OTHER_TAGS,
    reparse_tag,
)
from wincontainers.layerfile.security import SecurityDescriptor, SecurityError
from wincontainers.layerfile.tarstream import DEFAULT_LIMITS, TarFormatError, TarLimits

__all__ = ["Finding", "Report", "check_layer", "RULES", "LayerChecker", "validate_name", "REPARSE_EXTENSION",
           "READ_ERRORS"]

ERROR = "error"
WARNING = "warning"

#: rule id -> (severity, advice)
RULES: Mapping[str, tuple[str, str]] = {
    "malformed-tar": (ERROR, "the file is not a readable tar (or breaks a safety limit); re-create it with a tar writer"),
    "bad-metadata": (ERROR, "a Windows metadata record does not decode; re-export the layer"),
    "absolute-path": (ERROR, "tar names must be relative (Files/...); re-create the tar from inside the layer folder"),
    "drive-path": (ERROR, "a drive letter in a tar name escapes the layer; use paths relative to Files/"),
    "unc-path": (ERROR, "UNC and device paths (\\\\server\\share, \\\\?\\, \\??\\, \\\\.\\) cannot be in a layer"),
    "backslash": (ERROR, "use '/' between path components; '\\' becomes a separator on Windows and can escape"),
    "path-traversal": (ERROR, "'..' components escape the layer; remove the entry or fix its name"),
    "dot-component": (ERROR, "'.' components are not allowed in layer paths; write the path without them"),
    "outside-namespace": (ERROR, "a Windows layer holds only Files/, Hives/ and UtilityVM/Files/; move the entry under Files/"),
    "namespace-case": (ERROR, "spell the top folders exactly Files, Hives and UtilityVM (NTFS ignores case, HCS does not)"),
    "utilityvm-layout": (ERROR, "under UtilityVM/ only UtilityVM/Files/... is allowed"),
    "hives-layout": (WARNING, "Hives/ should hold only registry delta files (System_Delta, Software_Delta, ...)"),
    "reserved-name": (ERROR, "CON, PRN, AUX, NUL, COM1-9, LPT1-9, CONIN$, CONOUT$ are device names on Windows; rename the file"),
    "trailing-dot-space": (ERROR, "Windows strips a trailing '.' or ' ' from names, so the file would be created under another name; rename it"),
    "invalid-character": (ERROR, "Windows file names cannot contain < > \" | ? * or control characters; rename the file"),
    "colon": (ERROR, "':' is only valid between a file and its alternate data stream (file:stream)"),
    "case-collision": (ERROR, "two entries differ only in case; NTFS would merge them: keep one"),
    "duplicate": (ERROR, "the same path appears twice; HCS creates each path once and fails on the second"),
    "parent-missing": (ERROR, "every directory must come before its contents; add the directory entry first"),
    "orphan-stream": (ERROR, "an alternate data stream must directly follow its file's entry"),
    "stream-type": (ERROR, "only $DATA streams can be imported (file:stream or file:stream:$DATA)"),
    "stream-name": (ERROR, "a stream name must be 1-255 characters without ':', '\\', '/' or NUL"),
    "long-path": (WARNING, "the path is longer than the legacy 260-character limit: Windows tools without long-path support will fail on it"),
    "path-too-long": (ERROR, "the path exceeds the 32,767-character (or 255 per component) limit of Windows; shorten it"),
    "invalid-utf8": (ERROR, "the name is not valid UTF-8, so it has no Windows name; rename it before creating the layer"),
    "invalid-utf16": (WARNING, "the name holds an unpaired UTF-16 surrogate (often from $Recycle.Bin): wincontainers imports and exports it exactly (as WTF-8), but Docker, containerd and hcsshim turn it into U+FFFD; rename the file if the image must work with them"),
    "hardlink-escape": (ERROR, "a hard link target must be a valid path inside this layer's Files/ (or UtilityVM/Files/)"),
    "hardlink-cross-namespace": (ERROR, "hard links may only connect Files/ to Files/ (or UtilityVM/Files/ to UtilityVM/Files/; a base layer may also link the two)"),
    "hardlink-missing-target": (ERROR, "the link target is neither earlier in this tar nor in a parent layer; import the parent layers first or include the file"),
    "hardlink-into-parent": (WARNING, "the link target is not in this tar: it must exist in a parent layer (Windows update layers do this); import with the right parents"),
    "hardlink-to-link": (ERROR, "a hard link target must be a regular file, not a directory or a link"),
    "symlink-outside": (ERROR, "the link points outside the container (another drive, a UNC or device path); point it inside C:\\"),
    "symlink-escape": (WARNING, "the relative link climbs above the container's root; it will resolve at C:\\"),
    "posix-symlink": (WARNING, "the link target uses POSIX syntax ('/'), as Cygwin, MSYS and WSL write it; Windows reads it with '\\'"),
    "symlink-attributes": (WARNING, "the link has no MSWINDOWS.fileattr: a directory link without FILE_ATTRIBUTE_DIRECTORY becomes a file link"),
    "through-link": (ERROR, "an entry is created through a symlink or junction earlier in the layer (it could land anywhere); remove the link or the entry"),
    "unsupported-reparse": (ERROR, "HCS cannot import this kind of reparse point (ImportLayer fails with 'Catastrophic failure'); replace it with a regular symlink or a copy"),
    "reparse-as-file": (ERROR, "the entry claims FILE_ATTRIBUTE_REPARSE_POINT but carries no link: typically a WSL/LX symlink written by Cygwin, MSYS or WSL; replace it with a Windows symlink or a copy"),
    "wsl-metadata": (WARNING, "WSL/LX metadata extended attributes ($LXUID, $LXMOD, ...): the file came from WSL, Cygwin or MSYS; check its links"),
    "recycle-bin": (WARNING, "$Recycle.Bin content does not belong in an image (hcsshim skips it on export; its names often do not convert); delete it before committing"),
    "system-folder": (WARNING, "'System Volume Information' is volume metadata, not image content; delete it before committing"),
    "whiteout-outside-files": (ERROR, "deletions (.wh. entries) are only valid under Files/ and UtilityVM/Files/"),
    "opaque-whiteout": (ERROR, "opaque whiteouts (.wh..wh..opq) are not implemented by HCS; list the deleted files instead"),
    "empty-whiteout": (ERROR, "a '.wh.' entry must name the file it deletes"),
    "whiteout-in-base": (ERROR, "a base layer cannot delete anything; remove the .wh. entries or import it over its parent"),
    "whiteout-and-entry": (WARNING, "the layer both deletes and adds this path; keep one"),
    "bad-security-descriptor": (ERROR, "MSWINDOWS.rawsd is not a valid self-relative security descriptor"),
    "oversized-metadata": (ERROR, "a security descriptor or extended attributes exceed Windows' 64 KiB limit"),
    "unsupported-entry": (ERROR, "devices, FIFOs and sparse entries cannot be in a Windows layer; remove them"),
    "attribute-mismatch": (WARNING, "the file attributes disagree with the entry type (e.g. a file marked as directory)"),
    "missing-hives": (WARNING, "a diff layer normally has a Hives/ folder; layers from other tools may lack it"),
    "hives-in-base": (WARNING, "a base layer's hives are rebuilt from Files/Windows/System32/config on import; Hives/ may make the import fail"),
    "utilityvm-no-parent": (ERROR, "a diff layer's utility VM changes apply to a copy of its parent's, and no parent layer has one; import it over the layers it was made on"),
    "utilityvm-whiteout-missing": (ERROR, "a deletion in a utility VM must name a file of the parent's utility VM (hcsshim refuses it otherwise); drop the .wh. entry"),
    "utilityvm-bcd": (WARNING, "a utility VM needs UtilityVM/Files/EFI/Microsoft/Boot/BCD (a registry hive): ProcessUtilityImage updates it, and Hyper-V isolation cannot boot without it"),
    "utilityvm-order": (WARNING, "Files/ and Hives/ come before UtilityVM/ in a Windows layer tar (Docker and hcsshim write them so; some importers depend on it)"),
}

#: what reading a layer tar raises when the tar is malformed (LayerChecker.read_failed)
READ_ERRORS = (TarFormatError, LayerFormatError, OSError, EOFError)

_SD_MEMO_BYTES = 1 << 22  # security descriptor bytes remembered per check, at most
_MAX_SD = 65536
_REPARSE_POINT, _DIRECTORY = int(FileAttributes.REPARSE_POINT), int(FileAttributes.DIRECTORY)  # IntFlag & is slow
_WSL_EAS = ("$LXUID", "$LXGID", "$LXMOD", "$LXDEV", "LXATTRB", "LXXATTR")
#: PAX record (ours) carrying a raw reparse buffer that is neither a symlink nor a junction, so
#: a layer holding one can still be written, and checked, instead of failing without a name.
REPARSE_EXTENSION = "WINCONTAINERS.reparse"


@attrs.frozen
class Finding:
    path: str
    rule: str
    severity: str
    message: str
    advice: str

    def line(self) -> str:
        return f"{self.severity} {self.rule} {shown(self.path)}: {self.message}. {self.advice}"

    def to_json(self) -> dict[str, str]:
        return attrs.asdict(self)


@attrs.frozen
class Report(RichDisplay):
    """The findings for one layer tar (``ok`` when none is an error)."""

    source: str
    findings: tuple[Finding, ...]
    entries: int
    diff_id: Optional[str] = None
    layer_kind: str = "unknown"  # "base", "diff" or "unknown"

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == WARNING)

    @property
    def ok(self) -> bool:
        return not self.errors

    def rules(self) -> set[str]:
        return {f.rule for f in self.findings}

    def summary(self, limit: int = 10) -> str:
        """One paragraph naming the files, for error messages."""
        parts = [f"{f.path}: {f.message} [{f.rule}]" for f in self.errors[:limit]]
        more = len(self.errors) - limit
        if more > 0:
            parts.append(f"... and {more} more")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source, "entries": self.entries, "diff_id": self.diff_id, "layer_kind": self.layer_kind,
            "errors": len(self.errors), "warnings": len(self.warnings),
            "findings": [f.to_json() for f in self.findings],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def _shown_(self) -> Shown:
        ordered = sorted(self.findings, key=lambda f: f.severity != ERROR)  # errors first
        return Shown.table("Layer check", ("Severity", "Rule", "Path", "Finding"),
                           ((badge(f.severity), f.rule, shown(f.path), f"{f.message}. {f.advice}") for f in ordered),
                           title=self.source, empty="no finding",
                           fields=(("verdict", badge("ok" if self.ok else "rejected")), ("kind", self.layer_kind),
                                   ("entries", self.entries), ("errors", len(self.errors)),
                                   ("warnings", len(self.warnings)), ("diff ID", short_id(self.diff_id, 19))))


class LayerChecker:
    """Feed entries one by one (``check(entry, data)``), then ``report()``.

    The importer uses the same checker while it streams, so what ``check_layer`` accepts is
    exactly what the import accepts.
    """

    def __init__(self, *, source: str = "", parents: Sequence[Path] = (), base: Optional[bool] = None) -> None:
        self.source = source
        self.parents = [Path(p) for p in parents]
        self.base = base if base is not None else (False if parents else None)
        self.findings: list[Finding] = []
        self.entries = 0
        self._seen: dict[str, EntryKind] = {}
        self._folded: dict[str, str] = {}
        self._links: set[str] = set()
        self._whiteouts: set[str] = set()
        self._previous_file: Optional[str] = None
        self._has_hives = False
        self._has_system_hive = False
        self._utility_vm = False  # an entry under UtilityVM was seen
        self._has_bcd = False
        self._reported: set[tuple[str, str]] = set()
        self._last_name: Optional[str] = None
        #: security descriptor bytes -> what is wrong with them ("" nothing): a layer's files
        #: share a handful, and parsing one for every entry was half the rules' time
        self._sd_verdicts: dict[bytes, str] = {}
        self._sd_memo_bytes = 0

    def add(self, path: str, rule: str, message: str) -> None:
        if (path, rule) in self._reported:
            return  # one finding per path and rule (a name can break a rule in several places)
        self._reported.add((path, rule))
        severity, advice = RULES[rule]
        if rule == "hardlink-missing-target" and self.base is None and not self.parents:
            severity, advice = RULES["hardlink-into-parent"]
            rule = "hardlink-into-parent"
        self.findings.append(Finding(path, rule, severity, message, advice))

    def fail(self, rule: str, message: str) -> None:
        self.add(self.source, rule, message)

    def read_failed(self, exc: BaseException) -> None:
        """A tar that stops reading (one of :data:`READ_ERRORS`), as a finding: a tar error is
        named by the entry it broke in when its name was read, else by the source and the
        entry before it."""
        if isinstance(exc, LayerFormatError):
            self.fail("bad-metadata", str(exc))
        elif not isinstance(exc, TarFormatError):  # a truncated or corrupt compressed stream
            self.fail("malformed-tar", f"{type(exc).__name__}: {exc}")
        elif exc.entry:
            self.add(exc.entry, "malformed-tar", str(exc))
        elif self._last_name is not None:
            self.add(f"{self.source} (after {self._last_name})", "malformed-tar", str(exc))
        else:
            self.add(self.source, "malformed-tar", str(exc))

    def check(self, entry: LayerEntry, data: Any = None) -> None:
        self.entries += 1
        name = entry.name
        self._last_name = name
        if entry.name_error:
            self.add(name, "invalid-utf16" if "UTF-16" in entry.name_error else "invalid-utf8",
                     f"the name {entry.name_error}")
        if entry.kind is EntryKind.STREAM:
            whole = validate_name(name)
            if any(rule in ("unc-path", "absolute-path", "drive-path") for rule, _ in whole):
                # the ':' of "\\?\C:\x" or "C:x" is a drive's, not a stream's: say what the name is
                for rule, message in whole:
                    self.add(name, rule, message)
                return
            self._check_stream(entry)
            return
        self._previous_file = name if entry.kind in (EntryKind.FILE, EntryKind.DIRECTORY) else None
        # A whiteout's own basename (.wh.<name>) is checked as the name it deletes.
        problems = validate_name(name.rpartition("/")[0] or name) if entry.kind is EntryKind.WHITEOUT \
            else validate_name(name)
        problems += [(r, m) for r, m in namespace_problems(name) if r not in {p[0] for p in problems}]
        if entry.kind is not EntryKind.WHITEOUT and ":" in name.rpartition("/")[2] and \
                "colon" not in {p[0] for p in problems}:
            problems.append(("colon", "the name contains ':' (only a stream of a file may)"))
        for rule, message in problems:
            self.add(name, rule, message)
        if any(RULES[r][0] == ERROR for r, _ in problems):
            return  # the rest assumes a sane name
        self._check_placement(entry)
        kind = entry.kind
        if kind is EntryKind.WHITEOUT:
            self._check_whiteout(entry)
        elif kind is EntryKind.HARDLINK:
            self._check_hardlink(entry)
        elif kind in (EntryKind.SYMLINK, EntryKind.JUNCTION):
            self._check_symlink(entry)
            self._links.add(name.lower())
        elif kind is EntryKind.OTHER:
            self.add(name, "unsupported-entry", f"typeflag {entry.typeflag!r} (device, FIFO or sparse entry)")
        self._check_metadata(entry)
        if name.startswith("Hives/") or name == "Hives":
            self._has_hives = True
            if name.count("/") > 1 or (name != "Hives" and kind is EntryKind.FILE and not name.endswith("_Delta")):
                self.add(name, "hives-layout", "not a registry delta directly under Hives/")
        if name.lower() == "files/windows/system32/config/system":
            self._has_system_hive = True
        self._check_utility_vm(entry)
        lower = name.lower()
        if lower.startswith("files/$recycle.bin"):
            self.add(name, "recycle-bin", "entry in the recycle bin")
        if lower.startswith("files/system volume information"):
            self.add(name, "system-folder", "volume metadata folder")

    def _check_utility_vm(self, entry: LayerEntry) -> None:
        """What a utility VM in a layer must be: after Files/ and Hives/; in a diff layer, over a
        parent that has one (each layer that changes it holds it whole); a BCD in a whole one."""
        name = entry.name
        if name == "UtilityVM" or name.startswith("UtilityVM/"):
            if not self._utility_vm and self.base is False and self.parents and not self._parent_uvm():
                self.add(name, "utilityvm-no-parent", "no parent layer has a UtilityVM/Files folder")
            self._utility_vm = True
            if name.lower() == "utilityvm/files/efi/microsoft/boot/bcd" and entry.kind is EntryKind.FILE:
                self._has_bcd = True
            if entry.kind is EntryKind.WHITEOUT and self.parents:
                uvm = self._parent_uvm()
                target = entry.whiteout_target
                if uvm is not None and not os.path.lexists(uvm.joinpath(*target.split("/"))):
                    self.add(name, "utilityvm-whiteout-missing", f"the parent's utility VM has no {shown(target)}")
        elif self._utility_vm and (name.startswith("Files/") or name in ("Files", "Hives") or name.startswith("Hives/")):
            self.add(name, "utilityvm-order", "after an UtilityVM/ entry")

    def _parent_uvm(self) -> Optional[Path]:
        """The nearest parent layer with a utility VM (its folder), as the import clones it."""
        return next((p for p in self.parents if (p / "UtilityVM" / "Files").is_dir()), None)

    def _check_placement(self, entry: LayerEntry) -> None:
        name = entry.name
        folded = name.lower()
        if name in self._seen:
            self.add(name, "duplicate", "the path appears twice")
        elif folded in self._folded and entry.kind is not EntryKind.WHITEOUT:
            self.add(name, "case-collision", f"it differs from {shown(self._folded[folded])} only in case")
        parent = name.rpartition("/")[0]
        if parent:
            if parent.lower() in self._links or any(parent.lower().startswith(link + "/") for link in self._links):
                self.add(name, "through-link", f"its parent {shown(parent)} is a link in this layer")
            elif parent not in self._seen and parent.lower() not in self._folded and entry.kind is not EntryKind.WHITEOUT:
                self.add(name, "parent-missing", f"its directory {shown(parent)} has no earlier entry")
        if entry.kind is not EntryKind.WHITEOUT:
            self._seen[name] = entry.kind
            self._folded.setdefault(folded, name)
            if folded in self._whiteouts:
                self.add(name, "whiteout-and-entry", "the layer deletes and adds this path")

    def _check_stream(self, entry: LayerEntry) -> None:
        name = entry.name
        owner = entry.stream_owner
        base = name.rpartition("/")[2]
        stream_part = base.split(":", 1)[1]
        pieces = stream_part.split(":")
        if len(pieces) > 2 or (len(pieces) == 2 and pieces[1] != "$DATA"):
            self.add(name, "stream-type", f"stream {shown(stream_part)} is not a $DATA stream")
            return
        stream = entry.stream_name
        if not stream or len(stream) > 255 or any(c in stream for c in ("\\", "/", "\0")):
            self.add(name, "stream-name", f"invalid stream name {shown(stream)}")
        if self._previous_file != owner:
            self.add(name, "orphan-stream", f"it does not directly follow {shown(owner)}")
        for rule, message in validate_name(owner):
            self.add(name, rule, message)

    def _check_whiteout(self, entry: LayerEntry) -> None:
        name = entry.name
        base = name.rpartition("/")[2]
        if base == WHITEOUT_PREFIX:
            self.add(name, "empty-whiteout", "'.wh.' without a name")
            return
        if base == ".wh..wh..opq":
            self.add(name, "opaque-whiteout", "opaque whiteout")
            return
        if not (name.startswith("Files/") or name.startswith("UtilityVM/Files/")):
            self.add(name, "whiteout-outside-files", "a deletion outside Files/")
        if self.base:
            self.add(name, "whiteout-in-base", "a deletion in a base layer")
        target = entry.whiteout_target
        for rule, message in validate_name(target):
            self.add(name, rule, f"deleted path: {message}")
        self._whiteouts.add(target.lower())
        if target in self._seen:
            self.add(name, "whiteout-and-entry", "the layer adds and deletes this path")

    def _check_hardlink(self, entry: LayerEntry) -> None:
        name = entry.name
        target = entry.link_target or ""
        bad = validate_name(target) if target else [("hardlink-escape", "empty link target")]
        if bad or not target.startswith(("Files/", "UtilityVM/Files/")):
            reasons = "; ".join(m for _, m in bad) or "it is outside Files/"
            self.add(name, "hardlink-escape", f"link target {shown(target)}: {reasons}")
            return
        both_files = {target.split("/", 1)[0], name.split("/", 1)[0]} <= {"Files", "UtilityVM"} and all(
            p.startswith(("Files/", "UtilityVM/Files/")) for p in (target, name))
        if (target.split("/", 1)[0] != name.split("/", 1)[0] or (
            target.startswith("UtilityVM/") != name.startswith("UtilityVM/")
        )) and not (self.base and both_files):  # a base layer may link its utility VM to Files (hcsshim #115)
            self.add(name, "hardlink-cross-namespace", f"{shown(name)} and {shown(target)} are in different namespaces")
            return
        kind = self._seen.get(target)
        if kind is None:
            if self._in_parents(target):
                return
            self.add(name, "hardlink-missing-target", f"target {shown(target)} is not earlier in this layer"
                     + (" nor in its parents" if self.parents else ""))
        elif kind is not EntryKind.FILE:
            self.add(name, "hardlink-to-link", f"target {shown(target)} is a {kind.value}")

    def _in_parents(self, target: str) -> bool:
        for parent in self.parents:
            p = parent.joinpath(*target.split("/"))
            if p.is_file() and not p.is_symlink():
                return True
        return False

    def _check_symlink(self, entry: LayerEntry) -> None:
        name = entry.name
        target = entry.link_target or ""
        if entry.attributes is None:
            self.add(name, "symlink-attributes", "no MSWINDOWS.fileattr on the link")
        t = target.replace("/", "\\")
        if not target:
            self.add(name, "symlink-outside", "the link has no target")
        elif t.startswith("\\\\") or t.startswith("\\??\\") or re.match(r"^[A-Za-z]:", t) and not re.match(r"^[Cc]:\\", t):
            self.add(name, "symlink-outside", f"target {shown(target)}")
        elif target.startswith("/"):
            self.add(name, "posix-symlink", f"absolute POSIX target {shown(target)}")
        else:
            if "/" in target:
                self.add(name, "posix-symlink", f"target {shown(target)}")
            if not re.match(r"^[Cc]:\\", t):
                depth = name.count("/") - 1  # below Files/
                for part in t.split("\\"):
                    depth += -1 if part == ".." else (0 if part in ("", ".") else 1)
                    if depth < 0:
                        self.add(name, "symlink-escape", f"target {shown(target)} climbs above C:\\")
                        break

    def _check_metadata(self, entry: LayerEntry) -> None:
        name = entry.name
        if entry.security is not None:
            if len(entry.security) > _MAX_SD:
                self.add(name, "oversized-metadata", f"security descriptor of {len(entry.security)} bytes")
            else:
                verdict = self._sd_verdicts.get(entry.security)
                if verdict is None:
                    try:
                        SecurityDescriptor.from_bytes(entry.security)
                        verdict = ""
                    except SecurityError as exc:
                        verdict = str(exc)
                    if self._sd_memo_bytes + len(entry.security) <= _SD_MEMO_BYTES:
                        self._sd_verdicts[entry.security] = verdict
                        self._sd_memo_bytes += len(entry.security)
                if verdict:
                    self.add(name, "bad-security-descriptor", verdict)
        if sum(len(k) + len(v) + 9 for k, v in entry.xattrs.items()) > _MAX_SD:
            self.add(name, "oversized-metadata", "extended attributes over 64 KiB")
        if any(k.upper() in _WSL_EAS for k in entry.xattrs):
            self.add(name, "wsl-metadata", "WSL/LX extended attributes")
        attrs_ = entry.attributes
        raw_reparse = entry.pax_extra.get(REPARSE_EXTENSION)
        if raw_reparse is not None:
            tag = reparse_tag(base64.b64decode(raw_reparse + "=="))
            if tag not in (IO_REPARSE_TAG_SYMLINK, IO_REPARSE_TAG_MOUNT_POINT):
                what = OTHER_TAGS.get(tag, "a reparse point of unknown kind")
                self.add(name, "unsupported-reparse", f"reparse tag 0x{tag:08X}: {what}")
        elif attrs_ is not None and attrs_ & _REPARSE_POINT and entry.kind in (
            EntryKind.FILE, EntryKind.DIRECTORY,
        ):
            self.add(name, "reparse-as-file", "FILE_ATTRIBUTE_REPARSE_POINT on an entry that is not a link")
        if attrs_ is not None:
            is_dir_attr = bool(attrs_ & _DIRECTORY)
            if entry.kind is EntryKind.DIRECTORY and not is_dir_attr:
                self.add(name, "attribute-mismatch", "a directory without FILE_ATTRIBUTE_DIRECTORY")
            elif entry.kind is EntryKind.FILE and is_dir_attr:
                self.add(name, "attribute-mismatch", "a file with FILE_ATTRIBUTE_DIRECTORY")

    def finish(self) -> None:
        """Layer-level rules, once every entry has been seen."""
        if self.base is False and not self._has_hives and self.entries:
            self.add("Hives", "missing-hives", "the diff layer has no Hives/ entry")
        if self.base and self._has_hives:
            self.add("Hives", "hives-in-base", "a base layer with Hives/")
        if self._utility_vm and not self._has_bcd and (self.base or self.layer_kind == "base"):
            self.add("UtilityVM/Files/EFI/Microsoft/Boot/BCD", "utilityvm-bcd", "the utility VM has no BCD")

    @property
    def layer_kind(self) -> str:
        if self.base is not None:
            return "base" if self.base else "diff"
        if self._has_system_hive and not self._whiteouts:
            return "base"
        if self._has_hives or self._whiteouts:
            return "diff"
        return "unknown"

    def report(self, diff_id: Optional[str] = None) -> Report:
        return Report(self.source, tuple(self.findings), self.entries, diff_id, self.layer_kind)


def check_layer(
    source: Source,
    *,
    parents: Sequence[Path] = (),
    base: Optional[bool] = None,
    progress: Optional[Progress] = None,
    limits: TarLimits = DEFAULT_LIMITS,
) -> Report:
    """Check a layer tar (path or binary file object; plain, gzip or zstd).

    ``parents`` (layer folders, nearest first) let hard links into parent layers be checked;
    ``base`` says whether it is meant as a base layer (default: a diff layer when parents are
    given, otherwise unknown).
    """
    label = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "<stream>")
    checker = LayerChecker(source=str(label), parents=parents, base=base)
    diff_id = None
    try:
        with LayerReader(source, progress=progress, limits=limits) as reader:
            for entry, data in reader:
                checker.check(entry, data)
            diff_id = reader.diff_id
    except READ_ERRORS as exc:
        checker.read_failed(exc)
    checker.finish()
    return checker.report(diff_id)

