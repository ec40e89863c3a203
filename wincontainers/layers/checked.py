"""The entries of a layer tar as an import writes them: each one checked first, in one pass.

The import reads its source once. Checking the whole tar first and then opening it again by
path let a file swapped in between be imported unchecked; reading it once, and checking each
entry just before it is written, leaves nothing to swap. The price is that a rejected tar has
been written in part: the importer removes what it wrote (as for any failed import), and the
rest of the tar is still read, without writing, so the report names every problem.

``check=False`` skips the report, not the containment: the rules that keep a write inside the
layer (:data:`CONTAINMENT_RULES`) refuse the import whatever the caller asked.
"""

from __future__ import annotations

from typing import Iterator, Optional

from wincontainers import errors
from wincontainers.layerfile import LayerReader
from wincontainers.layerfile.entry import LayerEntry
from wincontainers.layerfile.tarstream import EntryData
from wincontainers.layerfile.validate import ERROR, READ_ERRORS, Finding, LayerChecker, Report

__all__ = ["CONTAINMENT_RULES", "CheckedEntries", "LayerRejected"]

#: findings that would put a write, a deletion or a hard link outside the layer folder
CONTAINMENT_RULES = frozenset({
    "malformed-tar", "absolute-path", "drive-path", "unc-path", "backslash", "path-traversal", "dot-component",
    "colon", "through-link", "hardlink-escape", "hardlink-cross-namespace", "whiteout-outside-files",
    "invalid-utf8",
})


class LayerRejected(errors.BadInput):
    """The layer tar has problems that would break the import (or the host); nothing of it was
    kept. ``report`` lists every problem the tar has."""

    def __init__(self, report: Report) -> None:
        self.report = report
        super().__init__(
            f"{report.source}: {len(report.errors)} problem(s) would break the import, nothing was imported: "
            f"{report.summary()}"
        )


class CheckedEntries:
    """``for entry, data in CheckedEntries(reader, checker, check=...)``: what may be written.

    Raises :class:`LayerRejected` at the first entry that breaks a rule (every error rule with
    ``check``, the containment rules without), after reading the rest of the tar into the report;
    a tar that does not read is rejected the same way, never with the reader's own exception.
    """

    def __init__(self, reader: LayerReader, checker: LayerChecker, *, check: bool) -> None:
        self.reader = reader
        self.checker = checker
        self.check = check

    def _blocks(self, finding: Finding) -> bool:
        return finding.severity == ERROR and (self.check or finding.rule in CONTAINMENT_RULES)

    def _blocking(self, since: int) -> bool:
        return any(self._blocks(f) for f in self.checker.findings[since:])

    def __iter__(self) -> Iterator[tuple[LayerEntry, EntryData]]:
        entries = iter(self.reader)
        while True:
            seen = len(self.checker.findings)
            try:
                item: Optional[tuple[LayerEntry, EntryData]] = next(entries, None)
            except READ_ERRORS as exc:
                self.checker.read_failed(exc)
                raise self._rejected() from None
            if item is None:
                break
            entry, data = item
            self.checker.check(entry, data)
            if self._blocking(seen):
                self._check_rest(entries)
                raise self._rejected()
            yield entry, data
        seen = len(self.checker.findings)
        self.checker.finish()
        if self._blocking(seen):
            raise self._rejected()

    def _check_rest(self, entries: Iterator[tuple[LayerEntry, EntryData]]) -> None:
        """The entries after a rejected one, into the report only."""
        try:
            for entry, data in entries:
                self.checker.check(entry, data)
        except READ_ERRORS as exc:
            self.checker.read_failed(exc)
        self.checker.finish()

    def _rejected(self) -> LayerRejected:
        report = self.checker.report(None)
        if not self.check:  # only what stopped it: the caller asked for no report
            report = Report(report.source, tuple(f for f in report.findings if self._blocks(f)), report.entries,
                            None, report.layer_kind)
        return LayerRejected(report)
