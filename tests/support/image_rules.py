"""The rules the Dockerfiles must keep (docs/images.md), as functions that list what breaks them.

Each rule takes the stages of one Dockerfile resolved for one set of build arguments
(`tests.support.dockerfiles.stages`) and returns a list of problems, empty when the rule holds. The tests run
them on the real Dockerfiles and on broken copies, so a rule that stops seeing its problem fails.
"""

from __future__ import annotations

import os
import posixpath
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

from tests.support.dockerfiles import Instruction, Stage, copied_from

INSTALL_SCRIPT = "install.sh"
EXACT_TAG = re.compile(r"^\d+\.\d+\.\d+")
IMAGE_REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[\w][\w.-]*))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
CUDA_RUNTIME = re.compile(r"^nvidia/cuda:12\.\d+\.\d+-cudnn9?-runtime-ubuntu\d+\.\d+$")
APT_STEP = re.compile(r"^(apt-get (update|clean)\b.*|apt-get install .*|rm -rf /var/lib/apt/lists/\*)$")
COMPILER = re.compile(r"^(g\+\+|gcc|cpp|clang|make|build-essential)(-[\d.]+)?$|-dev$")
INTERPRETERS = {"sh", "bash", "python", "python3"}
REQUIRED_LABELS = (
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.licenses",
)

Rule = Callable[[list[Stage], Path], list[str]]


def _commands(run: Instruction) -> list[str]:
    """The commands of a shell-form RUN, split at && and ;."""
    if run.text.startswith("["):
        return [" ".join(run.words())]
    return [c.strip() for c in re.split(r"&&|;", run.text) if c.strip()]


def is_package_install(run: Instruction) -> bool:
    """A RUN that only updates the package lists, installs packages and removes the lists."""
    return all(APT_STEP.match(command) for command in _commands(run))


def apt_packages(run: Instruction) -> list[str]:
    """The packages a RUN installs with apt-get."""
    return [
        word
        for command in _commands(run)
        if command.startswith("apt-get install ")
        for word in command.split()[2:]
        if not word.startswith("-")
    ]


def script_of(run: Instruction) -> str | None:
    """The in-image path of the script a RUN calls, when the RUN is exactly one script call."""
    words = run.words()
    if any(w in {"&&", "||", ";", "|"} or w.endswith(";") for w in words):
        return None
    if words and posixpath.basename(words[0]) in INTERPRETERS and len(words) > 1:
        words = words[1:]
    return words[0] if words and words[0].endswith((".sh", ".py")) else None


def install_stage(stages: list[Stage]) -> tuple[Stage, list[str]] | None:
    """The stage that runs install.sh, and that RUN's words."""
    for stage in stages:
        for run in stage.instructions:
            script = script_of(run) if run.keyword == "RUN" else None
            if script is not None and posixpath.basename(script) == INSTALL_SCRIPT:
                words = run.words()
                return stage, words[words.index(script) + 1 :]
    return None


def multi_stage(stages: list[Stage], context: Path) -> list[str]:
    """Built in one stage, run from another with no compiler; both from the same image (the venv's
    interpreter is the base image's)."""
    final = stages[-1]
    problems = []
    built = install_stage(stages)
    if built is None:
        return [f"no stage runs scripts/docker/{INSTALL_SCRIPT}"]
    stage, _ = built
    if stage in final.chain():
        problems.append(f"the final stage is built on the stage that runs {INSTALL_SCRIPT}: one stage only")
    if not any("from" in copy.flags for copy in final.instructions if copy.keyword == "COPY"):
        problems.append("the final stage copies nothing from the build stage (COPY --from)")
    if stage.image() != final.image():
        problems.append(
            f"built on {stage.image()} but run on {final.image()}: the venv needs the same Python"
        )
    for run in final.all("RUN"):
        compilers = [p for p in apt_packages(run) if COMPILER.search(p)]
        if compilers:
            problems.append(f"line {run.line}: the final image installs build tools {compilers}")
    return problems


def pinned_bases(stages: list[Stage], context: Path) -> list[str]:
    """Every external base image has an exact version tag (or a digest), never `latest`."""
    problems = []
    for stage in stages:
        if stage.parent is not None:
            continue
        ref = IMAGE_REF.match(stage.base)
        if ref is None:
            problems.append(f"stage {stage.index}: {stage.base!r} is not an image reference")
        elif ref.group("tag") == "latest":
            problems.append(f"stage {stage.index}: {stage.base} uses the moving tag latest")
        elif ref.group("digest") is None and not EXACT_TAG.match(ref.group("tag") or ""):
            problems.append(f"stage {stage.index}: {stage.base} is not pinned to an exact version tag")
    return problems


def non_root_user(stages: list[Stage], context: Path) -> list[str]:
    """The final image runs as a numeric, non-zero user id."""
    users = stages[-1].all("USER")
    if not users:
        return ["the final stage sets no USER: it would run as root"]
    user = users[-1].text
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    if match is None:
        return [f"USER {user}: give a numeric UID[:GID], so that runtimes can check it is not root"]
    if int(match.group(1)) == 0:
        return [f"USER {user} is root"]
    return []


