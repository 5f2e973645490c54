"""Every variable the service reads from the environment (settings and the run command) has a
row in the README's configuration table: an operator learns what can be set from there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where variables are read: the settings (and the helpers they call), and what `make run` runs.
SOURCES = ("moe_project/settings.py", ".ci/serve")
VARIABLE = re.compile(r"\b((?:MOE|DJANGO)_[A-Z0-9_]+)\b")
# Read by Django itself, not a setting of this service.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}


def configuration_table() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Configuration")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def read_variables(source: str) -> set[str]:
    text = (ROOT / source).read_text()
    if source.endswith(".py"):
        # Variables named in string literals (env_int("MOE_X", ...)), not in comments.
        text = "\n".join(re.findall(r"\"[^\"\n]*\"|'[^'\n]*'", text))
    return set(VARIABLE.findall(text)) - NOT_SETTINGS


def test_every_variable_read_has_a_row():
    table = set(VARIABLE.findall(configuration_table()))
    # "_FILE" variants are documented with their variable ("DJANGO_SECRET_KEY / _FILE").
    table |= {f"{name}_FILE" for name in table}

    read = set().union(*(read_variables(source) for source in SOURCES))

    assert len(read) > 40  # the extraction finds the settings (it read 60+ when written)
    assert sorted(read - table) == []
