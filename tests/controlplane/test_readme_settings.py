"""Configuration far from its code (STYLE.md): every ``TOLLGATE_*`` variable in the README's configuration table
is read by the code, every one the code reads is in the table, and every setting read from one is used.

The code is read as source (the ``controlplane.env`` calls of the application's modules), so a variable read
only under some settings module (production) counts too. The test settings module is not part of the product.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("controlplane", "governance", "monitoring")
SETTINGS = ROOT / "controlplane" / "settings"
NOT_PRODUCT = {SETTINGS / "test.py"}
ENV_HELPERS = {"raw", "string", "boolean", "integer", "string_list", "time_limits"}
NAME = re.compile(r"TOLLGATE_[A-Z0-9_]+")


def _modules() -> dict[Path, ast.Module]:
    files = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))
    return {
        path: ast.parse(path.read_text(), filename=str(path))
        for path in files
        if "migrations" not in path.parts and path not in NOT_PRODUCT
    }


MODULES = _modules()


def _env_names(node: ast.AST) -> set[str]:
    """The ``TOLLGATE_*`` names passed to ``env.<helper>(...)`` calls inside ``node``."""
    names = set()
    for call in ast.walk(node):
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "env"
            and call.func.attr in ENV_HELPERS
        ):
            continue
        for argument in [*call.args, *(keyword.value for keyword in call.keywords)]:
            if isinstance(argument, ast.Constant) and NAME.fullmatch(str(argument.value)):
                names.add(argument.value)
    return names


def read_by_the_code() -> set[str]:
    return set().union(*(_env_names(module) for module in MODULES.values()))


def in_the_readme() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \|", section, re.MULTILINE)
    assert len(rows) >= 20, "the configuration table was not found in README.md"
    return {name for name in rows if name.startswith("TOLLGATE_")}


def test_every_setting_in_the_readme_is_read_by_the_code():
    assert in_the_readme() - read_by_the_code() == set()


def test_every_setting_the_code_reads_is_in_the_readme():
    assert read_by_the_code() - in_the_readme() == set()


def _settings_from_the_environment() -> dict[str, Path]:
    """``TOLLGATE_*`` Django settings assigned from an environment variable, with the module assigning them."""
    found = {}
    for path, module in MODULES.items():
        if path.parent != SETTINGS:
            continue
        for statement in module.body:
            if isinstance(statement, ast.Assign) and _env_names(statement.value):
                for target in statement.targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and NAME.fullmatch(name.id):
                            found[name.id] = path
    return found


def _uses(setting: str) -> list[str]:
    """Where the code reads ``setting``: ``settings.NAME``, ``getattr(settings, "NAME")``, or another setting
    computed from it."""
    uses = []
    for path, module in MODULES.items():
        for node in ast.walk(module):
            if (
                (isinstance(node, ast.Attribute) and node.attr == setting)
                or (isinstance(node, ast.Constant) and node.value == setting and path.parent != SETTINGS)
                or (isinstance(node, ast.Name) and node.id == setting and isinstance(node.ctx, ast.Load))
            ):
                uses.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return uses


def test_every_setting_read_from_the_environment_is_used():
    defined = _settings_from_the_environment()
    assert "TOLLGATE_AUDIT_CHECKPOINT_MINUTES" in defined
    assert sorted(name for name in defined if not _uses(name)) == []
