"""Checks an image build runs on what it installed; any problem fails the build with a message.

Run with the interpreter of the environment to check (`/opt/facegate/bin/python check_install.py ...`):

    packages cpu|gpu    the variant's ONNX Runtime and not the other one (both install the same
                        `onnxruntime` module, so the second would overwrite the first); for gpu, the
                        CUDA provider compiled in; Facegate's packages installed into this
                        environment (not an editable install pointing at the build's source folder)
    portable [FILE...]  compiled extensions (default: hnswlib's) record no CPU-specific `-march`:
                        a `-march=native` build dies with SIGILL on an older CPU than the build machine's
    libraries [FILE...] every shared library that the extensions (default: all in this environment)
                        link is found, except the driver's, which the NVIDIA container toolkit mounts
                        at run time; run in the final stage, which has no compiler and fewer packages
    models DIR          every default model present with its sha256 and licence notice, no partial
                        downloads or optimised-graph cache, nothing writable by group or others

Exit status 0 when everything holds, 1 with one line per problem otherwise, 2 for a usage error.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

RUNTIMES = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}
CUDA_PROVIDER = "CUDAExecutionProvider"
# A compiler record (DWARF producer) of GCC, e.g. "GNU C++14 12.2.0 -mtune=generic -march=x86-64 -g -O3".
PRODUCER = re.compile(rb"GNU (?:C|C\+\+|Fortran)[0-9]* [0-9][^\x00]*")
GENERIC_MARCH = {"x86-64", "armv8-a"}  # the architectures' baselines: any CPU of the kind runs them
# Libraries the host's NVIDIA driver provides, mounted into the container at run time.
DRIVER_LIBRARIES = re.compile(r"^lib(cuda|nvidia-[a-z0-9-]+|nvcuvid|nvidia-ml)\.so(\.\d+)*$")
# onnxruntime's other providers (TensorRT, ...), whose libraries the images do not ship: sessions only
# ask for CUDA and the CPU (common/pipeline/runtime.py), so these are never loaded.
OPTIONAL_PROVIDERS = re.compile(r"^libonnxruntime_providers_(?!cuda\.so$|shared\.so$).+\.so$")


def check_packages(variant: str) -> list[str]:
    """The variant's runtime and Facegate installed into this environment."""
    problems = []
    wanted = RUNTIMES[variant]
    (other,) = (name for name in RUNTIMES.values() if name != wanted)
    if not _installed(wanted):
        found = f" (found {other}, the other variant's runtime)" if _installed(other) else ""
        problems.append(f"{wanted} is not installed: the {variant} image needs facegate[{variant}]{found}")
    elif _installed(other):
        problems.append(
            f"{wanted} and {other} are both installed: they overwrite each other's files; "
            f"install only facegate[{variant}]"
        )
    else:
        providers = importlib.import_module("onnxruntime").get_available_providers()
        if variant == "gpu" and CUDA_PROVIDER not in providers:
            problems.append(f"{wanted} offers no {CUDA_PROVIDER} (providers: {', '.join(providers)})")
    return problems + _check_facegate()


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _check_facegate() -> list[str]:
    try:
        dist = metadata.distribution("facegate")
    except metadata.PackageNotFoundError:
        return ["facegate is not installed in this environment"]
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if direct_url.get("dir_info", {}).get("editable"):
        return ["facegate is an editable install: its code would stay in the build's source folder"]
    problems = []
    prefix = Path(sys.prefix).resolve()
    for package in (dist.read_text("top_level.txt") or "").split():
        spec = importlib.util.find_spec(package)
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        if origin is None or not origin.is_relative_to(prefix):
            problems.append(f"package {package} is not installed under {prefix} (found: {origin})")
    script = Path(sysconfig.get_path("scripts")) / "facegate"
    if not script.is_file():
        problems.append(f"the facegate command is missing ({script})")
    return problems


