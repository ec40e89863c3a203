"""The simulated cmd.exe, line by line: what cmd's documentation says each line prints.

Every line runs as ``cmd /c LINE`` with C:\\t as the working directory, in order, so later lines
see the files earlier ones made. The table runs twice: in this process (the interpreter alone)
and as container processes on every simulated profile (the same interpreter behind HCS).
Expected output is written with ``\\n``, which stands for the CRLF cmd writes; a compiled pattern
matches the whole output where it holds dates, sizes or names that vary.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Union

import pytest

from wincontainers import Host
from tests.conftest import SimulatedHost, skip_module_without_simulator

skip_module_without_simulator()
pytestmark = pytest.mark.simulator("the simulated cmd.exe and its confinement")

from wincontainers.sim.shell import entry, launch, tools
from wincontainers.sim.shell.environment import windows_environment
from wincontainers.sim.shell.interpreter import HostInfo
from wincontainers.sim.shell.textio import CommandError, Io
from wincontainers.sim.shell.winpaths import ContainerFs

Expected = Union[str, "re.Pattern[str]"]
NOT_FOUND = "The system cannot find the file specified.\n"
NOT_RECOGNIZED = ("'{0}' is not recognized as an internal or external command,\n"
                  "operable program or batch file.\n")
PATHEXT = ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH;.MSC"
DIR_LISTING = re.compile(
    r" Volume in drive C has no label\.\r\n Volume Serial Number is [0-9A-F]{4}-[0-9A-F]{4}\r\n\r\n"
    r" Directory of C:\\t\r\n\r\n"
    r"(\d\d/\d\d/\d{4}  \d\d:\d\d [AP]M(    <DIR>          | [ \d,]{17} )\S.*\r\n)+"
    r" +\d+ File\(s\) +[\d,]+ bytes\r\n +\d+ Dir\(s\) +[\d,]+ bytes free\r\n")

#: (line, stdout, stderr, exit code)
CASES: list[tuple[str, Expected, Expected, int]] = [
    # echo, and what the parser leaves of a line
    ("echo hello", "hello\n", "", 0),
    ("echo   spaced   out  ", "  spaced   out  \n", "", 0),
    ("echo.", "\n", "", 0),
    ("echo(", "\n", "", 0),
    ("echo.hello", "hello\n", "", 0),
    ("echo", "ECHO is on.\n", "", 0),
    ("echo off& echo", "ECHO is off.\n", "", 0),
    ("echo a & echo b", "a \nb\n", "", 0),
    ("echo a&echo b", "a\nb\n", "", 0),
    ("echo a && echo b", "a \nb\n", "", 0),
    ("echo a || echo b", "a \n", "", 0),
    ("echo ^& ^| ^< ^> ^^", "& | < > ^\n", "", 0),
    ('echo "a & b | c"', '"a & b | c"\n', "", 0),
    ("echo 100%", "100%\n", "", 0),
    ("echo %%", "%%\n", "", 0),
    ("echo %NO_SUCH_VARIABLE%", "%NO_SUCH_VARIABLE%\n", "", 0),
    ("echo %OS%", "Windows_NT\n", "", 0),
    ("echo %PATHEXT:~0,4%", ".COM\n", "", 0),
    ("echo %PATHEXT:~-4%", ".MSC\n", "", 0),
    ("echo %OS:_NT=%", "Windows\n", "", 0),
    ("echo %ERRORLEVEL%", "0\n", "", 0),
    ("@echo at-sign", "at-sign\n", "", 0),
    # variables: a line is expanded once, before it runs
    ("set X=hello& echo %X%", "%X%\n", "", 0),
    ("set X=hello& call echo %X%", "hello\n", "", 0),
    ('cmd /v:on /c "set X=hello& echo !X!"', "hello\n", "", 0),
    ('cmd /v:on /c "set X=1& set X=2& echo !X! %X%"', "2 %X%\n", "", 0),
    ("set X=abcdef& call echo %X:~1,3%", "bcd\n", "", 0),
    ("set X=abcdef& call echo %X:~-2%", "ef\n", "", 0),
    ("set X=abcdef& call echo %X:cd=XY%", "abXYef\n", "", 0),
    ("set X=abcdef& call echo %X:*c=%", "def\n", "", 0),
    ("set X=ABC& call echo %X:b=-%", "A-C\n", "", 0),
    ("set X=a b & call echo [%X%]", "[a b ]\n", "", 0),
    ('set "X=quoted" ignored& call echo [%X%]', "[quoted]\n", "", 0),
    ("set X=1& set X=& call echo [%X%]", "[%X%]\n", "", 0),
    ("set PATHEX", f"PATHEXT={PATHEXT}\n", "", 0),
    ("set NO_SUCH_PREFIX_X", "", "Environment variable NO_SUCH_PREFIX_X not defined\n", 1),
    ("set /a 6*7", "42", "", 0),
    ("set /a (1+2)*3", "9", "", 0),
    ("set /a 7/2", "3", "", 0),
    ("set /a -7%3", "-1", "", 0),
    ("set /a 0x10+010", "24", "", 0),
    ('set /a "1<<4"', "16", "", 0),
    ("set /a X=5,Y=X*2", "10", "", 0),
    ("set /a 2147483647+1", "-2147483648", "", 0),
    ("set /a 1/0", "", "Divide by zero error.\n", 1073750993),
    ("set /a X=3& call echo %X%", "33\n", "", 0),
    # exit codes and ERRORLEVEL
    ("cmd /c exit 5", "", "", 5),
    ("cmd /c exit 5 & echo %ERRORLEVEL%", "0\n", "", 0),
    ("cmd /c exit 5 & call echo %^ERRORLEVEL%", "5\n", "", 0),
    ("cmd /c exit 5 || echo failed", "failed\n", "", 0),
    ("cmd /c exit 5 && echo never", "", "", 5),
    ("exit /b 4", "", "", 4),
    ("exit 3 & echo never", "", "", 3),
    ("no_such_program", "", NOT_RECOGNIZED.format("no_such_program"), 9009),
    ("no_such_program 2>nul || call echo %^ERRORLEVEL%", "9009\n", "", 0),
    ("C:\\t\\no_such.exe", "", NOT_RECOGNIZED.format("C:\\t\\no_such.exe"), 9009),
    ("ver", "\nMicrosoft Windows [Version {version}]\n", "", 0),
    ("whoami", "user manager\\containeradministrator\n", "", 0),
    ("hostname & echo %COMPUTERNAME%", re.compile(r"(\S+)\r\n\1\r\n"), "", 0),
    ("call :label", "", "Invalid attempt to call batch label outside of batch script.\n", 1),
    # redirection and files made by earlier lines
    ("echo one> a.txt", "", "", 0),
    ("type a.txt", "one\n", "", 0),
    ("echo two>> a.txt", "", "", 0),
    ("type a.txt", "one\ntwo\n", "", 0),
    ("echo spaced > b.txt & type b.txt", "spaced  \n", "", 0),  # both spaces stay
    ("echo 1>c.txt", "", "", 0),
    ("type c.txt", "ECHO is on.\n", "", 0),
    ("echo x 2>err.txt", "x \n", "", 0),
    ("type err.txt", "", "", 0),
    ("type no_such.txt", "", NOT_FOUND, 1),
    ("type no_such.txt 2>nul || echo missing", "missing\n", "", 0),
    ("type no_such.txt 2>&1", NOT_FOUND, "", 1),
    ("type no_such.txt 2>&1 >nul", NOT_FOUND, "", 1),  # 2 goes where 1 went before
    ("(echo a & echo b) > block.txt & type block.txt", "a \nb\n", "", 0),
    ('echo a > "spaced name.txt" & type "spaced name.txt"', "a  \n", "", 0),
    ('find "t" < a.txt', "two\n", "", 0),
    ('type a.txt | find "one"', "one\n", "", 0),
    ('type a.txt | find /c /v ""', "2\n", "", 0),
    ('type a.txt | findstr /b "t"', "two\n", "", 0),
    ('findstr /n "o" a.txt', "1:one\n2:two\n", "", 0),
    ('findstr /v "one" a.txt', "two\n", "", 0),
    ('findstr /i "ONE" a.txt', "one\n", "", 0),
    ('findstr "zzz" a.txt', "", "", 1),
    ('findstr /c:"ne" a.txt', "one\n", "", 0),
    ('find "one" a.txt', "\n---------- A.TXT\none\n", "", 0),
    ('find /c "o" a.txt', "\n---------- A.TXT: 2\n", "", 0),
    ('echo abc | findstr /r "^a.c"', "abc \n", "", 0),
    ('echo a | find "a" && echo found', "a \nfound\n", "", 0),
    ('echo a | find "z" || echo not found', "not found\n", "", 0),
    ("(echo b& echo a) | sort", "a\nb\n", "", 0),
    ("echo x >nul & echo shown", "shown\n", "", 0),
    ("echo to-err 1>&2", "", "to-err \n", 0),
    ("echo to-err>&2", "", "to-err\n", 0),
    ("(echo out& echo err>&2) 2>nul", "out\n", "", 0),
    ("copy a.txt d.txt", "        1 file(s) copied.\n", "", 0),
    ("type d.txt", "one\ntwo\n", "", 0),
    ("copy no_such.txt e.txt", "        0 file(s) copied.\n", NOT_FOUND, 1),
    ("copy a.txt a.txt", "        0 file(s) copied.\n", "The file cannot be copied onto itself.\n", 1),
    ("md sub", "", "", 0),
    ("md sub", "", "A subdirectory or file sub already exists.\n", 1),
    ("md deep\\er\\path", "", "", 0),
    ("if exist deep\\er\\path echo yes", "yes\n", "", 0),
    ("copy a.txt sub", "        1 file(s) copied.\n", "", 0),
    ("dir /b sub", "a.txt\n", "", 0),
    ("move d.txt sub\\moved.txt", "        1 file(s) moved.\n", "", 0),
    ("if exist d.txt (echo still) else (echo gone)", "gone\n", "", 0),
    ("type sub\\moved.txt", "one\ntwo\n", "", 0),
    ("ren b.txt renamed.txt", "", "", 0),
    ("ren renamed.txt sub\\x.txt", "", "The syntax of the command is incorrect.\n", 1),
    ("ren no_such.txt y.txt", "", NOT_FOUND, 1),
    ("ren renamed.txt a.txt", "", "A duplicate file name exists, or the file\ncannot be found.\n", 1),
    ("del renamed.txt", "", "", 0),
    ("del renamed.txt", "", "Could Not Find C:\\t\\renamed.txt\n", 0),
    ("del /q sub\\*.txt", "", "", 0),
    ("dir /b sub", "", "File Not Found\n", 1),
    ("rd sub", "", "", 0),
    ("rd sub", "", NOT_FOUND, 2),
    ("rd deep", "", "The directory is not empty.\n", 145),
    ("rd /s /q deep", "", "", 0),
    ("if not exist deep echo removed", "removed\n", "", 0),
    ("rd a.txt", "", "The directory name is invalid.\n", 267),
    ("dir /b *.txt", "a.txt\nblock.txt\nc.txt\nerr.txt\nspaced name.txt\n", "", 0),
    ("dir", DIR_LISTING, "", 0),
    ("dir /b no_such*", "", "File Not Found\n", 1),
    ("xcopy a.txt copies\\ /i", "a.txt\n1 File(s) copied\n", "", 0),
    ("dir /b copies", "a.txt\n", "", 0),
    # the current directory and drives
    ("cd", "C:\\t\n", "", 0),
    ("cd no_such_folder", "", "The system cannot find the path specified.\n", 1),
    ("cd a.txt", "", "The directory name is invalid.\n", 1),
    ("cd .. & cd", "C:\\\n", "", 0),
    ("cd \\ & cd", "C:\\\n", "", 0),
    ("cd /d C:\\Windows & cd", "C:\\Windows\n", "", 0),
    ("cd C:\\WINDOWS\\system32 & cd", "C:\\Windows\\System32\n", "", 0),
    ("cd.. & cd", "C:\\\n", "", 0),
    ("D:", "", "The system cannot find the drive specified.\n", 1),
    ("cd /d D:\\", "", "The system cannot find the drive specified.\n", 1),
    ("C: & cd", "C:\\t\n", "", 0),
    ("pushd \\ & cd & popd & cd", "C:\\\nC:\\t\n", "", 0),
    # if
    ("if 1==1 echo equal", "equal\n", "", 0),
    ("if 1==2 echo equal", "", "", 0),
    ("if not 1==2 echo different", "different\n", "", 0),
    ('if "a b"=="a b" echo quoted', "quoted\n", "", 0),
    ("if /i ABC==abc echo nocase", "nocase\n", "", 0),
    ("if ABC==abc (echo same) else (echo case matters)", "case matters\n", "", 0),
    ("if 10 GTR 9 echo numeric", "numeric\n", "", 0),
    ("if 10 GTR 9a echo compared-as-text", "", "", 0),
    ("if 2 LEQ 2 echo leq", "leq\n", "", 0),
    ("if 3 NEQ 4 echo neq", "neq\n", "", 0),
    ("if defined OS echo defined", "defined\n", "", 0),
    ("if not defined NO_SUCH_VARIABLE echo undefined", "undefined\n", "", 0),
    ("if errorlevel 0 echo always", "always\n", "", 0),
    ("cmd /c exit 3 & if errorlevel 3 echo three", "three\n", "", 0),
    ("cmd /c exit 2 & if errorlevel 3 (echo three) else echo less", "less\n", "", 0),
    ("if exist a.txt if exist c.txt echo both", "both\n", "", 0),
    ("if 1==1 echo a & echo b", "a \nb\n", "", 0),
    ("if 1==2 echo a & echo b", "", "", 0),
    ("if exist C:\\Windows\\System32 echo system", "system\n", "", 0),
    ("if exist *.txt echo some", "some\n", "", 0),
    # for
    ("for %i in (a b c) do @echo %i", "a\nb\nc\n", "", 0),
    ("for %i in (a,b;c) do @echo [%i]", "[a]\n[b]\n[c]\n", "", 0),
    ('for %i in ("x y" z) do @echo %~i', "x y\nz\n", "", 0),
    ("for %f in (*.txt) do @echo %f", "a.txt\nblock.txt\nc.txt\nerr.txt\nspaced name.txt\n", "", 0),
    ("for /l %i in (1,1,3) do @echo %i", "1\n2\n3\n", "", 0),
    ("for /l %i in (5,-2,1) do @echo %i", "5\n3\n1\n", "", 0),
    ("for /f %l in (a.txt) do @echo [%l]", "[one]\n[two]\n", "", 0),
    ('for /f "tokens=2,3 delims=," %a in ("x,y,z") do @echo %b-%a', "z-y\n", "", 0),
    ('for /f "tokens=1*" %a in ("first the rest") do @echo %b', "the rest\n", "", 0),
    ('for /f "skip=1" %l in (a.txt) do @echo %l', "two\n", "", 0),
    ('for /f "usebackq" %l in (`type a.txt`) do @echo %l', "one\ntwo\n", "", 0),
    ("for /f %l in ('echo from-command') do @echo %l", "from-command\n", "", 0),
    ("for /f \"delims=\" %l in ('ver') do @echo [%l]", "[Microsoft Windows [Version {version}]]\n", "", 0),
    ("for /d %d in (*) do @echo %d", "copies\n", "", 0),
    ("for %f in (a.txt) do @echo %~nf %~xf %~zf", "a .txt 10\n", "", 0),
    ("for %f in (a.txt) do @echo %~ff", "C:\\t\\a.txt\n", "", 0),
    ("for %f in (a.txt) do @echo %~dpf", "C:\\t\\\n", "", 0),
    ("for /r %f in (a.*) do @echo %f", "C:\\t\\a.txt\nC:\\t\\copies\\a.txt\n", "", 0),
    ("for %i in (1 2) do @for %j in (a b) do @echo %i%j", "1a\n1b\n2a\n2b\n", "", 0),
    ("for %i in (1 2 3) do @if %i==2 echo two", "two\n", "", 0),
    # batch files: arguments, call, labels, goto, setlocal, delayed expansion
    ("echo @echo off> t.bat", "", "", 0),
    ("echo echo arg1=%1 all=%*>> t.bat", "", "", 0),
    (">> t.bat echo exit /b 7", "", "", 0),
    ('t.bat x "y z"', 'arg1=x all=x "y z"\n', "", 7),
    ("call t.bat a b & call echo %^ERRORLEVEL%", "arg1=a all=a b\n7\n", "", 0),
    ("t.bat a & echo after", "arg1=a all=a\nafter\n", "", 0),
    ("> s.bat echo @echo off", "", "", 0),
    (">> s.bat echo setlocal enabledelayedexpansion", "", "", 0),
    (">> s.bat echo set n=0", "", "", 0),
    (">> s.bat echo for %%i in (a b c) do set /a n+=1", "", "", 0),
    (">> s.bat echo echo count=!n!", "", "", 0),
    (">> s.bat echo call :sub one two", "", "", 0),
    (">> s.bat echo echo back errorlevel=!errorlevel!", "", "", 0),
    (">> s.bat echo goto :end", "", "", 0),
    (">> s.bat echo :sub", "", "", 0),
    (">> s.bat echo echo in sub %1 %2", "", "", 0),
    (">> s.bat echo exit /b 3", "", "", 0),
    (">> s.bat echo :end", "", "", 0),
    (">> s.bat echo echo done", "", "", 0),
    ("s.bat", "count=3\nin sub one two\nback errorlevel=3\ndone\n", "", 3),  # echo keeps ERRORLEVEL
    ("s", "count=3\nin sub one two\nback errorlevel=3\ndone\n", "", 3),
    ("> e.bat echo echo hi", "", "", 0),
    ("e.bat", "\nC:\\t>echo hi\nhi\n", "", 0),
    ("> g.cmd echo @goto nowhere", "", "", 0),
    ("g.cmd", "", "The system cannot find the batch label specified - nowhere\n", 1),
    # a Windows program in the container that the simulator cannot run
    ("echo MZ> fake.exe", "", "", 0),
    ("fake.exe", "", NOT_RECOGNIZED.format("fake.exe") + "not simulated: C:\\t\\fake.exe is a Windows program; "
     "the simulated host runs cmd, powershell (a subset) and the tools listed in docs/simulator.md\n", 9009),
    # setx: later processes of the container see what it saved
    ("setx GREETING hi", "\nSUCCESS: Specified value was saved.\n", "", 0),
    ("echo %GREETING%", "hi\n", "", 0),
    # powershell, a small subset, and a clear refusal for the rest
    ('powershell -c "Get-Process"', "", "not simulated: Get-Process\n", 1),
    ("powershell -Command Write-Output hello", "hello\n", "", 0),
    ("powershell -c \"Set-Content ps.txt 'from ps'; Get-Content ps.txt\"", "from ps\n", "", 0),
    ('powershell -c "Test-Path ps.txt"', "True\n", "", 0),
    ('powershell -c "Remove-Item ps.txt; Test-Path ps.txt"', "False\n", "", 0),
    ('powershell -NoProfile -c "exit 7"', "", "", 7),
    ("powershell -c \"$env:FOO='bar'; Write-Host $env:FOO\"", "bar\n", "", 0),
    ('pwsh -c "Get-Content no_such.txt"', "",
     "Get-Content : Cannot find path 'C:\\t\\no_such.txt' because it does not exist.\n", 1),
    # tools
    ("timeout /t 1", "", "ERROR: Input redirection is not supported, exiting the process immediately.\n", 1),
    ("ping -n 1 localhost", re.compile(r"\r\nPinging localhost \[127\.0\.0\.1\] with 32 bytes of data:\r\n"
                                       r"Reply from 127\.0\.0\.1: bytes=32 time<1ms TTL=128\r\n\r\n(.*\r\n){4}"), "", 0),
    ("ping -n 0 localhost", "Bad value for option -n, valid range is from 1 to 4294967295.\n\n", "", 1),
]


def _matches(actual: bytes, expected: Expected, version: str) -> bool:
    text = actual.decode("utf-8", "replace")
    if isinstance(expected, str):
        return text == expected.replace("{version}", version).replace("\n", "\r\n")
    return expected.fullmatch(text) is not None


def _check(results: list[tuple[str, bytes, bytes, int]], version: str) -> None:
    wrong = []
    for (line, out, err, code), (_, want_out, want_err, want_code) in zip(results, CASES):
        if not (_matches(out, want_out, version) and _matches(err, want_err, version) and code == want_code):
            wrong.append(f"{line!r}: got {out!r} {err!r} exit {code}; want {want_out!r} {want_err!r} exit {want_code}")
    assert not wrong, "\n".join(wrong)
    assert len(results) == len(CASES)


def test_the_table_has_enough_lines() -> None:
    assert len(CASES) >= 150


def test_the_interpreter_alone(tmp_path: Path) -> None:
    (tmp_path / "Windows" / "System32").mkdir(parents=True)
    (tmp_path / "t").mkdir()
    version = "10.0.17763.0"
    results = []
    for line, *_ in CASES:
        env = windows_environment("TESTHOST")
        env.update(tools.persisted_environment(tmp_path))
        shell = entry.new_shell(tmp_path, "C:\\t", env, HostInfo(version=version, hostname="TESTHOST"))
        out, err = io.BytesIO(), io.BytesIO()
        code = entry.run_command_line("cmd /c " + line, shell, Io(io.BytesIO(), out, err))  # type: ignore[arg-type]
        results.append((line, out.getvalue(), err.getvalue(), code))
    _check(results, version)


class _InterruptedAfter(io.BytesIO):
    """A stdout where Ctrl+C lands right after the write of the line holding ``marker``."""

    def __init__(self, marker: bytes) -> None:
        super().__init__()
        self.marker = marker

    def write(self, data: bytes) -> int:  # type: ignore[override]
        n = super().write(data)
        if self.marker in data:
            self.marker = b"\0never"
            raise KeyboardInterrupt
        return n


def test_ping_prints_its_summary_whenever_ctrl_c_lands(tmp_path: Path) -> None:
    # CI once saw a container's `ping -t` exit on Ctrl+C with no summary: the signal landed
    # between the "Pinging" line and the loop that catches it.
    shell = entry.new_shell(tmp_path, "C:\\", windows_environment("TESTHOST"), HostInfo(version="10.0.17763.0",
                                                                                        hostname="TESTHOST"))
    for marker in (b"Pinging", b"Reply from"):
        out = _InterruptedAfter(marker)
        with pytest.raises(KeyboardInterrupt):
            tools.ping(shell, ["-t", "localhost"], Io(io.BytesIO(), out, io.BytesIO()))  # type: ignore[arg-type]
        assert out.getvalue().endswith(b"\r\nControl-C\r\n"), (marker, out.getvalue())
        assert b"Ping statistics for 127.0.0.1:" in out.getvalue()


def test_every_line_in_a_container(host: Host, sim: SimulatedHost, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        assert c.run("cmd /c md C:\\t").returncode == 0
        results = []
        for line, *_ in CASES:
            r = c.run("cmd /c " + line, workdir="C:\\t")
            results.append((line, r.stdout, r.stderr, r.returncode))
        c.stop()
    _check(results, sim.profile.version)


@pytest.mark.parametrize("line, expected", [
    ('cmd /S /C "echo "quoted" && ver"', 'echo "quoted" && ver'),
    ("cmd.exe /c echo hi", "echo hi"),
    ('C:\\Windows\\System32\\cmd.exe /Q /S /C "echo x"', "echo x"),
    ('cmd /c"exit 3"', "exit 3"),
    ('cmd /c "two words" & x', 'two words & x'),
])
def test_cmd_switches_strip_quotes_as_cmd_does(line: str, expected: str) -> None:
    assert launch.cmd_switches(line).line == expected


def test_a_quoted_program_name_keeps_its_quotes_without_s() -> None:
    line = 'cmd /c "C:\\Program Files\\app.bat"'
    assert launch.cmd_switches(line, lambda name: name.endswith(".bat")).line == '"C:\\Program Files\\app.bat"'
    assert launch.cmd_switches(line, lambda name: False).line == "C:\\Program Files\\app.bat"
    assert launch.cmd_switches('cmd /q /v:on /k echo x').keep


def test_paths_stay_in_the_container(tmp_path: Path) -> None:
    (tmp_path / "Windows" / "System32").mkdir(parents=True)
    (tmp_path / "canary.txt").write_text("outside")
    root = tmp_path / "root"
    (root / "Windows" / "System32").mkdir(parents=True)
    fs = ContainerFs(root, "C:\\Windows")
    assert fs.host("c:\\windows\\SYSTEM32") == root / "Windows" / "System32"
    assert fs.host("..\\..\\..\\canary.txt") == root / "canary.txt"
    assert fs.full("/Windows/./x/../System32/") == "C:\\Windows\\System32"
    with pytest.raises(CommandError, match="drive"):
        fs.host("D:\\x")
    (root / "up").symlink_to(tmp_path / "canary.txt")
    (root / "dots").symlink_to("../canary.txt")
    assert fs.host("C:\\up") == root  # an absolute host target is not inside the container
    assert fs.host("C:\\dots") == root / "canary.txt"


def test_a_container_cannot_see_the_hosts_files(host: Host, sim: SimulatedHost, clean: SimulatedHost,
                                                tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("host secret")
    with host.containers.create("windowsservercore") as c:
        c.start()
        listing = c.run("cmd /c dir /b C:\\").stdout.decode().split("\r\n")
        root = Path(next(s["root"] for s in sim.objects()["systems"] if s["id"] == c.id))
        assert sorted(n for n in listing if n) == sorted(p.name for p in root.iterdir()
                                                         if not p.name.startswith(".wcsim-"))
        os.symlink(canary, root / "link.txt")
        os.symlink("../" * 20 + str(canary).lstrip("/"), root / "dots.txt")
        for line in ("type C:\\link.txt", "type C:\\dots.txt", f"type {canary}", "type ..\\..\\..\\canary.txt"):
            r = c.run("cmd /c " + line)
            assert b"host secret" not in r.stdout + r.stderr, line
        if sim.status().get("confinement") == "bubblewrap":
            # Even code that escapes the interpreter's paths finds no host file system there.
            probe = c.run('powershell -c "Test-Path C:\\Windows"')
            assert probe.stdout == b"True\r\n"
        c.stop()


def test_output_appears_once_and_in_order_in_pipe_and_console_mode(host: Host, clean: SimulatedHost) -> None:
    script = "for /l %i in (1,1,200) do @(echo out %i& echo err %i>&2)"
    with host.containers.create("windowsservercore") as c:
        c.start()
        piped = c.run(f'cmd /c "{script}"')
        assert piped.stdout == b"".join(b"out %d\r\n" % i for i in range(1, 201))
        assert piped.stderr == b"".join(b"err %d\r\n" % i for i in range(1, 201))
        console = c.exec(f'cmd /c "{script}"', tty=True)
        out, _ = console.communicate(timeout=60)
        assert out == b"".join(b"out %d\r\nerr %d\r\n" % (i, i) for i in range(1, 201))
        c.stop()


def test_a_program_the_simulator_cannot_run_exits_9009_saying_so(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        assert c.run('cmd /c "md C:\\app & echo MZ> C:\\app\\server.exe"').returncode == 0
        r = c.run("C:\\app\\server.exe --port 80")
        assert r.returncode == 9009 and b"not simulated: C:\\app\\server.exe" in r.stderr
        c.stop()


def test_confinement_is_probed_and_can_be_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from wincontainers.sim import sandbox

    monkeypatch.setenv("WCSIM_NO_BWRAP", "1")
    assert sandbox._probe() == "none: WCSIM_NO_BWRAP is set"  # noqa: SLF001 - the probe itself
    monkeypatch.delenv("WCSIM_NO_BWRAP")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert sandbox._probe() == "none: bubblewrap (bwrap) is not installed"  # noqa: SLF001


def test_a_confined_process_has_no_host_files_in_its_namespace(host: Host, sim: SimulatedHost, clean: SimulatedHost,
                                                                 tmp_path: Path) -> None:
    info = host.info()
    assert info["confinement"] == "bubblewrap" or str(info["confinement"]).startswith("none: ")
    if info["confinement"] != "bubblewrap":
        pytest.skip(f"bubblewrap cannot confine here ({info['confinement']}); .ci/run installs it")
    canary = tmp_path / "canary.txt"
    canary.write_text("host secret")
    with host.containers.create("windowsservercore") as c:
        c.start()
        p = c.exec("ping -t localhost")
        root = Path(next(s["root"] for s in sim.objects()["systems"] if s["id"] == c.id))
        seen = Path(f"/proc/{p.pid}/root")  # the process's own view of the file system
        assert (seen / str(root).lstrip("/") / "Windows").is_dir()
        assert not (seen / str(canary).lstrip("/")).exists()
        assert not (seen / "etc" / "passwd").exists() and not (seen / "home").exists()
        p.kill()
        c.stop()


def test_a_build_step_cannot_read_the_hosts_files(host: Host, clean: SimulatedHost, tmp_path: Path) -> None:
    from wincontainers.build import BuildStepFailed, build

    canary = tmp_path / "canary.txt"
    canary.write_text("host secret")
    context = tmp_path / "ctx"
    context.mkdir()
    windows = str(canary).replace("/", "\\")
    (context / "Dockerfile").write_text(f"FROM windowsservercore\nRUN type C:{windows} & type ..\\..\\..{windows}\n")
    with pytest.raises(BuildStepFailed) as failed:
        build(host, context, tags=["canary:1"], output=lambda _t: None)
    message = str(failed.value)
    assert "host secret" not in message
    assert message.count("The system cannot find the path specified.") == 2, message


def test_cmd_without_c_is_an_interactive_shell(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        piped = c.run("cmd", input=b"cd Windows\r\necho %CD%\r\nexit 4\r\n")
        assert piped.stdout.startswith(f"Microsoft Windows [Version {host.simulator.profile.version}]".encode())
        assert b"\r\nC:\\>cd Windows\r\n" in piped.stdout and b"\r\nC:\\Windows>echo %CD%\r\nC:\\Windows\r\n" in piped.stdout
        assert piped.returncode == 4
        console = c.exec("cmd", tty=True)
        assert console.stdin is not None
        console.stdin.write(b"echo typed\nexit\n")
        out, _ = console.communicate(timeout=30)
        assert b"typed\r\n" in out and console.returncode == 0
        c.stop()
