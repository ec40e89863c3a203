"""The only code that touches cffi: declarations, DLL loading, strings and handles."""

from wincontainers._native.cdefs import declarations

__all__ = ["declarations"]