def healthcheck(stages: list[Stage], context: Path) -> list[str]:
    """A HEALTHCHECK in exec form that runs a script from scripts/docker/."""
    checks = stages[-1].all("HEALTHCHECK")
    if not checks or checks[-1].text.upper() == "NONE":
        return ["the final image has no HEALTHCHECK"]
    keyword, _, command = checks[-1].text.partition(" ")
    if keyword.upper() != "CMD" or not command.strip().startswith("["):
        return [f"HEALTHCHECK {checks[-1].text}: use CMD in exec form (a JSON list)"]
    words = Instruction("CMD", {}, command.strip(), checks[-1].line).words()
    scripts = [w for w in words if w.endswith((".py", ".sh"))]
    if not scripts:
        return [f"HEALTHCHECK {command}: calls no script from scripts/docker/"]
    return _script_problems(stages[-1], scripts[0], context, "HEALTHCHECK")


def scripts_for_steps(stages: list[Stage], context: Path) -> list[str]:
    """Every RUN that does more than install packages calls one script from scripts/ that exists."""
    problems = []
    for stage in stages:
        for run in stage.instructions:
            if run.keyword != "RUN" or is_package_install(run):
                continue
            script = script_of(run)
            if script is None:
                problems.append(
                    f"line {run.line}: RUN {run.text!r} neither installs packages nor calls a script"
                )
            else:
                problems += _script_problems(stage, script, context, f"line {run.line}")
    return problems


def _script_problems(stage: Stage, script: str, context: Path, where: str) -> list[str]:
    source = copied_from(stage, script, context)
    if source is None:
        return [f"{where}: {script} was not copied from the build context"]
    if not source.startswith("scripts/"):
        return [f"{where}: {script} comes from {source}, not from scripts/"]
    path = context / source
    if not path.is_file():
        return [f"{where}: {source} does not exist"]
    if source.endswith(".sh") and not os.access(path, os.X_OK):
        return [f"{where}: {source} is not executable"]
    return []


def apt_hygiene(stages: list[Stage], context: Path) -> list[str]:
    """apt-get installs without recommended packages and leaves no package lists behind."""
    problems = []
    for stage in stages:
        for run in stage.instructions:
            if run.keyword != "RUN" or "apt-get install" not in run.text:
                continue
            if "--no-install-recommends" not in run.text:
                problems.append(f"line {run.line}: apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists/*" not in run.text:
                problems.append(f"line {run.line}: the apt package lists stay in the layer")
    return problems


def oci_labels(stages: list[Stage], context: Path) -> list[str]:
    """The OCI annotations, each with a value."""
    labels: dict[str, str] = {}
    for label in stages[-1].all("LABEL"):
        for word in label.words():
            key, _, value = word.partition("=")
            labels[key] = value
    return [f"label {key} is missing or empty" for key in REQUIRED_LABELS if not labels.get(key)]


def hnswlib_portable(stages: list[Stage], context: Path) -> list[str]:
    """hnswlib is compiled in a stage where HNSWLIB_NO_NATIVE=1 (no -march=native)."""
    built = install_stage(stages)
    if built is None:
        return [f"no stage runs {INSTALL_SCRIPT}"]
    if built[0].env.get("HNSWLIB_NO_NATIVE") != "1":
        return ["the stage that builds hnswlib does not set HNSWLIB_NO_NATIVE=1"]
    return []


def packages_copied(stages: list[Stage], context: Path) -> list[str]:
    """pyproject.toml, its readme and every package it installs reach install.sh's source folder."""
    built = install_stage(stages)
    if built is None or not built[1]:
        return [f"no stage runs {INSTALL_SCRIPT} SRC VARIANT"]
    stage, (src, *_) = built
    project = tomllib.loads((context / "pyproject.toml").read_text())
    includes = project["tool"]["setuptools"]["packages"]["find"]["include"]
    wanted = ["pyproject.toml", project["project"]["readme"], *(i.rstrip("*.") for i in includes)]
    return [
        f"{name} is not copied to {src}/{name}"
        for name in wanted
        if copied_from(stage, posixpath.join(src, name), context) != name
    ]


def runtime_variant(variant: str) -> Rule:
    """The install step installs the extra of `variant`; the gpu image runs on a CUDA 12 / cuDNN 9
    runtime image; the extra brings the runtime it should."""

    def rule(stages: list[Stage], context: Path) -> list[str]:
        built = install_stage(stages)
        if built is None or len(built[1]) < 2:
            return [f"no stage runs {INSTALL_SCRIPT} SRC VARIANT"]
        problems = []
        if built[1][1] != variant:
            problems.append(f"the {variant} build runs {INSTALL_SCRIPT} for {built[1][1]!r}")
        image = stages[-1].image()
        if variant == "gpu" and not CUDA_RUNTIME.match(image):
            problems.append(f"the gpu image runs on {image}, not a CUDA 12 cuDNN 9 runtime image")
        if variant == "cpu" and image.startswith("nvidia/"):
            problems.append(f"the cpu image runs on {image}")
        extras = tomllib.loads((context / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        runtime = "onnxruntime-gpu" if variant == "gpu" else "onnxruntime"
        if not any(re.match(rf"{runtime}\s*(>|=|$)", r) for r in extras.get(variant, [])):
            problems.append(f"the pip extra {variant!r} does not bring {runtime}")
        return problems

    return rule


RULES: tuple[Rule, ...] = (
    multi_stage,
    pinned_bases,
    non_root_user,
    healthcheck,
    scripts_for_steps,
    apt_hygiene,
    oci_labels,
    hnswlib_portable,
    packages_copied,
)


def problems(stages: list[Stage], variant: str, context: Path) -> list[str]:
    """Every rule's problems for one resolved Dockerfile."""
    return [p for rule in (*RULES, runtime_variant(variant)) for p in rule(stages, context)]
