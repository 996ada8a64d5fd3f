"""The check of a `sam build` output, run by `make build` after each build:

    python -m lambda_build.check BUILD_DIR --arch arm64 --runtime python3.12

- every ELF file (`.so` and any other native binary) is of the target architecture and needs no glibc
  symbol version newer than the runtime's (Amazon Linux 2023: 2.34; python3.11's Amazon Linux 2: 2.26);
- the layer holds every distribution its pinned packages require (they are installed with --no-deps);
- every `.py` of the layer and of each function has its unchecked-hash `.pyc`, compiled by the runtime's
  minor version (Lambda cannot write bytecode at run time);
- every file of the sources (the layer's `oneai` package, each function's CodeUri) is in its artifact,
  the files that are not Python included (the email templates under oneai/notifications/templates, run.sh):
  a file read at run time that the build left out fails only when that code path first runs in AWS.
Exit 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# e_machine of each Lambda architecture
MACHINES = {"arm64": "EM_AARCH64", "x86_64": "EM_X86_64"}
# glibc of each runtime's operating system
RUNTIME_GLIBC = {
    "python3.11": (2, 26),  # Amazon Linux 2
    "python3.12": (2, 34),  # Amazon Linux 2023
    "python3.13": (2, 34),
}
GLIBC_VERSION = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")
# An unchecked hash-based .pyc: flags word (bytes 4..8) == 0b01 (hash-based, check_source off).
UNCHECKED_HASH_FLAGS = 1


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def elf_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    yield path


def glibc_needed(elf: ELFFile) -> tuple[int, ...] | None:
    newest: tuple[int, ...] | None = None
    for section in elf.iter_sections():
        if not isinstance(section, GNUVerNeedSection):
            continue
        for _, auxiliaries in section.iter_versions():
            for aux in auxiliaries:
                match = GLIBC_VERSION.match(aux.name)
                if match:
                    version = tuple(int(part) for part in match.groups() if part is not None)
                    newest = version if newest is None or version > newest else newest
    return newest


def check_elf(path: Path, root: Path, *, arch: str, max_glibc: tuple[int, int]) -> list[Problem]:
    relative = str(path.relative_to(root))
    try:
        with path.open("rb") as handle:
            elf = ELFFile(handle)
            machine = elf["e_machine"]
            needed = glibc_needed(elf)
    except ELFError as exc:
        return [Problem(relative, f"unreadable ELF file ({exc})")]
    problems = []
    if machine != MACHINES[arch]:
        problems.append(Problem(relative, f"built for {machine}, the functions run on {arch} ({MACHINES[arch]})"))
    if needed is not None and needed[:2] > max_glibc:
        wanted, have = ".".join(map(str, needed)), ".".join(map(str, max_glibc))
        problems.append(Problem(relative, f"needs glibc {wanted}, the runtime has {have}"))
    return problems


def _distributions(site: Path) -> dict[str, tuple[str, Path]]:
    found = {}
    for info in site.glob("*.dist-info"):
        metadata = Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        found[canonicalize_name(metadata["Name"])] = (metadata["Version"], info)
    return found


def _requested_extras(requirements: Path) -> dict[str, set[str]]:
    extras: dict[str, set[str]] = {}
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            extras.setdefault(canonicalize_name(requirement.name), set()).update(requirement.extras)
    return extras


def check_requirements_closed(site: Path, requirements: Path, runtime: str) -> list[Problem]:
    """Every requirement of every installed distribution (with the extras requirements.txt asks for,
    markers evaluated for the runtime's Python on Linux) is installed at a matching version."""
    distributions = _distributions(site)
    extras = _requested_extras(requirements)
    environment = {
        **default_environment(),
        "python_version": runtime.removeprefix("python"),
        "python_full_version": runtime.removeprefix("python") + ".0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    problems = []
    for name, (_, info) in sorted(distributions.items()):
        metadata = Parser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            wanted_extras = extras.get(name, set()) or {""}
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({**environment, "extra": extra}) for extra in wanted_extras
            ):
                continue
            needed = canonicalize_name(requirement.name)
            if needed not in distributions:
                problems.append(Problem(info.name, f"requires {requirement}, which the layer does not hold"))
            elif not requirement.specifier.contains(distributions[needed][0], prereleases=True):
                problems.append(
                    Problem(info.name, f"requires {requirement}, the layer holds {distributions[needed][0]}")
                )
    return problems


def check_bytecode(root: Path, runtime: str) -> list[Problem]:
    tag = f"cpython-{runtime.removeprefix('python').replace('.', '')}"
    magic = importlib.util.MAGIC_NUMBER if sys.implementation.cache_tag == tag else None
    problems = []
    for source in sorted(root.rglob("*.py")):
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        relative = str(source.relative_to(root))
        if not compiled.is_file():
            problems.append(Problem(relative, f"no {compiled.name}: every cold start would compile it"))
            continue
        header = compiled.read_bytes()[:16]
        if int.from_bytes(header[4:8], "little") != UNCHECKED_HASH_FLAGS:
            problems.append(Problem(relative, "bytecode is not unchecked-hash (stale once the zip resets mtimes)"))
        if magic is not None and header[:4] != magic:
            problems.append(Problem(relative, f"bytecode magic is not {runtime}'s"))
    return problems


def check_sources_shipped(artifact: Path, sources: Path, *, under: str = "") -> list[Problem]:
    """Every file of `sources` (bytecode caches aside) at the same place in `artifact`/`under`."""
    problems = []
    for source in sorted(sources.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts or source.suffix == ".pyc":
            continue
        relative = Path(under, source.relative_to(sources))
        if not (artifact / relative).is_file():
            problems.append(Problem(str(relative), f"missing: the build left out {source.name} of the sources"))
    return problems


def template_sources(repo_root: Path) -> dict[str, tuple[Path, str]]:
    """Artifact name -> (its source folder, where that folder lands in the artifact), from template.yaml."""
    from lambda_build.layout import functions

    sources = {"CommonLayer": (repo_root / "layers" / "common" / "oneai", "python/oneai")}
    for function in functions():
        sources[function.logical_id] = (function.code_dir, "")
    return sources


def check_build(
    build_dir: Path,
    *,
    arch: str,
    runtime: str,
    requirements: Path,
    sources: Mapping[str, tuple[Path, str]] | None = None,
) -> list[Problem]:
    max_glibc = RUNTIME_GLIBC[runtime]
    problems: list[Problem] = []
    artifacts = sorted(p for p in build_dir.iterdir() if p.is_dir())
    if not artifacts:
        return [Problem(str(build_dir), "no built artifacts")]
    for artifact in artifacts:
        problems += [
            Problem(f"{artifact.name}/{p.path}", p.message)
            for path in elf_files(artifact)
            for p in check_elf(path, artifact, arch=arch, max_glibc=max_glibc)
        ]
        problems += [Problem(f"{artifact.name}/{p.path}", p.message) for p in check_bytecode(artifact, runtime)]
        if sources is not None and artifact.name in sources:
            folder, under = sources[artifact.name]
            problems += [
                Problem(f"{artifact.name}/{p.path}", p.message)
                for p in check_sources_shipped(artifact, folder, under=under)
            ]
        site = artifact / "python"
        if site.is_dir() and any(site.glob("*.dist-info")):
            problems += [
                Problem(f"{artifact.name}/python/{p.path}", p.message)
                for p in check_requirements_closed(site, requirements, runtime)
            ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--arch", choices=sorted(MACHINES), required=True)
    parser.add_argument("--runtime", choices=sorted(RUNTIME_GLIBC), required=True)
    parser.add_argument(
        "--requirements",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "layers/common/requirements.txt",
    )
    args = parser.parse_args(argv)
    problems = check_build(
        args.build_dir,
        arch=args.arch,
        runtime=args.runtime,
        requirements=args.requirements,
        sources=template_sources(Path(__file__).resolve().parent.parent),
    )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"build check: {len(problems)} problem(s) in {args.build_dir}", file=sys.stderr)
        return 1
    print(f"build check: {args.build_dir} is {args.arch}, {args.runtime}-compatible, compiled and complete")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
