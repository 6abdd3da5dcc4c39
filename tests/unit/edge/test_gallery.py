"""The gallery cache: real SQLite files in tmp_path, real hnswlib, real threads."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import msgspec
import numpy as np
import pytest
from numpy.typing import NDArray

from common.messages import (
    GalleryChange,
    Snapshot,
    SnapshotTemplate,
    Template,
    embedding_bytes,
    encode_snapshot,
)
from edge.gallery.cache import Gallery, GalleryError, GalleryModelError, GalleryVersionError
from edge.gallery.index import IndexSettings

FACEGATE = str(Path(sys.executable).parent / "facegate")
MODEL, DIM = "sface-2021dec", 32
HNSW = IndexSettings(exact_below=0)  # hnswlib from the first template
EXACT = IndexSettings()


def unit(rng: np.random.Generator, n: int = 1, dim: int = DIM) -> NDArray[np.float32]:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    out: NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def near(centre: NDArray[np.float32], rng: np.random.Generator, noise: float = 0.1) -> NDArray[np.float32]:
    v = centre + noise * rng.standard_normal(centre.shape).astype(np.float32) / np.sqrt(centre.shape[-1])
    out: NDArray[np.float32] = v / np.linalg.norm(v)
    return out


def template(person: str, tid: str, vector: NDArray[np.float32], model: str = MODEL) -> Template:
    return Template(person_id=person, template_id=tid, model=model, embedding=embedding_bytes(vector))


def snapshot(
    people: dict[str, NDArray[np.float32]], version: int = 1, per_person: int = 1, seed: int = 0
) -> Snapshot:
    """`per_person` noisy templates around each person's centre, template ids `<person>-<n>`."""
    rng = np.random.default_rng(seed)
    templates = [
        SnapshotTemplate(person_id=p, template_id=f"{p}-{n}", embedding=embedding_bytes(near(c, rng)))
        for p, c in people.items()
        for n in range(per_person)
    ]
    return Snapshot(gallery="g1", version=version, model=MODEL, embedding_size=DIM, templates=templates)


def centres(prefix: str, n: int, seed: int) -> dict[str, NDArray[np.float32]]:
    return {f"{prefix}{i}": v for i, v in enumerate(unit(np.random.default_rng(seed), n))}


def top_person(gallery: Gallery, vector: NDArray[np.float32]) -> str | None:
    hits = gallery.search(vector, 1)[0]
    return hits[0].person_id if hits else None


def state(gallery: Gallery, probes: NDArray[np.float32]) -> tuple[int, int, list[list[str | None]]]:
    return (
        gallery.version,
        gallery.template_count,
        [[h.template_id for h in r] for r in gallery.search(probes, 3)],
    )


