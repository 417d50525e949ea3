"""The offline-install check judges the wheelhouse by the card's Python, not by the Python running the build.

Regression: ``maskgate image build`` on a Trixie base (Python 3.13) from a build host with Python 3.11
refused the real wheelhouse: "Package 'numpy' requires a different Python: 3.11.7 not in '>=3.12'".
"""

from __future__ import annotations

import sys

import pytest

import deploy_helpers as h
from maskgate.deploy import targets, wheelhouse

TRIXIE, BOOKWORM = targets.TARGETS["trixie"], targets.TARGETS["bookworm"]


def requirements(folder, *lines):
    path = folder / "requirements.txt"
    path.write_text("".join(f"{ln}\n" for ln in lines))
    return path


def test_requires_python_is_judged_by_the_target(tmp_path):
    wh = tmp_path / "wh"
    h.make_wheel(wh, "needs-py312", requires_python=">=3.12")
    h.make_wheel(wh, "gate-app", requires=("needs-py312",))
    req = requirements(tmp_path, "gate-app")
    assert wheelhouse.offline_check(wh, TRIXIE, req) is None
    problem = wheelhouse.offline_check(wh, BOOKWORM, req)
    assert problem and "needs-py312" in problem and "3.11" in problem and ">=3.12" in problem
    # the host's own version must play no part either way
    assert f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}" not in problem


def test_a_missing_dependency_is_named(tmp_path):
    wh = tmp_path / "wh"
    h.make_wheel(wh, "gate-app", requires=("not-in-the-wheelhouse>=1",))
    problem = wheelhouse.offline_check(wh, TRIXIE, requirements(tmp_path, "gate-app"))
    assert problem and "not-in-the-wheelhouse" in problem


@pytest.mark.slow
def test_the_real_trixie_wheelhouse_installs_offline_on_cp313(tmp_path):
    """The real aarch64 set for Trixie (pip download once, cached): NumPy 2 needs Python >= 3.12."""
    wheel = wheelhouse.build_project_wheel(tmp_path / "own", 315_619_200)
    deps = wheelhouse.requirements(wheel)
    folder = wheelhouse.download(TRIXIE, deps + list(TRIXIE.extras))
    view = tmp_path / "view"
    view.mkdir()
    for w in [wheel, *wheelhouse.wheels_in(folder)]:
        (view / w.name).symlink_to(w)
    version = wheelhouse.parse_wheel_name(wheel.name).version
    req = requirements(tmp_path, f"maskgate=={version}")
    assert wheelhouse.offline_check(view, TRIXIE, req) is None
    names = {wheelhouse.parse_wheel_name(w.name).name: wheelhouse.parse_wheel_name(w.name) for w in wheelhouse.wheels_in(folder)}
    assert int(names["numpy"].version.split(".")[0]) >= 2
    assert "cp313" in names["numpy"].pythons
    # the same set cannot install on Bookworm's Python (its compiled wheels are cp313)
    assert wheelhouse.offline_check(view, BOOKWORM, req) is not None
