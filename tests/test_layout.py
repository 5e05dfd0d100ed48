"""Shape of the code: layers point down, heavy imports stay lazy, every command is documented."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"indexer": 0, "search": 1, "server": 2, "cli": 3}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_only_point_down(package: str) -> None:
    for module in (ROOT / package).rglob("*.py"):
        for name in imported_packages(module) & set(LAYERS):
            assert LAYERS[name] <= LAYERS[package], f"{module.relative_to(ROOT)} imports {name}"


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"], ["info", "--help"]])
def test_light_commands_do_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys; from cli.main import app; from typer.testing import CliRunner; "
        f"r = CliRunner().invoke(app, {argv!r}); assert r.exit_code == 0, r.output; "
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_info_does_not_import_torch(sample_index: Path) -> None:
    code = (
        "import sys; from cli.main import app; from typer.testing import CliRunner; "
        f"r = CliRunner().invoke(app, ['info', '--index', {str(sample_index)!r}]); assert r.exit_code == 0; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def commands() -> list[str]:
    return sorted(c.name or c.callback.__name__ for c in app.registered_commands if c.callback)


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help_and_readme_docs(command: str) -> None:
    spec = next(c for c in app.registered_commands if (c.name or c.callback.__name__) == command)
    assert spec.callback.__doc__, f"{command} has no help text"
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and len(result.stdout) > 100
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"semindex {command}" in readme, f"README does not document 'semindex {command}'"