def test_gallery_deltas_in_order_upsert_delete_template_delete_person_applied(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a, b, c = unit(rng, 3)
    with Gallery.open(tmp_path / "g.db", "g1", MODEL) as g:
        g.apply_delta(
            GalleryChange(
                gallery="g1",
                version=1,
                model=MODEL,
                upserts=[
                    template("alice", "a1", a),
                    template("alice", "a2", near(a, rng)),
                    template("bob", "b1", b),
                ],
            )
        )
        assert (g.version, g.template_count, top_person(g, a), top_person(g, b)) == (1, 3, "alice", "bob")
        g.apply_delta(
            GalleryChange(
                gallery="g1",
                version=2,
                model=MODEL,
                deleted_templates=["a1"],
                upserts=[template("carol", "c1", c), template("bob", "b1", near(b, rng))],
            )
        )
        assert (g.version, g.template_count) == (2, 3)
        assert {h.template_id for h in g.search(a, 5)[0]} == {"a2", "b1", "c1"}
        assert top_person(g, c) == "carol"
        g.apply_delta(GalleryChange(gallery="g1", version=3, model=MODEL, deleted_people=["alice", "bob"]))
        assert (g.version, g.template_count) == (3, 1)
        assert [h.person_id for h in g.search(a, 5)[0]] == ["carol"]


def test_gallery_delta_with_gap_raises_version_error_and_changes_nothing(tmp_path: Path) -> None:
    probes = unit(np.random.default_rng(2), 4)
    with Gallery.open(tmp_path / "g.db", "g1", MODEL) as g:
        g.replace_with_snapshot(snapshot(centres("p", 5, 2), version=4))
        before = state(g, probes)
        gap = GalleryChange(gallery="g1", version=6, model=MODEL, deleted_people=["p0"])
        with pytest.raises(GalleryVersionError) as err:
            g.apply_delta(gap)
        assert (err.value.current, err.value.offered, err.value.stale) == (4, 6, False)
        assert state(g, probes) == before


def test_gallery_stale_delta_refused_as_stale(tmp_path: Path) -> None:
    with Gallery.open(tmp_path / "g.db", "g1", MODEL) as g:
        g.replace_with_snapshot(snapshot(centres("p", 3, 3), version=5))
        for version in (5, 3):
            with pytest.raises(GalleryVersionError) as err:
                g.apply_delta(
                    GalleryChange(gallery="g1", version=version, model=MODEL, deleted_people=["p0"])
                )
            assert err.value.stale and err.value.current == 5
        assert (g.version, g.template_count) == (5, 3)


@pytest.mark.parametrize("where", ["delta", "one_upsert", "embedding_length"])
def test_gallery_delta_of_wrong_model_refused_and_changes_nothing(tmp_path: Path, where: str) -> None:
    rng = np.random.default_rng(4)
    with Gallery.open(tmp_path / "g.db", "g1", MODEL) as g:
        g.replace_with_snapshot(snapshot(centres("p", 4, 4)))
        probes = unit(rng, 3)
        before = state(g, probes)
        upserts = [template("new", "n1", unit(rng)[0]), template("new", "n2", unit(rng)[0])]
        if where == "one_upsert":
            upserts[1] = template("new", "n2", unit(rng)[0], model="arcface-r100")
        if where == "embedding_length":
            upserts[1] = template("new", "n2", unit(rng, dim=DIM * 2)[0])
        model = "arcface-r100" if where == "delta" else MODEL
        with pytest.raises(GalleryModelError):
            g.apply_delta(GalleryChange(gallery="g1", version=2, model=model, upserts=upserts))
        assert state(g, probes) == before


def test_gallery_snapshot_of_wrong_model_refused_and_changes_nothing(tmp_path: Path) -> None:
    with Gallery.open(tmp_path / "g.db", "g1", MODEL) as g:
        g.replace_with_snapshot(snapshot(centres("p", 4, 5)))
        probes = unit(np.random.default_rng(5), 3)
        before = state(g, probes)
        other = snapshot(centres("q", 4, 6), version=2)
        for bad in (
            msgspec.structs.replace(other, model="arcface-r100"),
            msgspec.structs.replace(other, embedding_size=DIM * 2),
        ):
            with pytest.raises(GalleryModelError):
                g.replace_with_snapshot(bad)
        assert state(g, probes) == before


def test_gallery_snapshot_swap_concurrent_searcher_sees_old_or_new_only(tmp_path: Path) -> None:
    old, new = (
        snapshot(centres("old", 60, 7), per_person=20),
        snapshot(centres("new", 60, 8), 2, per_person=20),
    )
    old_ids = {t.template_id for t in old.templates}
    new_ids = {t.template_id for t in new.templates}
    probes = unit(np.random.default_rng(9), 8)
    answers: list[str] = []
    stop = threading.Event()

    def search_loop(g: Gallery) -> None:
        while not stop.is_set():
            ids = {h.template_id for hits in g.search(probes, 5) for h in hits}
            answers.append("old" if ids <= old_ids else "new" if ids <= new_ids else "mixed")

    def wait_for(count: int, searcher: Future[None]) -> None:
        while len(answers) < count and not searcher.done():
            stop.wait(0.001)

    with Gallery.open(tmp_path / "g.db", "g1", MODEL, HNSW) as g, ThreadPoolExecutor(1) as pool:
        g.replace_with_snapshot(old)
        searcher = pool.submit(search_loop, g)
        wait_for(20, searcher)
        before = len(answers)
        g.replace_with_snapshot(new)  # builds its index while the searcher keeps answering
        during = len(answers) - before
        wait_for(len(answers) + 20, searcher)
        stop.set()
        searcher.result()  # re-raises whatever the searcher thread raised
    assert "mixed" not in answers and during > 0
    flip = answers.index("new")
    assert flip >= 20 and set(answers[:flip]) == {"old"} and set(answers[flip:]) == {"new"}


def test_gallery_reopen_loads_saved_index_without_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    snap = snapshot(centres("p", 50, 10), per_person=3)
    probes = unit(np.random.default_rng(10), 5)
    with Gallery.open(db, "g1", MODEL, HNSW) as g:
        g.replace_with_snapshot(snap)
        expected = g.search(probes, 3)
    mtime = (tmp_path / "g.db.hnsw").stat().st_mtime_ns
    with Gallery.open(db, "g1", MODEL, HNSW) as g:
        assert (g.index_kind, g.index_builds, g.version) == ("hnsw", 0, 1)
        assert g.search(probes, 3) == expected
    assert (tmp_path / "g.db.hnsw").stat().st_mtime_ns == mtime


def test_gallery_reopen_with_stale_index_rebuilds(tmp_path: Path) -> None:
    db, saved = tmp_path / "g.db", tmp_path / "saved"
    rng = np.random.default_rng(11)
    with Gallery.open(db, "g1", MODEL, HNSW) as g:
        g.replace_with_snapshot(snapshot(centres("p", 30, 11)))
    saved.mkdir()
    for name in ("g.db.hnsw", "g.db.hnsw.json"):
        shutil.copy(tmp_path / name, saved / name)
    newcomer = unit(rng)[0]
    with Gallery.open(db, "g1", MODEL, HNSW) as g:
        assert g.index_builds == 0
        g.apply_delta(
            GalleryChange(gallery="g1", version=2, model=MODEL, upserts=[template("z", "z1", newcomer)])
        )
        assert g.index_builds == 0  # applied in place
    for name in ("g.db.hnsw", "g.db.hnsw.json"):  # as if the process died before saving version 2
        shutil.copy(saved / name, tmp_path / name)
    with Gallery.open(db, "g1", MODEL, HNSW) as g:
        assert (g.index_builds, g.version, g.template_count) == (1, 2, 31)
        assert top_person(g, newcomer) == "z"


def test_gallery_exact_below_picks_index_and_both_agree_on_top1(tmp_path: Path) -> None:
    snap = snapshot(centres("p", 200, 12), per_person=4, seed=12)
    rng = np.random.default_rng(13)
    people = centres("p", 200, 12)
    probes = np.stack([near(people[f"p{i}"], rng, 0.6) for i in rng.integers(0, 200, 100)])
    tops = []
    for name, settings in (
        ("exact", IndexSettings(exact_below=801)),
        ("hnsw", IndexSettings(exact_below=800)),
    ):
        with Gallery.open(tmp_path / f"{name}.db", "g1", MODEL, settings) as g:
            g.replace_with_snapshot(snap)
            assert g.index_kind == name
            tops.append([hits[0].template_id for hits in g.search(probes, 1)])
    assert tops[0] == tops[1]


def test_gallery_person_match_best_and_mean_differ(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    query = unit(rng)[0]
    far = unit(rng)[0]
    far -= np.dot(far, query) * query  # orthogonal to the query
    far /= np.linalg.norm(far)
    # alice: one template on the query, one orthogonal; bob: two templates fairly close to it
    vectors = {"a1": query, "a2": far, "b1": near(query, rng, 1.0), "b2": near(query, rng, 1.0)}
    snap = Snapshot(
        gallery="g1",
        version=1,
        model=MODEL,
        embedding_size=DIM,
        templates=[
            SnapshotTemplate(
                person_id="alice" if tid[0] == "a" else "bob", template_id=tid, embedding=embedding_bytes(v)
            )
            for tid, v in vectors.items()
        ],
    )
    found = {}
    for mode in ("best", "mean"):
        with Gallery.open(tmp_path / f"{mode}.db", "g1", MODEL, IndexSettings(person_match=mode)) as g:
            g.replace_with_snapshot(snap)
            found[mode] = g.search(query, 2)[0]
    assert found["best"][0].person_id == "alice" and found["best"][0].template_id == "a1"
    assert [(h.person_id, h.template_id) for h in found["mean"]] == [("bob", None), ("alice", None)]
    assert found["mean"][1].similarity == pytest.approx(np.sqrt(0.5), abs=1e-5)  # mean of two orthogonal


def test_gallery_mean_mode_deltas_update_person_means(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    a, b = unit(rng, 2)
    with Gallery.open(tmp_path / "g.db", "g1", MODEL, IndexSettings(person_match="mean")) as g:
        g.apply_delta(
            GalleryChange(
                gallery="g1",
                version=1,
                model=MODEL,
                upserts=[template("alice", "a1", a), template("bob", "b1", b)],
            )
        )
        g.apply_delta(
            GalleryChange(gallery="g1", version=2, model=MODEL, upserts=[template("alice", "a2", b)])
        )
        hits = {h.person_id: h.similarity for h in g.search(b, 5)[0]}
        expected = float(np.dot((a + b) / np.linalg.norm(a + b), b))
        assert hits["bob"] == pytest.approx(1.0, abs=1e-5) and hits["alice"] == pytest.approx(
            expected, abs=1e-5
        )
        assert g.erase_person("bob") == 1
        assert [h.person_id for h in g.search(b, 5)[0]] == ["alice"]


@pytest.mark.parametrize("settings", [EXACT, HNSW], ids=["exact", "hnsw"])
def test_gallery_erase_person_removes_at_once_without_version_change(
    tmp_path: Path, settings: IndexSettings
) -> None:
    people = centres("p", 20, 16)
    with Gallery.open(tmp_path / "g.db", "g1", MODEL, settings) as g:
        g.replace_with_snapshot(snapshot(people, version=7, per_person=3))
        assert top_person(g, people["p3"]) == "p3"
        builds = g.index_builds
        assert g.erase_person("p3") == 3
        assert (g.version, g.template_count) == (7, 57)
        assert all(h.person_id != "p3" for h in g.search(people["p3"], 10)[0])
        assert g.erase_person("nobody") == 0
        assert g.index_builds == builds  # changed in place, not rebuilt
    with Gallery.open(tmp_path / "g.db", "g1", MODEL, settings) as g:  # and it stays erased
        assert all(h.person_id != "p3" for h in g.search(people["p3"], 10)[0])


def test_gallery_growing_past_exact_below_switches_to_hnsw(tmp_path: Path) -> None:
    rng = np.random.default_rng(17)
    vectors = unit(rng, 12)
    with Gallery.open(tmp_path / "g.db", "g1", MODEL, IndexSettings(exact_below=10)) as g:
        for version, chunk in enumerate((vectors[:8], vectors[8:]), 1):
            ups = [template(f"p{version}{i}", f"t{version}{i}", v) for i, v in enumerate(chunk)]
            g.apply_delta(GalleryChange(gallery="g1", version=version, model=MODEL, upserts=ups))
            assert g.index_kind == ("exact" if version == 1 else "hnsw")
        assert [top_person(g, v) for v in vectors[7:9]] == ["p17", "p20"]


def test_gallery_other_gallery_id_refused(tmp_path: Path) -> None:
    with Gallery.open(tmp_path / "g.db", "g1", MODEL) as g, pytest.raises(GalleryError):
        g.apply_delta(GalleryChange(gallery="g2", version=1, model=MODEL))
    with pytest.raises(GalleryError):
        Gallery.open(tmp_path / "g.db", "g2", MODEL)
    with pytest.raises(GalleryModelError):
        Gallery.open(tmp_path / "g.db", "g1", "arcface-r100")


def test_gallery_cli_import_then_show(tmp_path: Path) -> None:
    snap = snapshot(centres("p", 10, 18), version=3, per_person=2)
    path, db = tmp_path / "snap.msgpack", tmp_path / "g.db"
    path.write_bytes(encode_snapshot(snap))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    bad = subprocess.run(
        [FACEGATE, "edge", "gallery", "import", str(path), "--db", str(db), "--sha256", "0" * 64],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "sha256" in bad.stderr and not db.exists()
    done = subprocess.run(
        [FACEGATE, "edge", "gallery", "import", str(path), "--db", str(db), "--sha256", digest],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(
        [FACEGATE, "edge", "gallery", "show", "--db", str(db), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert {k: info[k] for k in ("gallery", "version", "model", "templates", "people", "index")} == {
        "gallery": "g1",
        "version": 3,
        "model": MODEL,
        "templates": 20,
        "people": 10,
        "index": "exact",
    }
    text = subprocess.run(
        [FACEGATE, "edge", "gallery", "show", "--db", str(db)], capture_output=True, text=True, check=False
    )
    assert text.returncode == 0 and "version" in text.stdout and "exact" in text.stdout
