"""`facegate edge gallery import | show`: the local gallery cache, for tests and sites with no central.

`import SNAPSHOT --db PATH` loads a snapshot file (MessagePack, DESIGN.md "Snapshot file") into the
gallery database at PATH, replacing what it held, and saves its index; `--sha256 HEX` refuses a
file whose digest differs. `show --db PATH` prints what the database holds without building the
index. Exit statuses: 0 done; 2 an unreadable, corrupt or refused file; 3 a snapshot or database
of another model.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
from pathlib import Path
from typing import Any

import msgspec
import sqlite_utils

from common.errors import FacegateError
from common.messages import decode_snapshot
from edge.gallery import index as ix
from edge.gallery.cache import Gallery, GalleryModelError, index_path, index_stamp, read_meta

EXIT_OK, EXIT_BAD_INPUT, EXIT_MODEL = 0, 2, 3


def register(sub: Any) -> None:
    parser = sub.add_parser("gallery", help="the local gallery cache: import a snapshot, show what it holds")
    gsub = parser.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")
    load = gsub.add_parser("import", help="load a snapshot file into the gallery database (replacing it)")
    load.add_argument("snapshot", type=Path, metavar="SNAPSHOT", help="snapshot file (MessagePack)")
    load.add_argument("--gallery", help="gallery id to store it under (default: the snapshot's own)")
    load.add_argument("--sha256", metavar="HEX", help="refuse the file unless its sha256 is this")
    load.add_argument("--allow-older", action="store_true", help="accept a version older than the database's")
    show = gsub.add_parser("show", help="gallery id, version, counts, model and index of a gallery database")
    show.add_argument("--json", action="store_true", help="one JSON object on stdout")
    for action in (load, show):
        action.add_argument("--db", type=Path, required=True, metavar="PATH", help="gallery database file")
        action.add_argument(
            "--exact-below",
            type=int,
            default=ix.IndexSettings().exact_below,
            metavar="N",
            help="exact search below N indexed entries, hnswlib above (default %(default)s)",
        )
        action.add_argument(
            "--person-match",
            choices=("best", "mean"),
            default="best",
            help="index every template (best) or each person's mean (default %(default)s)",
        )
    load.set_defaults(handler=run_import)
    show.set_defaults(handler=run_show)


def _settings(args: argparse.Namespace) -> ix.IndexSettings:
    return ix.IndexSettings(exact_below=args.exact_below, person_match=args.person_match)


def run_import(args: argparse.Namespace) -> int:
    try:
        data = args.snapshot.read_bytes()
        if args.sha256 and hashlib.sha256(data).hexdigest() != args.sha256.lower():
            raise FacegateError(f"{args.snapshot}: sha256 differs from {args.sha256}; download it again")
        snapshot = decode_snapshot(data)
        if args.gallery:
            snapshot = msgspec.structs.replace(snapshot, gallery=args.gallery)
        dim = snapshot.embedding_size
        with Gallery.open(args.db, snapshot.gallery, snapshot.model, _settings(args), dim=dim) as gallery:
            gallery.replace_with_snapshot(snapshot, allow_older=args.allow_older)
            kind = gallery.index_kind
    except GalleryModelError as err:
        sys.stderr.write(f"facegate: {err}\n")
        return EXIT_MODEL
    except (FacegateError, OSError, sqlite3.DatabaseError) as err:
        sys.stderr.write(f"facegate: {err}\n")
        return EXIT_BAD_INPUT
    count = len(snapshot.templates)
    _say(f"imported gallery {snapshot.gallery} version {snapshot.version}: {count} templates of model")
    _say(f"  {snapshot.model}, {kind} index, into {args.db}")
    return EXIT_OK


def read_info(path: Path, settings: ix.IndexSettings) -> dict[str, Any]:
    """What the gallery database at `path` holds, read without building (or writing) anything."""
    if not path.is_file():
        raise FacegateError(f"no gallery database at {path}")
    db = sqlite_utils.Database(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))
    try:
        meta = read_meta(db)
        if meta is None:
            raise FacegateError(f"{path} holds no gallery yet")
        stamp = index_stamp(db, settings)
        return {
            "gallery": meta["gallery"],
            "version": meta["version"],
            "model": meta["model"],
            "embedding_size": meta["embedding_size"],
            "templates": int(db.table("templates").count),
            "people": int(db.table("people").count),
            "updated": meta["updated"],
            "index": ix.kind_for(stamp.entries, settings),
            "index_saved": ix.read_stamp(index_path(path)) == stamp,
        }
    except sqlite3.DatabaseError as err:
        raise FacegateError(f"{path} is not a gallery database: {err}") from err
    finally:
        db.close()


def run_show(args: argparse.Namespace) -> int:
    try:
        info = read_info(args.db, _settings(args))
    except FacegateError as err:
        sys.stderr.write(f"facegate: {err}\n")
        return EXIT_BAD_INPUT
    if args.json:
        _say(msgspec.json.encode(info).decode())
        return EXIT_OK
    saved = "saved index current" if info["index_saved"] else "no current saved index: built at start-up"
    _say(f"gallery     {info['gallery']}")
    _say(f"version     {info['version']}  (updated {info['updated']})")
    _say(f"model       {info['model']}  ({info['embedding_size']}-d)")
    _say(f"templates   {info['templates']}")
    _say(f"people      {info['people']}")
    _say(f"index       {info['index']}" + (f"  ({saved})" if info["index"] == "hnsw" else ""))
    return EXIT_OK


def _say(line: str) -> None:
    """Command output on stdout (logs go to stderr)."""
    sys.stdout.write(line + "\n")
