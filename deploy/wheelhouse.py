"""The offline wheelhouse: the project's wheel and every dependency, built for the card's CPU and Python.

* :func:`build_project_wheel` builds ``maskgate-*.whl`` from this source tree (a clean copy of it, so
  stale ``build/`` output never leaks in), with ``SOURCE_DATE_EPOCH`` for reproducible zip entries.
* :func:`download` runs ``pip download --only-binary=:all: --platform ...`` for the target (aarch64,
  cp311 on Bookworm / cp313 on Trixie) into a cache folder keyed by what was asked, so later builds
  reuse it without the network.
* :func:`check_wheels` refuses wheels for another CPU or Python by their file names, and
  :func:`offline_check` asks pip to resolve the install exactly as first boot will (``--no-index``),
  for the target platform.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from maskgate.deploy.targets import Target
from maskgate.errors import DeployError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT = 600


@dataclass(frozen=True)
class WheelName:
    filename: str
    name: str  # normalized project name
    version: str
    pythons: tuple[str, ...]
    abis: tuple[str, ...]
    platforms: tuple[str, ...]


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_wheel_name(filename: str) -> WheelName:
    """Split ``name-version(-build)?-python-abi-platform.whl`` (compressed tag sets use '.')."""
    if not filename.endswith(".whl"):
        raise DeployError(f"{filename} is not a wheel (.whl)")
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        raise DeployError(f"{filename} is not a valid wheel file name")
    name, version = parts[0], parts[1]
    py, abi, plat = parts[-3:]
    return WheelName(filename, normalize(name), version, tuple(py.split(".")), tuple(abi.split(".")), tuple(plat.split(".")))


def compatible(w: WheelName, target: Target) -> str | None:
    """None if the wheel can be installed on the target, else why not."""
    platforms = set(target.platforms) | {"any"}
    # manylinux1/2010 are older aliases of manylinux_2_5 / 2_12: fine on any newer glibc.
    platforms |= {f"manylinux1_{target.arch}", f"manylinux2010_{target.arch}"}
    platforms |= {f"manylinux_2_{m}_{target.arch}" for m in range(5, 17)}
    if not platforms & set(w.platforms):
        return f"is for {', '.join(w.platforms)}, not {target.arch} with glibc {target.glibc[0]}.{target.glibc[1]}"
    minor = int(target.python.split(".")[1])
    ok_python = any(
        py in (target.cp, "py3", f"py3{minor}")
        or ("abi3" in w.abis and re.fullmatch(r"cp3(\d+)", py) and int(py[3:]) <= minor)
        for py in w.pythons
    )
    if not ok_python:
        return f"is for Python {', '.join(w.pythons)}, not {target.cp}"
    if not {target.cp, "abi3", "none"} & set(w.abis):
        return f"has ABI {', '.join(w.abis)}, not {target.cp}"
    return None


def check_wheels(paths: list[Path], target: Target) -> None:
    for p in paths:
        why = compatible(parse_wheel_name(p.name), target)
        if why:
            raise DeployError(f"wheel {p.name} {why}: the card runs Raspberry Pi OS {target.codename} ({target.cp}, {target.arch})")


def wheels_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DeployError(f"wheelhouse {folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix == ".whl" and p.is_file())


# ---------------------------------------------------------------------------------------------- #
# Reading wheels


def metadata(wheel: Path):
    """The METADATA of a wheel as an email.message.Message."""
    try:
        with zipfile.ZipFile(wheel) as z:
            name = next((n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None)
            if name is None:
                raise DeployError(f"{wheel.name} has no .dist-info/METADATA")
            return Parser().parsestr(z.read(name).decode("utf-8"))
    except zipfile.BadZipFile:
        raise DeployError(f"{wheel} is not a valid wheel (bad zip file)") from None


def installed_size(wheels: list[Path], block: int = 4096) -> tuple[int, int]:
    """Bytes and files that installing ``wheels`` into a venv writes: every member rounded up to whole
    ``block``\ s, and a compiled ``.pyc`` beside every ``.py`` (pip compiles them; taken as large as the
    source, which they rarely exceed).  First boot needs this much room on the card's root."""
    import zipfile

    nbytes = nfiles = 0
    for wheel in wheels:
        if not wheel.name.endswith(".whl"):
            continue
        with zipfile.ZipFile(wheel) as z:
            for member in z.infolist():
                if member.is_dir():
                    continue
                copies = 2 if member.filename.endswith(".py") else 1
                nbytes += copies * -(-member.file_size // block) * block
                nfiles += copies
    return nbytes, nfiles


def requirements(wheel: Path) -> list[str]:
    """The wheel's own requirements (no optional extras)."""
    return [r for r in metadata(wheel).get_all("Requires-Dist") or [] if not re.search(r"\bextra\s*==", r)]


def packaged_models(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return sorted(n for n in z.namelist() if re.fullmatch(r"maskgate/models/[^/]+\.tflite", n))


# ---------------------------------------------------------------------------------------------- #
# Building the project's wheel


def source_tree() -> Path | None:
    """The source checkout this maskgate runs from (editable install), or None for an installed wheel."""
    import maskgate

    root = Path(maskgate.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        if tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("name") != "maskgate":
            return None
    except tomllib.TOMLDecodeError:
        return None
    return root


def build_project_wheel(dest: Path, epoch: int, source: Path | None = None) -> Path:
    """Build maskgate's wheel from a clean copy of the source tree into ``dest``."""
    source = source or source_tree()
    if source is None:
        raise DeployError("this maskgate is not a source checkout, so it cannot build its own wheel: pass --wheel maskgate-*.whl")
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    package_dirs = set(project.get("tool", {}).get("setuptools", {}).get("package-dir", {}).values()) or {"maskgate"}
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    with tempfile.TemporaryDirectory(prefix="maskgate-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for item in source.iterdir():
            if item.is_file() and (item.name in {"pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in"} or item.name.upper().startswith(("README", "LICENSE", "COPYING"))):
                shutil.copy2(item, src / item.name)
        for d in sorted(package_dirs):
            if (source / d).is_dir():
                shutil.copytree(source / d, src / d, ignore=ignore)
        out = Path(tmp) / "out"
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
        log.info("building the maskgate wheel from %s", source)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(src)],
                capture_output=True, text=True, env=env, timeout=DOWNLOAD_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise DeployError("building the maskgate wheel took longer than 10 minutes") from None
        if proc.returncode != 0:
            raise DeployError(f"building the maskgate wheel failed: {_last(proc)}")
        built = list(out.glob("maskgate-*.whl"))
        if len(built) != 1:
            raise DeployError("building the maskgate wheel produced no maskgate-*.whl")
        dest.mkdir(parents=True, exist_ok=True)
        final = dest / built[0].name
        shutil.copyfile(built[0], final)
        return final


def _last(proc) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


# ---------------------------------------------------------------------------------------------- #
# Downloading the dependencies for the target


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "maskgate" / "wheelhouse"


def pip_target_args(target: Target) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", target.python, "--implementation", "cp"]
    for abi in target.abis:
        args += ["--abi", abi]
    for plat in target.platforms:
        args += ["--platform", plat]
    return args


def download(target: Target, reqs: list[str], *, refresh: bool = False, cache: Path | None = None) -> Path:
    """A folder of wheels for ``reqs`` on the target, from the cache or ``pip download``."""
    reqs = sorted(set(reqs))
    key_data = {"target": target.key, "glibc": target.glibc, "requirements": reqs, "constraints": list(target.constraints)}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:12]
    folder = (cache or cache_root()) / f"{target.key}-{key}"
    stamp = folder / "complete.json"
    if folder.is_dir() and stamp.is_file() and not refresh:
        files = json.loads(stamp.read_text())["wheels"]
        if all((folder / f).is_file() for f in files):
            log.info("using cached wheelhouse %s", folder)
            return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    constraints = partial / "constraints.txt"
    constraints.write_text("".join(c + "\n" for c in target.constraints))
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(partial),
           *pip_target_args(target), "-c", str(constraints), *reqs]
    log.info("downloading wheels for %s (%s): %s", target.key, ", ".join(target.constraints) or "no constraints", " ".join(reqs))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DeployError(f"pip download for {target.key} took longer than {DOWNLOAD_TIMEOUT} s (network?)") from None
    if proc.returncode != 0:
        raise DeployError(f"pip download for {target.key} failed: {_last(proc)}")
    wheels = wheels_in(partial)
    check_wheels(wheels, target)
    (partial / "complete.json").write_text(json.dumps({**key_data, "wheels": [w.name for w in wheels]}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def offline_check(wheelhouse: Path, target: Target, requirements_file: Path) -> str | None:
    """None if pip can install the requirements from the wheelhouse alone on the target, else pip's reason.

    ``pip download`` (into a scratch folder), not ``pip install --dry-run --target``: only download
    judges ``Requires-Python`` by ``--python-version``; install judges it by the Python running pip,
    which refused Trixie's NumPy (``>=3.12``) from a build host with Python 3.11.
    """
    with tempfile.TemporaryDirectory(prefix="maskgate-dryrun-") as tmp:
        cmd = [sys.executable, "-m", "pip", "--isolated", "download", "--disable-pip-version-check", "--no-index",
               "--find-links", str(wheelhouse), "--dest", tmp, *pip_target_args(target),
               "-r", str(requirements_file)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            return "pip did not finish resolving within 300 s"
    return None if proc.returncode == 0 else _last(proc)


__all__ = [
    "WheelName", "parse_wheel_name", "compatible", "check_wheels", "wheels_in", "metadata", "requirements",
    "packaged_models", "source_tree", "build_project_wheel", "download", "offline_check",
    "cache_root", "normalize",
]
