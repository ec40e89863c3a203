"""attrs models of the JSON documents HCS takes and returns, exact PascalCase on the wire."""

from wincontainers.schema import common, hcn, hns, v1, v2
from wincontainers.schema._document import Document

__all__ = ["Document", "common", "hcn", "hns", "v1", "v2"]
