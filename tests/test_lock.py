"""The deploy's lock: requirements.txt pins every runtime dependency of pyproject.toml, as the README says.

`.ci/run` installs it in a fresh virtualenv and starts the Procfile's command from it; these checks fail sooner,
and say which dependency the lock forgot after an edit of pyproject.toml.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def locked() -> dict[str, Version]:
    """Each pinned package of requirements.txt (comment lines aside): every line must be `name==version`."""
    pins: dict[str, Version] = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _PIN.match(line.strip())
        assert match, f"requirements.txt: {line!r} is not pinned with =="
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    pins = locked()
    for text in PYPROJECT["project"]["dependencies"]:
        wanted = Requirement(text)
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted.name} (pyproject.toml) is not in requirements.txt: refresh the lock"
        assert wanted.specifier.contains(pins[name]), f"requirements.txt pins {name} {pins[name]}, outside {wanted}"


def test_the_lock_says_how_it_was_made_and_the_readme_says_it_too() -> None:
    header = (ROOT / "requirements.txt").read_text()
    command = re.search(r"^#\s+(uv pip compile .+)$", header, re.MULTILINE)
    assert command, "requirements.txt does not name the command that made it"
    assert command[1] in (ROOT / "README.md").read_text(), "the README does not show the lock's command"


def test_the_python_version_platforms_read_is_one_the_project_supports() -> None:
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version), version
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{version}.0")
    # The lock was resolved for the version the platform will run.
    assert f"--python-version {version}" in (ROOT / "requirements.txt").read_text()
