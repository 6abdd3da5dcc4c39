"""The `facegate` command line, run as a real process: clean JSON Lines, per-image errors, exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from demo.sample_faces import SamplePhoto
from tests.support.badimages import write_bad_images
from tests.support.reference import iou

FACEGATE = str(Path(sys.executable).parent / "facegate")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FACEGATE, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_cli_embed_json_mixed_inputs_gives_one_line_each_and_exit_2(
    tmp_path: Path, samples: dict[str, SamplePhoto], models_env: dict[str, str]
) -> None:
    bad = write_bad_images(tmp_path, samples["obama"].path)
    good = samples["biden"].path
    order = [good, *bad.values(), samples["obama2"].path]
    proc = run(["embed", "--json", *map(str, order)], models_env)
    assert proc.returncode == 2, proc.stderr
    out = lines(proc.stdout)
    assert [o["image"] for o in out] == [str(p) for p in order]
    by_image = {o["image"]: o for o in out}
    for kind in ("missing", "empty", "truncated", "text", "tiny", "huge"):
        assert "error" in by_image[str(bad[kind])], kind
        assert "faces" not in by_image[str(bad[kind])]
    assert by_image[str(bad["noface"])]["faces"] == []
    for path in (good, bad["grey"], bad["rgba"], samples["obama2"].path):
        result = by_image[str(path)]
        assert result["model"] == "sface-2021dec"
        assert len(result["faces"]) == 1 and len(result["faces"][0]["embedding"]) == 128
    assert "Traceback" not in proc.stderr


def test_cli_detect_json_face_fields(samples: dict[str, SamplePhoto], models_env: dict[str, str]) -> None:
    proc = run(["detect", "--json", str(samples["obama"].path)], models_env)
    assert proc.returncode == 0, proc.stderr
    (result,) = lines(proc.stdout)
    assert result["model"] == "yunet-2023mar"
    (face,) = result["faces"]
    assert len(face["bbox"]) == 4 and len(face["landmarks"]) == 5
    assert 0.6 < face["score"] <= 1.0
    assert face["quality"]["accepted"] is True and face["quality"]["reasons"] == []
    assert "embedding" not in face


def test_cli_detect_size_boxes_mapped_back_to_full_frame(
    samples: dict[str, SamplePhoto], models_env: dict[str, str]
) -> None:
    boxes = []
    for size in ("0", "640"):
        proc = run(["detect", "--json", "--detect-size", size, str(samples["obama3"].path)], models_env)
        assert proc.returncode == 0, proc.stderr
        boxes.append(lines(proc.stdout)[0]["faces"][0]["bbox"])
    full, small = (np.array(b, dtype=np.float32) for b in boxes)
    assert iou(full, small) > 0.8  # the same face, in full-frame pixels at both sizes


def test_cli_verify_same_and_different(samples: dict[str, SamplePhoto], models_env: dict[str, str]) -> None:
    same = run(["verify", "--json", str(samples["obama"].path), str(samples["obama3"].path)], models_env)
    diff = run(["verify", "--json", str(samples["obama"].path), str(samples["biden"].path)], models_env)
    assert same.returncode == 0 and diff.returncode == 0
    (s,), (d,) = lines(same.stdout), lines(diff.stdout)
    assert s["same"] is True and s["similarity"] >= s["threshold"] == 0.363
    assert d["same"] is False and d["similarity"] < d["threshold"]


def test_cli_verify_threshold_option_changes_decision(
    samples: dict[str, SamplePhoto], models_env: dict[str, str]
) -> None:
    proc = run(
        ["verify", "--json", "--threshold", "0.99", str(samples["obama"].path), str(samples["obama3"].path)],
        models_env,
    )
    (result,) = lines(proc.stdout)
    assert result["threshold"] == 0.99 and result["same"] is False


def test_cli_verify_no_face_exit_1_unreadable_exit_2(
    tmp_path: Path, samples: dict[str, SamplePhoto], models_env: dict[str, str]
) -> None:
    bad = write_bad_images(tmp_path, samples["obama"].path)
    noface = run(["verify", "--json", str(samples["obama"].path), str(bad["noface"])], models_env)
    assert noface.returncode == 1 and "no face" in lines(noface.stdout)[0]["error"]
    broken = run(["verify", "--json", str(bad["truncated"]), str(samples["obama"].path)], models_env)
    assert broken.returncode == 2 and "truncated" in lines(broken.stdout)[0]["error"]


def test_cli_verify_human_output(samples: dict[str, SamplePhoto], models_env: dict[str, str]) -> None:
    proc = run(["verify", str(samples["obama"].path), str(samples["obama2"].path)], models_env)
    assert proc.returncode == 0
    assert "same person" in proc.stdout


def test_cli_missing_models_exit_3_with_hint(tmp_path: Path, samples: dict[str, SamplePhoto]) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FACEGATE_MODELS": str(tmp_path / "none")}
    proc = run(["detect", "--json", str(samples["obama"].path)], env)
    assert proc.returncode == 3
    assert "facegate models fetch" in proc.stderr and proc.stdout == ""


def test_cli_negative_detect_size_is_usage_error(
    samples: dict[str, SamplePhoto], models_env: dict[str, str]
) -> None:
    proc = run(["detect", "--detect-size", "-5", str(samples["obama"].path)], models_env)
    assert proc.returncode == 2 and "--detect-size" in proc.stderr


def test_cli_models_list_json(models_env: dict[str, str]) -> None:
    proc = run(["models", "list", "--json"], models_env)
    assert proc.returncode == 0
    rows = {r["id"]: r for r in lines(proc.stdout)}
    assert set(rows) == {"yunet-2023mar", "sface-2021dec"}
    assert all(r["valid"] for r in rows.values())
    assert rows["sface-2021dec"]["embedding_size"] == 128 and rows["sface-2021dec"]["license"] == "Apache-2.0"


def test_cli_registry_every_package_registers_its_commands() -> None:
    """The `facegate` dispatcher imports no side: it loads the entry points of pyproject.toml. Every one
    must load, and each package's commands must be there."""
    from importlib.metadata import entry_points

    from common.cli import COMMANDS_GROUP, build_parser
    from common.cli.bench import BENCH_GROUP

    registered = {
        group: {p.name: p.value for p in entry_points(group=group)} for group in (COMMANDS_GROUP, BENCH_GROUP)
    }
    assert set(registered[COMMANDS_GROUP]) == {"models", "faces", "bench", "edge", "central", "demo"}
    assert set(registered[BENCH_GROUP]) == {"pipeline", "match", "outbox", "ingest"}
    assert registered[COMMANDS_GROUP]["edge"].startswith("edge.")
    assert registered[COMMANDS_GROUP]["central"].startswith("central.")
    parser = build_parser()
    for argv in (
        ["edge", "run", "--config", "x"],
        ["central", "migrate"],
        ["bench", "ingest", "--database-url", "x"],
        ["demo"],
        ["verify", "a", "b"],
        ["models", "list"],
    ):
        assert callable(parser.parse_args(argv).handler), argv


