"""`make demo` as a user runs it: `python -m demo` in a subprocess, with embedded PostgreSQL, Mosquitto on
the generated files, central and two edges, all real processes; the test reads what the demo prints and
what it leaves behind.

1. A first run enrolls three people through the API and, within its live window, shows each of them
   recognised at both sites (Obama from photos that were not used to enroll him) and the never-enrolled
   person as unknown; its summary has events per site, the enrollment-to-matchable latency, fps per edge
   and the URLs; it stops everything. The folders above the state folder keep their permissions.
2. A second run reuses the state (no enrollment); during it, Eileen Collins is enrolled through the
   console (the walkthrough of docs/demo.md) and recognised at both sites, and the summary expects her
   so from then on (no unknown face); Ctrl-C (SIGINT) during the live stream stops every child process
   and PostgreSQL cleanly.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo.cast import ENROLLED, NOT_ENROLLED, SITES
from demo.postgres import postgres_for
from demo.sample_faces import SamplePhoto

DEMO = [str(Path(sys.executable).parent / "facegate"), "demo"]  # as `make demo` runs it
SIGINT_IGNORED = [
    sys.executable, "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]  # fmt: skip
"""Runs a command as a background job of a non-interactive shell (a CI script) starts it: with SIGINT
ignored (exec keeps it so). Ctrl-C must stop the demo all the same."""


def _modes(folder: Path) -> dict[Path, tuple[int, int, int]]:
    """(mode, uid, gid) of `folder` and of every parent up to /."""
    found = {}
    for path in [folder, *folder.parents]:
        info = path.stat()
        found[path] = (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    return found


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("demo") / "state"
    yield folder
    subprocess.run([*DEMO, "--state", str(folder), "--clean"], check=False, timeout=120)


def _env(model_dir: Path) -> dict[str, str]:
    return dict(os.environ, FACEGATE_MODELS=str(model_dir), PYTHONUNBUFFERED="1")


def _live_lines(output: str) -> list[tuple[str, str, str]]:
    """(site, camera, who) of every live event line."""
    pattern = re.compile(r"^  \d\d:\d\d:\d\d  (\S+)\s+(\S+)\s+(.+?)\s+score ", re.MULTILINE)
    return [(site, camera, who.strip()) for site, camera, who in pattern.findall(output)]


def test_demo_first_run_recognises_enrolled_people_at_both_sites_and_reports_unknown(
    state: Path, model_dir: Path
) -> None:
    parents = _modes(state.parent)
    done = subprocess.run(
        [*DEMO, "--state", str(state), "--duration", "120", "--until-seen"],
        capture_output=True, text=True, timeout=600, env=_env(model_dir), check=False,
    )  # fmt: skip
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    assert "(new)" in output.splitlines()[0]
    for person in ENROLLED:
        assert re.search(rf"enrolled {person.name} from \S+: matchable on both edges after \d+ ms", output)
    seen = _live_lines(output)
    for site in SITES:
        at_site = {who for s, camera, who in seen if s == site.id and camera == site.camera}
        assert {p.name for p in ENROLLED} <= at_site, (site.id, at_site)
        assert "unknown" in at_site, (site.id, at_site)
        assert NOT_ENROLLED not in at_site
    # Obama is enrolled from obama.jpg only; both cameras show him in other photos (obama2, obama3)
    obama = next(p for p in ENROLLED if p.external_id == "obama")
    assert all(obama.photo not in site.visitors for site in SITES)
    summary = output[output.index("== summary") :]
    for site in SITES:
        row = re.search(rf"^  {site.id}\s+(\d+)\s+(\d+)\s+(\d+)  (.*)$", summary, re.MULTILINE)
        assert row is not None, summary
        events, stored, unknown = (int(row.group(i)) for i in (1, 2, 3))
        assert events >= 4 and unknown >= 1, row.group(0)
        assert stored >= events  # every event printed was stored by central (and those still in flight)
    assert re.search(
        r"enrollment to matchable on both edges: median \d+ ms, max \d+ ms \(this run\)", summary
    )
    fps = [float(v) for v in re.findall(r"^  \S+/\S+: ([0-9.]+) frames/s processed$", summary, re.MULTILINE)]
    assert len(fps) == 2 and all(value > 1.0 for value in fps), summary
    assert "every enrolled person was recognised at both sites" in summary
    assert re.search(r"API docs \(Swagger UI\)\s+http://127\.0\.0\.1:\d+/schema/swagger", summary)
    assert re.search(r"console\s+http://127\.0\.0\.1:\d+/console/", summary)
    assert f"admin API key in {state / 'admin-key'}" in summary  # where the key is, never the key itself
    assert output.rstrip().endswith("== stopped cleanly")
    assert "ending early" in output  # --until-seen ended the window once everyone was seen
    assert not list((state / "pids").glob("*.pid")), "a child process was left running"
    assert _modes(state.parent) == parents, "the demo changed the permissions of a parent folder"
    key = (state / "admin-key").stat()
    assert stat.S_IMODE(key.st_mode) == 0o600


def _enroll_in_console(url: str, key: str, photo: Path) -> str:
    """Eileen Collins through the console's forms, as docs/demo.md walks a user through it: her id."""
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=60, follow_redirects=True) as console:
        assert console.post("/console/signin", data={"key": key}).status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', console.get("/console/people").text)
        assert csrf is not None
        fields = {"external_id": "collins", "display_name": NOT_ENROLLED, "galleries": ["staff"]}
        person = console.post("/console/people", data={**fields, "csrf": csrf.group(1)})
        person_id = person.url.path.rsplit("/", 1)[1]
        files = {"photos": (photo.name, photo.read_bytes(), "image/png")}
        enrolled = console.post(
            f"/console/people/{person_id}/photos", data={"csrf": csrf.group(1)}, files=files
        )
        assert 'data-status="accepted"' in enrolled.text, enrolled.text
        return person_id


