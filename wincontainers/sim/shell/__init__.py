"""cmd.exe, a small PowerShell and the common Windows tools, for simulated containers.

A simulated container's processes run this package instead of host programs: ``cmd /c LINE``
is interpreted here with cmd's own rules (percent expansion, carets and quotes, ``&``/``&&``/
``||``/``|``, redirection, ``if``/``for``/``call``/``goto``, the internal commands), and the
Windows tools a script reaches for (``ping``, ``findstr``, ``whoami``...) are functions here.
``C:\\`` is the container's root. What is not simulated fails, saying so, with cmd's exit codes.

Modules, bottom first: ``textio`` (stdio with CRLF), ``environment`` (case-insensitive
variables), ``winpaths`` (Windows paths over the container's root), ``parser`` (cmd's phases 1
and 2 into a tree), ``arith`` (``set /a``), ``interpreter`` (runs the tree), ``internal`` and
``fileops`` (the internal commands), ``tools`` (the external ones), ``powershell``, ``entry``
(what a container process runs). This package is pure Python and has no third-party imports, so
a forked process starts it in a millisecond.
"""
