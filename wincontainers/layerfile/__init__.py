"""The Windows layer tar, in pure Python (no HCS): read, write, check.

- :class:`LayerReader` / :class:`LayerWriter`: streaming, PAX ``MSWINDOWS.*`` records, alternate
  data streams, links, whiteouts; gzip (and zstd with the optional ``zstandard``); diff IDs.
- :func:`check_layer`: a :class:`Report` of what would break an import, file by file.
- codecs: :mod:`.backup` (Win32 backup streams), :mod:`.security` (security descriptors, SDDL),
  :mod:`.reparse`, :mod:`.ea`, :mod:`.times`, :mod:`.attributes`.
"""

from wincontainers.layerfile.attributes import FileAttributes
from wincontainers.layerfile.codec import LayerFormatError, LayerReader, LayerWriter, TarFormatError
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layerfile.security import SecurityDescriptor, Sid
from wincontainers.layerfile.tarstream import DEFAULT_LIMITS, TarLimits
from wincontainers.layerfile.validate import RULES, Finding, LayerChecker, Report, check_layer

__all__ = [
    "EntryKind",
    "FileAttributes",
    "Finding",
    "LayerChecker",
    "LayerEntry",
    "LayerFormatError",
    "LayerReader",
    "LayerWriter",
    "Report",
    "RULES",
    "SecurityDescriptor",
    "Sid",
    "TarFormatError",
    "TarLimits",
    "DEFAULT_LIMITS",
    "check_layer",
]