def check_portable(paths: list[Path]) -> list[str]:
    """Compiled files whose compiler records name a CPU-specific -march, or that have no record."""
    if not paths:
        spec = importlib.util.find_spec("hnswlib")
        if spec is None or spec.origin is None:
            return ["hnswlib is not installed"]
        paths = [Path(spec.origin)]
    problems = []
    for path in paths:
        records = PRODUCER.findall(path.read_bytes())
        if not records:
            problems.append(f"{path}: no compiler record, cannot tell its CPU target (built without -g?)")
            continue
        marches = {m.decode() for record in records for m in re.findall(rb"-march=(\S+)", record)}
        specific = sorted(marches - GENERIC_MARCH)
        if specific:
            problems.append(
                f"{path}: compiled for one CPU (-march={', -march='.join(specific)}); build it with "
                "HNSWLIB_NO_NATIVE=1 so that it runs on any CPU of its architecture"
            )
    return problems


def check_libraries(paths: list[Path]) -> list[str]:
    """Shared libraries that an extension links and the dynamic loader cannot find."""
    if not paths:
        paths = sorted(_extensions(_site_dirs()))
    problems = []
    for path in paths:
        if OPTIONAL_PROVIDERS.match(path.name):
            continue
        for library in _missing_libraries(path):
            if not DRIVER_LIBRARIES.match(library):
                problems.append(f"{path}: needs {library}, which is not installed")
    return problems


def _site_dirs() -> set[Path]:
    return {Path(sysconfig.get_path(key)) for key in ("purelib", "platlib")}


def _extensions(roots: Iterable[Path]) -> Iterable[Path]:
    """ELF files in the site folders, less the copies that wheels bundle in `<name>.libs/`: the
    extensions load those through their own run path, and checking an extension covers them."""
    for root in roots:
        for path in root.rglob("*.so*"):
            bundled = any(part.endswith(".libs") for part in path.relative_to(root).parts[:-1])
            if not bundled and path.is_file() and not path.is_symlink() and _is_elf(path):
                yield path


def _is_elf(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"


def _missing_libraries(path: Path) -> list[str]:
    proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 and "not a dynamic executable" in proc.stdout + proc.stderr:
        return []
    return [line.split("=>")[0].strip() for line in proc.stdout.splitlines() if "=> not found" in line]


def check_models(directory: Path) -> list[str]:
    """The model folder as an image ships it."""
    from common.models.fetch import is_valid
    from common.models.manifest import DEFAULT_MODELS

    if not directory.is_dir():
        return [f"{directory} is not a folder"]
    problems = []
    for manifest in DEFAULT_MODELS:
        if not is_valid(manifest, directory):
            problems.append(f"{manifest.id}: {directory / manifest.file} is missing or fails its sha256")
        if not (directory / f"{manifest.file}.LICENSE").is_file():
            problems.append(f"{manifest.id}: its licence notice {manifest.file}.LICENSE is missing")
    for path in sorted([directory, *directory.rglob("*")]):
        if path.name.startswith((".fetch-", ".optimized")) or path.name.endswith(".tmp"):
            problems.append(f"{path}: left over from a fetch or a model load; the image must not ship it")
        mode = path.lstat().st_mode
        readable = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
        if mode & readable != readable or mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.append(
                f"{path}: mode {stat.filemode(mode)}, must be readable and not writable by others"
            )
    return problems


def main(argv: list[str]) -> int:
    command, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if command == "packages" and len(args) == 1 and args[0] in RUNTIMES:
        problems = check_packages(args[0])
    elif command == "portable":
        problems = check_portable([Path(a) for a in args])
    elif command == "libraries":
        problems = check_libraries([Path(a) for a in args])
    elif command == "models" and len(args) == 1:
        problems = check_models(Path(args[0]))
    else:
        sys.stderr.write(__doc__ or "")
        return 2
    for problem in problems:
        sys.stderr.write(f"check_install {command}: {problem}\n")
    if problems:
        return 1
    sys.stdout.write(f"check_install {command}: ok ({sys.prefix})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
