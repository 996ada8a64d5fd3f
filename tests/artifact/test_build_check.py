"""The build check fails a layer holding a binary of the wrong architecture or one needing a newer glibc
than the runtime has (the trap python3.11 on Amazon Linux 2 set for psycopg-binary)."""

from __future__ import annotations

import shutil
from pathlib import Path

from lambda_build.check import check_build, template_sources
from tests.artifact.conftest import BUILD_DIR, NATIVE_ARCH

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "layers" / "common" / "requirements.txt"
OTHER_ARCH = "arm64" if NATIVE_ARCH == "x86_64" else "x86_64"


def test_the_native_build_passes(build_dir: Path) -> None:
    sources = template_sources(REPO_ROOT)
    assert (
        check_build(build_dir, arch=NATIVE_ARCH, runtime="python3.12", requirements=REQUIREMENTS, sources=sources)
        == []
    )
    # every function of the template and the layer were compared with their sources
    assert {p.name for p in build_dir.iterdir() if p.is_dir()} >= set(sources)


def test_a_layer_without_the_email_templates_fails_the_check(build_dir: Path, tmp_path: Path) -> None:
    # GIVEN a layer built by a copy that takes only Python files (the email templates are read at run time)
    shutil.copytree(
        build_dir / "CommonLayer",
        tmp_path / "CommonLayer",
        symlinks=True,
        ignore=lambda folder, names: [n for n in names if folder.endswith("templates")],
    )
    problems = check_build(
        tmp_path,
        arch=NATIVE_ARCH,
        runtime="python3.12",
        requirements=REQUIREMENTS,
        sources=template_sources(REPO_ROOT),
    )
    # THEN each template is named
    templates = sorted(p.name for p in (REPO_ROOT / "layers/common/oneai/notifications/templates").iterdir())
    assert "payment_failed.html" in templates
    assert sorted(p.path for p in problems) == [
        f"CommonLayer/python/oneai/notifications/templates/{name}" for name in templates
    ]
    assert all(p.message.startswith("missing: the build left out") for p in problems)


def test_a_function_without_its_run_sh_fails_the_check(build_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(build_dir / "ChatStreamFunction", tmp_path / "ChatStreamFunction")
    (tmp_path / "ChatStreamFunction" / "run.sh").unlink()
    problems = check_build(
        tmp_path,
        arch=NATIVE_ARCH,
        runtime="python3.12",
        requirements=REQUIREMENTS,
        sources=template_sources(REPO_ROOT),
    )
    assert [p.path for p in problems] == ["ChatStreamFunction/run.sh"]


def test_a_wheel_of_the_wrong_architecture_fails_the_check(build_dir: Path, tmp_path: Path) -> None:
    # GIVEN a function artifact whose layer holds this machine's binaries, checked for the other target
    shutil.copytree(build_dir / "WebhooksFunction", tmp_path / "WebhooksFunction")
    so = next((build_dir / "CommonLayer" / "python").glob("psycopg_binary/*.so"))
    layer = tmp_path / "CommonLayer" / "python" / "psycopg_binary"
    layer.mkdir(parents=True)
    shutil.copy(so, layer / so.name)
    problems = check_build(tmp_path, arch=OTHER_ARCH, runtime="python3.12", requirements=REQUIREMENTS)
    # THEN the binary is named, with both architectures
    assert [str(p.path) for p in problems] == [f"CommonLayer/python/psycopg_binary/{so.name}"]
    assert "the functions run on" in problems[0].message


def test_a_wheel_needing_a_newer_glibc_fails_the_check(build_dir: Path) -> None:
    # GIVEN the layer as built, checked against Amazon Linux 2's glibc 2.26 (python3.11)
    problems = check_build(build_dir, arch=NATIVE_ARCH, runtime="python3.11", requirements=REQUIREMENTS)
    glibc = [p for p in problems if "needs glibc" in p.message]
    # THEN the binaries that need more are named (cryptography's manylinux_2_34 build at least)
    assert any("cryptography" in p.path for p in glibc), glibc
    assert all(p.message.endswith("the runtime has 2.26") for p in glibc)


def test_a_missing_pinned_dependency_fails_the_check(build_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(build_dir / "CommonLayer", tmp_path / "CommonLayer", symlinks=True)
    for info in (tmp_path / "CommonLayer" / "python").glob("h11-*.dist-info"):
        shutil.rmtree(info)
    problems = check_build(tmp_path, arch=NATIVE_ARCH, runtime="python3.12", requirements=REQUIREMENTS)
    assert any("requires h11" in p.message for p in problems), problems


def test_bytecode_is_checked(build_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(build_dir / "QuotaResetFunction", tmp_path / "QuotaResetFunction")
    for cache in (tmp_path / "QuotaResetFunction").rglob("__pycache__"):
        shutil.rmtree(cache)
    problems = check_build(tmp_path, arch=NATIVE_ARCH, runtime="python3.12", requirements=REQUIREMENTS)
    assert {p.path for p in problems} == {
        "QuotaResetFunction/quota_reset/__init__.py",
        "QuotaResetFunction/quota_reset/handler.py",
    }
    assert BUILD_DIR.is_dir()
