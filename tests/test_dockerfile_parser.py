"""The Dockerfile parser and word lexer against BuildKit's own test data (tests/data/dockerfile-parser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wincontainers.build import parse_dockerfile
from wincontainers.build.dockerfile import (
    DockerfileParseError,
    Instruction,
    detect_syntax,
    heredocs_from_line,
    parse_directives,
    parse_heredoc,
)
from wincontainers.build.lexer import ShellLex, ShellLexError
from tests.conftest import DATA

CORPUS = DATA / "dockerfile-parser"
POSITIVE = sorted(p.parent for p in CORPUS.glob("*/*/result") if (p.parent / "Dockerfile").exists())
NEGATIVE = sorted(p.parent for p in (CORPUS / "testfiles-negative").glob("*/Dockerfile"))


def _expected(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((CORPUS / "derived" / name / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", POSITIVE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_positive_cases_dump_exactly_their_result(case: Path) -> None:
    result = parse_dockerfile((case / "Dockerfile").read_bytes())
    assert result.dump() + "\n" == (case / "result").read_bytes().decode("utf-8")


@pytest.mark.parametrize("case", NEGATIVE, ids=lambda p: p.name)
def test_negative_cases_are_rejected_with_a_line(case: Path) -> None:
    with pytest.raises(DockerfileParseError) as info:
        parse_dockerfile((case / "Dockerfile").read_bytes())
    assert "Dockerfile" in str(info.value)


def test_the_corpus_is_all_there() -> None:
    assert len(POSITIVE) >= 25 and len(NEGATIVE) >= 2


def _env_var_cases() -> list[tuple[str, str, str]]:
    cases = []
    for line in (CORPUS / "shell-lexer" / "envVarTest").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        platform, word, expected = (part.strip() for part in line.split("|", 2))
        cases.append((platform, word, expected))
    return cases


@pytest.mark.parametrize("windows", [False, True], ids=["linux", "windows"])
def test_word_expansion_table(windows: bool) -> None:
    env = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}
    checked = 0
    for platform, word, expected in _env_var_cases():
        if platform == ("U" if windows else "W"):
            continue
        try:
            got = ShellLex("\\", case_insensitive=windows).process_word(word, env)
        except ShellLexError:
            got = "error"
        assert got == expected, (platform, word)
        checked += 1
    assert checked > 150


def test_word_splitting_table() -> None:
    env: dict[str, str] = {}
    checked = 0
    for line in (CORPUS / "shell-lexer" / "wordsTest").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("ENV "):
            key, _, value = line[4:].partition("=")
            env[key] = value
            continue
        word, _, expected = line.partition("|")
        try:
            got = ",".join(ShellLex("\\").process_words(word.strip(), env))
        except ShellLexError:
            got = "error"
        assert got == expected.lstrip(" "), word
        checked += 1
    assert checked >= 20


def test_heredoc_json_form_has_no_heredocs() -> None:
    result = parse_dockerfile((CORPUS / "derived" / "heredoc-json-form" / "Dockerfile").read_text())
    for child in _expected("heredoc-json-form")["children"]:
        assert list(result.instructions[child["index"]].heredocs) == (child["heredocs"] or [])


def test_line_numbers() -> None:
    result = parse_dockerfile((CORPUS / "derived" / "line-numbers" / "Dockerfile").read_bytes())
    expected = _expected("line-numbers")
    assert (result.start_line, result.end_line) == (expected["ast"]["start_line"], expected["ast"]["end_line"])
    assert [[i.start_line, i.end_line] for i in result.instructions] == expected["children"]


def test_directive_tables() -> None:
    expected = _expected("directives")
    for case in expected["escape"]:
        found = parse_directives(case["input"])
        assert [{"name": d.name, "value": d.value} for d in found] == case["directives"]
    for case in expected["syntax"]:
        data = bytes.fromhex(case.get("input_hex_prefix", "")) + case["input"].encode()
        detected = detect_syntax(data)
        assert (detected is not None) is case["ok"], case["input"]
        if detected is not None:
            ref, cmdline, line = detected
            assert ref == case["ref"]
            if "cmdline" in case:
                assert cmdline == case["cmdline"]
            if "line" in case:
                assert line == case["line"]


def test_heredoc_word_tables() -> None:
    expected = _expected("heredoc-words")
    words = expected["parse_heredoc_word"]
    for word in words["valid"]:
        doc = parse_heredoc(word)
        assert doc is not None and doc.name == "EOF", word
    for word in words["invalid"]:
        with pytest.raises(ShellLexError):
            parse_heredoc(word)
    for word in words["not_heredoc"]:
        assert parse_heredoc(word) is None, word
    for case in expected["heredocs_from_line"]:
        assert [d.name for d in heredocs_from_line(case["line"])] == case["names"], case["line"]
    for case in expected["chomp"]:
        assert parse_heredoc("<<-EOF").chomp  # type: ignore[union-attr]
        from wincontainers.build.dockerfile import Heredoc

        assert Heredoc("EOF", case["input"], chomp=True).text == case["output"]


# -- beyond the corpus: what a Windows Dockerfile does ---------------------------------------------


def test_backtick_escape_keeps_windows_paths_and_continues_lines() -> None:
    result = parse_dockerfile(
        "# escape=`\r\n"
        "FROM mcr.microsoft.com/windows/servercore:ltsc2019\r\n"
        "WORKDIR C:\\app\\\r\n"
        "RUN powershell -Command `\r\n"
        "    $ErrorActionPreference = 'Stop'; `\r\n"
        "    # a comment inside the continuation\r\n"
        "    Write-Host C:\\done\\\r\n"
        "COPY [\"src\\\\\", \"C:\\\\app\\\\\"]\r\n"
    )
    assert result.escape == "`" and result.directive("escape") == "`"
    assert result.dump() == (
        '(from "mcr.microsoft.com/windows/servercore:ltsc2019")\n'
        '(workdir "C:\\\\app\\\\")\n'
        '(run "powershell -Command     $ErrorActionPreference = \'Stop\';     Write-Host C:\\\\done\\\\")\n'
        '(copy "src\\\\" "C:\\\\app\\\\")'
    )
    run = result.instructions[2]
    assert (run.start_line, run.end_line) == (4, 7) and not run.json
    assert result.instructions[3].json


def test_an_escaped_backslash_at_the_end_does_not_continue() -> None:
    result = parse_dockerfile("FROM x\nWORKDIR c:\\\\\nRUN dir\n")  # docker/for-win#5254
    assert [i.dump() for i in result.instructions] == ['from "x"', 'workdir "c:\\\\\\\\"', 'run "dir"']


def test_heredocs_keep_their_bodies_and_line_endings() -> None:
    result = parse_dockerfile(
        "FROM x\r\n"
        "RUN <<EOF\r\n"
        "echo hi\r\n"
        "# not a comment here\r\n"
        "EOF\r\n"
        "COPY <<-\"A\" <<B /dst/\n"
        "\tfirst $X\n"
        "\tA\n"
        "second\n"
        "B\n"
        "ONBUILD RUN <<END\n"
        "later\n"
        "END\n"
    )
    run, copy, onbuild = result.instructions[1:]
    assert run.heredocs[0].content == "echo hi\r\n# not a comment here\r\n" and run.heredocs[0].expand
    assert (run.start_line, run.end_line) == (2, 5)
    first, second = copy.heredocs
    assert (first.name, first.chomp, first.expand, first.text) == ("A", True, False, "first $X\n")
    assert (second.name, second.content) == ("B", "second\n")
    assert copy.dump() == 'copy "<<-\\"A\\"" "<<B" "/dst/"'
    assert onbuild.heredocs[0].content == "later\n"
    assert isinstance(onbuild.args[0], Instruction) and onbuild.dump() == 'onbuild (run "<<END")'


@pytest.mark.parametrize("text,where,message", [
    ("FROM x\nRUN <<EOF\necho\n", 2, "unterminated heredoc"),
    ("FROM x\nCMD [\"a\", 1]\n", 2, "strings only"),
    ("# escape=\\\n# escape=`\nFROM x\n", 2, "only one escape"),
    ("# escape=x\nFROM x\n", 1, "invalid escape token"),
    ("FROM x\nLABEL a=b c\n", 2, "can't find ="),
    ("\n# only a comment\n", None, "no instructions"),
    ("FROM x\nRUN " + "a" * 70000 + "\n", 2, "max allowed size"),
])
def test_errors_name_the_line(text: str, where: int | None, message: str) -> None:
    with pytest.raises(DockerfileParseError) as info:
        parse_dockerfile(text)
    assert message in str(info.value)
    if where is not None:
        assert info.value.line == where
        assert str(info.value).startswith((f"Dockerfile line {where}:", f"Dockerfile lines {where}-"))


def test_bom_unknown_instructions_flags_and_invalid_json() -> None:
    result = parse_dockerfile(b"\xef\xbb\xbfFROM --platform=windows/amd64 x AS build\n"
                              b"FROB nicate\n"
                              b"COPY --from=build --chown=\"a b\" -- --weird /y\n"
                              b"CMD ['single', 'quotes']\n"
                              b"RUN [\"a\"] trailing\n")
    assert result.dump().splitlines() == [
        '(from ["--platform=windows/amd64"] "x" "AS" "build")',
        '(frob "")',
        '(copy ["--from=build" "--chown=a b"] "--weird" "/y")',
        "(cmd \"['single', 'quotes']\")",
        '(run "a")',  # BuildKit decodes the first JSON value and ignores the rest
    ]
    assert not result.instructions[3].json and result.instructions[4].json


def _with_alarm(seconds: int):  # type: ignore[no-untyped-def]
    """A guard that fails a test that would hang (a quadratic expansion), not a timing."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def guard():  # type: ignore[no-untyped-def]
        def expired(_signum, _frame):  # type: ignore[no-untyped-def]
            raise TimeoutError(f"did not finish in {seconds} s")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return guard()


