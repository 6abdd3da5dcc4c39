-- People and enrollment: the duplicate-check index and the queue of face-data objects to delete.

-- central/enrollment/duplicates.py revalidates its per-model template matrix with
-- count(*) and a sum over template ids of one model, and lists (id, person_id) of that model:
-- both index-only scans with this index.
CREATE INDEX templates_model_id ON templates (model_id, id) INCLUDE (person_id);

-- Objects holding face data (enrollment photos, event crops, gallery snapshots) whose rows are
-- gone and that must be deleted from object storage. Filled in the same transaction that removes
-- the rows (erase, template deletion) or when a clean-up delete failed; a row is removed once its
-- object is gone. is_prefix: object_key is a folder prefix ("photos/<person>/"), delete all under it.
CREATE TABLE pending_deletions (
    object_key  text PRIMARY KEY,
    is_prefix   boolean NOT NULL DEFAULT false,
    person_id   uuid,                 -- the person whose data it is, if any (no FK: tombstones stay)
    created_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text
);
CREATE INDEX pending_deletions_person ON pending_deletions (person_id) WHERE person_id IS NOT NULL;
