"""Broken copies of the Dockerfiles, each with the problem the rules must report (support/image_rules.py).

One entry: test id, Dockerfile, VARIANT, text to replace, its replacement, a fragment of the problem.
"""

from __future__ import annotations

HEALTHCHECK_CENTRAL = (
    "HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\\n"
    '    CMD ["/opt/facegate/bin/python", "/usr/local/share/facegate/healthcheck.py"]\n'
)

BREAKAGES: list[tuple[str, str, str, str, str, str]] = [
    ("edge-user-by-name", "Dockerfile.edge", "cpu", "USER 10001:10001", "USER facegate", "numeric UID"),
    ("central-user-root", "Dockerfile.central", "cpu", "USER 10001:10001", "USER 0:0", "is root"),
    ("central-no-user", "Dockerfile.central", "cpu", "USER 10001:10001\n", "", "no USER"),
    ("central-no-healthcheck", "Dockerfile.central", "cpu", HEALTHCHECK_CENTRAL, "", "no HEALTHCHECK"),
    (
        "central-healthcheck-curl",
        "Dockerfile.central",
        "cpu",
        HEALTHCHECK_CENTRAL,
        "HEALTHCHECK CMD curl -f http://127.0.0.1:8000/health\n",
        "exec form",
    ),
    ("edge-floating-tag", "Dockerfile.edge", "cpu", "3.12.12-slim", "3.12-slim", "exact version tag"),
    (
        "central-latest",
        "Dockerfile.central",
        "cpu",
        "python:3.12.12-slim-bookworm",
        "python:latest",
        "latest",
    ),
    ("gpu-floating-tag", "Dockerfile.edge", "gpu", "cuda:12.9.1-cudnn", "cuda:12.9-cudnn", "exact version"),
    ("gpu-without-cudnn", "Dockerfile.edge", "gpu", "12.9.1-cudnn-runtime", "12.9.1-runtime", "cuDNN 9"),
    ("gpu-cuda-11", "Dockerfile.edge", "gpu", "12.9.1-cudnn-runtime", "11.8.0-cudnn8-runtime", "CUDA 12"),
    (
        "gpu-installs-cpu-runtime",
        "Dockerfile.edge",
        "gpu",
        'install.sh /src "${VARIANT}"',
        "install.sh /src cpu",
        "for 'cpu'",
    ),
    (
        "edge-compiler-in-final",
        "Dockerfile.edge",
        "cpu",
        "FROM runtime-${VARIANT} AS edge",
        "FROM build-${VARIANT} AS edge",
        "build tools",
    ),
    (
        "central-one-stage",
        "Dockerfile.central",
        "cpu",
        "FROM runtime AS central",
        "FROM build AS central",
        "one stage only",
    ),
    (
        "central-no-copy-from",
        "Dockerfile.central",
        "cpu",
        "COPY --from=build /opt/facegate /opt/facegate\n",
        "",
        "COPY --from",
    ),
    (
        "central-other-build-base",
        "Dockerfile.central",
        "cpu",
        "FROM runtime AS build",
        "FROM python:3.11.11-slim-bookworm AS build",
        "same Python",
    ),
    (
        "central-inline-pip",
        "Dockerfile.central",
        "cpu",
        "RUN /src/scripts/docker/install.sh /src cpu",
        "RUN python3 -m venv /opt/facegate && /opt/facegate/bin/pip install '/src[cpu]'",
        "neither installs packages nor calls a script",
    ),
    (
        "edge-missing-script",
        "Dockerfile.edge",
        "cpu",
        "docker/fetch-models.sh",
        "docker/fetch-all.sh",
        "does not exist",
    ),
    (
        "central-script-not-copied",
        "Dockerfile.central",
        "cpu",
        "COPY scripts/docker/ /src/scripts/docker/\n",
        "",
        "not copied",
    ),
    (
        "edge-native-hnswlib",
        "Dockerfile.edge",
        "cpu",
        "ENV HNSWLIB_NO_NATIVE=1 \\\n   ",
        "ENV",
        "HNSWLIB_NO_NATIVE",
    ),
    (
        "central-recommends",
        "Dockerfile.central",
        "cpu",
        "--no-install-recommends libgomp1",
        "libgomp1",
        "recommends",
    ),
    (
        "edge-apt-lists-kept",
        "Dockerfile.edge",
        "gpu",
        " \\\n    && rm -rf /var/lib/apt/lists/*",
        "",
        "package lists",
    ),
    (
        "central-no-version-label",
        "Dockerfile.central",
        "cpu",
        'org.opencontainers.image.version="${VERSION}" \\\n',
        "",
        "org.opencontainers.image.version",
    ),
    ("edge-package-not-copied", "Dockerfile.edge", "cpu", "COPY edge /src/edge\n", "", "edge is not copied"),
]