def test_long_values_expand_in_linear_time_and_split_on_their_spaces() -> None:
    from wincontainers.build.lexer import ShellLex

    value = "ab " * 300_000  # 900,000 characters: within MAX_WORD
    lex = ShellLex(case_insensitive=True)
    with _with_alarm(8):  # linear: well under a second; quadratic (the old code): 12 s and more
        words = lex.process_words("$A", {"A": value})
        quoted = lex.process_word('"$A"x', {"A": value})
        long_word = lex.process_words("$B", {"B": "b" * 1_000_000})  # one word, built piece by piece
    assert len(words) == 300_000 and set(words) == {"ab"}
    assert quoted == value + "x"
    assert long_word == ["b" * 1_000_000]


def test_an_expansion_past_the_word_limit_is_refused() -> None:
    from wincontainers.build.dockerfile import parse_dockerfile
    from wincontainers.build.instructions import BuildInstructionError, typed
    from wincontainers.build.lexer import MAX_WORD

    doubling = parse_dockerfile(b"FROM x\nARG A=xx\n" + b"ARG A=$A$A\n" * 34)
    scope: dict[str, str] = {}
    with _with_alarm(20), pytest.raises(BuildInstructionError, match=f"longer than {MAX_WORD}"):
        for node in doubling.instructions[1:]:
            for name, default in typed(node, scope).args:  # type: ignore[union-attr]
                scope[name] = default or ""
    assert len(scope["A"]) <= MAX_WORD


def test_the_environment_is_bounded() -> None:
    from wincontainers.build.dockerfile import parse_dockerfile
    from wincontainers.build.instructions import MAX_ENV_VARIABLES, BuildInstructionError, apply_to_config, typed
    from wincontainers import errors

    lines = " \\\n".join(" ".join(f"V{i}_{j}=v" for j in range(1000)) for i in range(200))
    many = parse_dockerfile(("FROM x\nENV " + lines + "\n").encode())
    with _with_alarm(30), pytest.raises(BuildInstructionError, match=str(MAX_ENV_VARIABLES)):
        typed(many.instructions[1], {})
    config: dict[str, object] = {}
    big = parse_dockerfile(b'FROM x\nENV A="$X" B="$X"\n')
    with pytest.raises(errors.BadInput, match="environment would be larger"):
        apply_to_config(config, typed(big.instructions[1], {"X": "x" * 600_000}))
    assert config == {}
    apply_to_config(config, typed(parse_dockerfile(b"FROM x\nENV path=a PATH=b\n").instructions[1], {}))
    assert config["Env"] == ["PATH=b"]  # Windows names: one variable, the last spelling wins
