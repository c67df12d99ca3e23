"""The deployment: requirements.lock pins what pyproject.toml asks for; the Dockerfile
installs from it, on a pinned base, as a user that is not root."""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
# name:tag@sha256:digest, the tag carrying a full X.Y.Z version.
PINNED_IMAGE = re.compile(r"^[\w./-]+:(?P<version>\d+\.\d+\.\d+)[\w.-]*@sha256:[0-9a-f]{64}$")


def logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") and not current:
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def lock_pins(text: str) -> dict[str, tuple[Requirement, list[str]]]:
    """Each locked requirement by canonical name, with its hashes."""
    pins: dict[str, tuple[Requirement, list[str]]] = {}
    for line in logical_lines(text):
        words = shlex.split(line, comments=True)
        hashes = [w.removeprefix("--hash=") for w in words if w.startswith("--hash=")]
        spec = " ".join(w for w in words if not w.startswith("--"))
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name not in pins, f"{name} locked twice"
        pins[name] = (req, hashes)
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def pinned_version(req: Requirement) -> Version:
    """The one ``==`` version of a lock line (anything else fails)."""
    specs = list(req.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{req} is not pinned with =="
    assert "*" not in specs[0].version, f"{req} is a wildcard, not a pin"
    return Version(specs[0].version)


def extra_requirements(req: Requirement) -> list[Requirement]:
    """What ``req``'s extras add, from the installed distribution's metadata."""
    try:
        declared = importlib.metadata.requires(req.name) or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{req.name} is not installed: cannot read what its extras need")
    found = []
    for line in declared:
        dep = Requirement(line)
        if dep.marker and any(dep.marker.evaluate({"extra": extra}) for extra in req.extras):
            if not dep.marker.evaluate({"extra": ""}):  # only what the extra adds
                found.append(dep)
    return found


def test_lock_pins_every_runtime_dependency_within_its_range():
    pins = lock_pins(LOCK.read_text())
    assert pins, "requirements.lock is empty"
    for name, (req, hashes) in pins.items():
        pinned_version(req)
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), f"{name} has no sha256 hash"
    for req in runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} (pyproject.toml) is not in requirements.lock"
        version = pinned_version(pins[name][0])
        assert req.specifier.contains(version, prereleases=True), f"{name}=={version} is outside {req.specifier}"
        for dep in extra_requirements(req):
            dep_name = canonicalize_name(dep.name)
            assert dep_name in pins, f"{dep_name} (from {req}) is not in requirements.lock"
            assert dep.specifier.contains(pinned_version(pins[dep_name][0]), prereleases=True)


def test_lock_says_how_to_regenerate_it():
    header = LOCK.read_text().splitlines()[:5]
    assert any("uv pip compile pyproject.toml" in line and "--generate-hashes" in line for line in header)


class Instruction:
    def __init__(self, line: str) -> None:
        self.keyword, _, self.args = line.partition(" ")
        self.keyword = self.keyword.upper()
        self.args = self.args.strip()


def dockerfile() -> list[Instruction]:
    return [Instruction(line) for line in logical_lines(DOCKERFILE.read_text())]


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def base_images(instructions: list[Instruction]) -> list[str]:
    """Each stage's FROM image, ARG defaults (declared before the first FROM) applied."""
    args: dict[str, str] = {}
    images = []
    for ins in instructions:
        if ins.keyword == "ARG" and not images and "=" in ins.args:
            key, _, value = ins.args.partition("=")
            args[key.strip()] = value.strip().strip('"')
        if ins.keyword == "FROM":
            image = ins.args.split()[0]
            images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image))
    return images


def test_dockerfile_base_is_pinned_to_an_exact_version_and_digest():
    images = base_images(dockerfile())
    assert images
    for image in images:
        match = PINNED_IMAGE.match(image)
        assert match, f"{image} is not pinned by exact version and digest"
    # The lock is resolved for the base's own Python.
    versions = {PINNED_IMAGE.match(i).group("version") for i in images}
    assert len(versions) == 1
    assert f"--python-version {versions.pop()}" in LOCK.read_text().splitlines()[1]


def test_dockerfile_runs_as_a_user_that_is_not_root():
    final = stages(dockerfile())[-1]
    users = [ins.args for ins in final if ins.keyword == "USER"]
    assert users, "the runtime stage has no USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit(), "a numeric uid lets the runtime check it is not root"
    assert int(user) != 0 and user != "root"
    assert not group or (group.isdigit() and int(group) != 0)
    # Nothing after USER switches back.
    after = final[[i.keyword for i in final].index("USER"):]
    assert not any(i.keyword == "USER" and i.args.split(":")[0] in ("0", "root") for i in after)


def test_dockerfile_installs_from_the_lock_and_the_project_without_its_dependencies():
    runs = [ins.args for ins in dockerfile() if ins.keyword == "RUN"]
    copies = [ins.args for ins in dockerfile() if ins.keyword == "COPY"]
    assert any("requirements.lock" in c.split() for c in copies)
    installs = [c for run in runs for c in re.split(r"&&|;", run) if re.search(r"\bpip install\b", c)]
    lock = [c for c in installs if "-r requirements.lock" in c]
    assert lock and all("--require-hashes" in c for c in lock)
    project = [c for c in installs if c.split()[-1] == "."]
    assert project and all("--no-deps" in c.split() for c in project)
    assert set(installs) == set(lock) | set(project), f"an install outside the lock: {installs}"
    # The runtime stage copies the built environment and installs nothing itself.
    final = stages(dockerfile())[-1]
    assert not any(i.keyword == "RUN" and "pip" in i.args for i in final)
    assert any(i.keyword == "COPY" and i.args.startswith("--from=") for i in final)
