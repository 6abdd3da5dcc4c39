"""`facegate central backup` / `restore`: a pg_dump of the database, a copy of the object store and a
manifest of checksums, with retention and an optional off-site copy. See docs/backup.md."""