def test_cli_a_command_imports_only_its_own_package() -> None:
    """Start-up is part of every `facegate embed`: a command loads only the entry point that owns it (not
    central's web framework and database driver, which took 0.35 s of a 1.75 s run on a 2-core EPYC),
    while `--help` and unknown commands still see every command."""
    from common.cli import command_words

    assert command_words(["--log-level", "debug", "bench", "pipeline", "a.jpg", "--repeat", "5"]) == [
        "bench", "pipeline", "a.jpg",
    ]  # fmt: skip
    assert command_words(["embed", "--json", "a.jpg"]) == ["embed"]
    probe = (
        "import sys; from common.cli import build_parser; p = build_parser({argv!r}); "
        "p.parse_args({argv!r}); "
        "print(sorted(m for m in ('litestar', 'psycopg', 'edge.cli') if m in sys.modules))"
    )
    for argv, loaded in (
        (["embed", "a.jpg"], "[]"),
        (["bench", "pipeline", "a.jpg"], "[]"),
        (["edge", "run", "--config", "x"], "['edge.cli']"),
    ):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(argv=argv)], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == loaded, (argv, out.stdout, out.stderr)
    helped = subprocess.run(
        [sys.executable, "-m", "common", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert all(name in helped for name in ("central", "edge", "demo", "embed", "bench", "models"))
