"""Every fenced shell and Python block of the READMEs is checked, so the documented commands cannot drift.

Shell blocks (```bash, ```sh, ```shell): parsed by `bash -n`; every `make ...` line dry-runs (`make -n`)
with its own arguments; every `python -m MOD` / `torchrun ... -m MOD` names an importable module that
can run as a program; every `.venv/bin/TOOL` and every repository path (`*.py`, `*.ipynb`) exists; and
a bare command that only the environment provides (python, pytest, torchrun, ...) needs
`source .venv/bin/activate` earlier in the same file. Python blocks (```python) run in a subprocess from
the repository root with SAR_PROFILE=smoke and a timeout, so they must be runnable at smoke scale.

`<!-- readme-test: skip -->` on the line before a fence skips that block (e.g. paper-profile commands
that need data or GPUs). The environment is the one running the tests: `make test` runs them in .venv.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
READMES = [p for p in (REPO / "README.md", REPO / "notebooks" / "README.md", REPO / "benchmarks" / "README.md",
                       REPO / "results" / "README.md", *sorted((REPO / "docs").glob("*.md"))) if p.exists()]
VENV_BIN = Path(sys.executable).parent  # .venv/bin under `make test`
SKIP_MARK = "<!-- readme-test: skip -->"
SHELL = {"bash", "sh", "shell"}
ACTIVATE = "source .venv/bin/activate"
PYTHON_TIMEOUT_S = 300
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)[^\n]*$")
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: bool
    text_before: str  # the file up to the fence, for "was the environment activated?"

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}:{self.lang}"


def fenced_blocks(path: Path) -> list[Block]:
    """The file's fenced code blocks, in order (a fence closes on the same character, at least as long)."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m["fence"], i
        i += 1
        body = []
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and set(lines[i].strip()) == {fence[0]}):
            body.append(lines[i][len(m["indent"]):])
            i += 1
        i += 1
        skip = start > 0 and lines[start - 1].strip() == SKIP_MARK
        blocks.append(Block(path, start + 1, m["lang"].lower(), "\n".join(body) + "\n", skip,
                            "\n".join(lines[:start])))
    return blocks


def commands(code: str) -> list[list[str]]:
    """Simple commands of a shell block as token lists: continuations joined, comments dropped, split on
    operators, leading VAR=value assignments removed."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lex.whitespace_split, lex.commenters = True, "#"
        current: list[str] = []
        for tok in list(lex) + [";"]:
            if tok in OPERATORS:
                while current and re.match(r"^\w+=", current[0]):
                    current.pop(0)
                if current:
                    out.append(current)
                current = []
            else:
                current.append(tok)
    return out


def runs_as_module(name: str) -> bool:
    """`python -m name` works: a package with __main__, or a module that checks `__name__ == "__main__"`."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return False
    if spec.submodule_search_locations is not None:
        return importlib.util.find_spec(f"{name}.__main__") is not None
    source = Path(spec.origin).read_text() if spec.origin and spec.origin.endswith(".py") else ""
    return "__main__" in source


def check_command(cmd: list[str], block: Block) -> list[str]:
    """Problems with one simple command (empty: fine)."""
    problems = []
    word = cmd[0]
    if word.startswith(".venv/bin/"):
        if not (VENV_BIN / word.removeprefix(".venv/bin/")).exists():
            problems.append(f"{word}: not installed by `make setup` (no {VENV_BIN / Path(word).name})")
    elif (VENV_BIN / word).exists() and ACTIVATE not in block.text_before:
        problems.append(f"`{word}` comes from .venv: write .venv/bin/{word}, or say `{ACTIVATE}` earlier in the file")
    for i, tok in enumerate(cmd):
        if tok == "-m" and i + 1 < len(cmd) and (Path(word).name.startswith("python") or Path(word).name == "torchrun"):
            if not runs_as_module(cmd[i + 1]):
                problems.append(f"`{' '.join(cmd)}`: module {cmd[i + 1]} is not importable or has no __main__")
        if re.fullmatch(r"[\w./-]+\.(py|ipynb)", tok) and not tok.startswith("/") and i > 0 and cmd[i - 1] != "-c":
            if not (REPO / tok).exists():
                problems.append(f"`{' '.join(cmd)}`: {tok} does not exist in the repository")
    if word == "make":
        dry = subprocess.run(["make", "-n", "-C", str(REPO), *cmd[1:]], capture_output=True, text=True, timeout=60)
        if dry.returncode != 0:
            problems.append(f"`{' '.join(cmd)}`: make -n failed: {dry.stderr.strip().splitlines()[-1:]}")
    return problems


BLOCKS = [b for path in READMES for b in fenced_blocks(path) if b.lang in SHELL | {"python", "py"}]


def test_the_readme_has_checkable_blocks():
    assert any(b.lang in SHELL for b in BLOCKS) and any(b.lang in ("python", "py") for b in BLOCKS)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang in SHELL], ids=lambda b: b.id)