def _sites_seen(url: str, key: str, person_id: str) -> set[str]:
    answer = httpx.get(f"{url}/api/v1/events", params={"person_id": person_id, "limit": 100},
                       headers={"Authorization": f"Bearer {key}"}, timeout=10)  # fmt: skip
    return {event["site"] for event in answer.json()["items"]}


def test_demo_second_run_reuses_state_and_ctrl_c_stops_everything(
    state: Path, model_dir: Path, samples: dict[str, SamplePhoto]
) -> None:
    if not (state / "state.json").exists():
        pytest.skip("needs the first run's state (run the module)")
    proc = subprocess.Popen(
        [*SIGINT_IGNORED, *DEMO, "--state", str(state), "--duration", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(model_dir),
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("== live") or time.monotonic() > deadline:
            break
    assert any(line.startswith("== live") for line in lines), "".join(lines)
    assert "reused from an earlier run" in lines[0]
    assert not any(line.startswith("== enrolled") for line in lines), "people were enrolled again"
    pids = {p.stem: int(p.read_text()) for p in (state / "pids").glob("*.pid")}
    brokers = {"mosquitto", "embedded-broker"}
    assert set(pids) - brokers == {"central", *(f"edge-{site.id}" for site in SITES)}, pids
    assert len(set(pids) & brokers) == 1, pids
    url = re.search(r"central on (http://\S+) ", "".join(lines))
    assert url is not None
    assert httpx.get(f"{url.group(1)}/schema/swagger", timeout=10).status_code == 200
    key = (state / "admin-key").read_text().strip()
    eileen = _enroll_in_console(url.group(1), key, samples["astronaut"].path)
    deadline = time.monotonic() + 60
    while _sites_seen(url.group(1), key, eileen) != {site.id for site in SITES}:
        assert time.monotonic() < deadline, "Eileen Collins, enrolled in the console, was not recognised"
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "interrupted" in output and output.rstrip().endswith("== stopped cleanly")
    summary = output[output.index("== summary") :]
    assert f"({NOT_ENROLLED} was enrolled since the first run: no face on camera is unknown" in summary
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"{name} (pid {pid}) still runs"
    cluster = postgres_for(state, 0, "")
    assert not (cluster.data / "postmaster.pid").exists(), "PostgreSQL still runs"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