def test_shell_block(block: Block):
    if block.skip:
        pytest.skip(SKIP_MARK)
    parsed = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
    assert parsed.returncode == 0, f"{block.id}: bash -n: {parsed.stderr}"
    problems = [p for cmd in commands(block.code) for p in check_command(cmd, block)]
    assert not problems, f"{block.id}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang in ("python", "py")], ids=lambda b: b.id)
def test_python_block_runs_at_smoke_scale(block: Block):
    if block.skip:
        pytest.skip(SKIP_MARK)
    env = dict(os.environ, SAR_PROFILE="smoke", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, "-c", block.code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=PYTHON_TIMEOUT_S)
    assert proc.returncode == 0, f"{block.id} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


# The checker itself, on a made-up README: it must catch what issue reports showed going wrong.
def test_checker_catches_broken_commands(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "```bash\nmake no-such-target\npython -m sarlib.no_such_module\n.venv/bin/no-such-tool\n"
        "pytest --nbval-lax notebooks/\n```\n\n"
        f"{SKIP_MARK}\n```python\nraise SystemExit(1)\n```\n\n"
        f"then `{ACTIVATE}`\n\n```sh\npytest -q && python -m sarlib.train --help  # fine now\n```\n"
    )
    first, skipped, second = fenced_blocks(readme)
    problems = [p for cmd in commands(first.code) for p in check_command(cmd, first)]
    expected = ["no-such-target", "`python` comes from .venv", "no_such_module", "no-such-tool",
                "`pytest` comes from .venv"]
    assert len(problems) == len(expected) and all(e in p for e, p in zip(expected, problems)), problems
    assert skipped.skip and skipped.lang == "python"
    assert [c[0] for c in commands(second.code)] == ["pytest", "python"]
    assert not [p for cmd in commands(second.code) for p in check_command(cmd, second)]


def test_commands_split_on_operators_and_continuations():
    code = "A=1 make bench \\\n  PROFILE=smoke && cd x; echo 'a # b' # comment\n"
    assert commands(code) == [["make", "bench", "PROFILE=smoke"], ["cd", "x"], ["echo", "a # b"]]


def test_readme_results_section_matches_the_committed_results():
    """The verdicts in README.md and the tables in results/README.md are generated from results/: editing
    one by hand, or committing new results without `python -m sarlib.report.readme`, fails here."""
    from sarlib.report import readme

    assert readme.update(REPO / "README.md", REPO / "results", check=True), (
        "a generated section is out of date: run `python -m sarlib.report.readme` and commit README.md and "
        "results/README.md")


def test_readme_is_short_and_every_link_resolves():
    """The README stays an entry page (details live in docs/), and no link of any document is dead."""
    assert (REPO / "README.md").stat().st_size <= 12 * 1024
    link = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")
    dead = []
    for path in READMES:
        for target in link.findall(path.read_text()):
            if "://" not in target and not (path.parent / target).exists():
                dead.append(f"{path.relative_to(REPO)} -> {target}")
    assert dead == []


SPEC_REF = re.compile(r"spec\s+sections?\s+(\d+)", re.IGNORECASE)


def test_every_spec_reference_names_a_section_of_docs_spec():
    """Code and documents cite "spec section N": each N must be a numbered section of docs/spec.md."""
    sections = set(re.findall(r"^## (\d+)\. ", (REPO / "docs" / "spec.md").read_text(), re.M))
    cited = {}
    files = [*REPO.glob("*.md"), *(REPO / "docs").glob("*.md"), *(REPO / "sarlib").rglob("*.py"),
             *(REPO / "notebooks").glob("*"), *(REPO / "benchmarks").glob("*"), REPO / "Makefile"]
    for path in files:
        if path.is_file():
            for number in SPEC_REF.findall(path.read_text(errors="replace")):
                cited.setdefault(number, path.relative_to(REPO))
    assert cited, "no spec reference found: the pattern is wrong"
    missing = {n: str(p) for n, p in cited.items() if n not in sections}
    assert missing == {}, f"spec sections cited but absent from docs/spec.md: {missing}"


def test_committed_results_hold_no_machine_paths_or_warnings():
    """Executed notebooks and CSVs are published as they are: no absolute paths of the machine that ran
    them, and no warning text in any notebook output."""
    import re

    machine_path = re.compile(r"(/work/|/home/|/root/|/tmp/|/Users/|site-packages|[A-Z]:\\\\)")
    warning = re.compile(r"(Warning:|WARNING|KeyboardInterrupt|Traceback)")
    checked = 0
    for path in sorted((REPO / "results").rglob("*")):
        if path.suffix not in (".ipynb", ".csv") or "runs" in path.relative_to(REPO / "results").parts:
            continue
        if path.relative_to(REPO / "results").parts[0] in ("smoke", "paper", "verify", "bench"):
            continue  # not committed
        text = path.read_text()
        checked += 1
        assert not machine_path.search(text), f"{path} holds a machine path: {machine_path.search(text).group(0)}"
        if path.suffix == ".ipynb":
            assert not warning.search(text), f"{path} holds warning text: {warning.search(text).group(0)}"
    assert checked > 0
