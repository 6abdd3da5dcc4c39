-- Event embeddings (facegate.event/1.1): the track's best face embedding, L2-normalised, one row per
-- event that carried one (docs/operator-loop.md). Kept apart from the partitioned `events` table so
-- erase and retention can drop them without touching the event, and so a similarity index (pgvector,
-- added by central/db/vectors.py where the extension is available) covers only this table.
-- `person_id`: who the event is of now: the edge's decision, or the operator's correction.
CREATE TABLE event_embeddings (
    event_id    uuid PRIMARY KEY,
    ts          timestamptz NOT NULL,
    site_id     text NOT NULL,
    edge_id     text NOT NULL,
    camera      text NOT NULL,
    person_id   uuid,
    model_id    text NOT NULL,
    embedding   real[] NOT NULL CHECK (cardinality(embedding) BETWEEN 1 AND 512),
    cluster_id  bigint
);
CREATE INDEX event_embeddings_ts ON event_embeddings (ts);
CREATE INDEX event_embeddings_person ON event_embeddings (person_id) WHERE person_id IS NOT NULL;
CREATE INDEX event_embeddings_site ON event_embeddings (site_id, ts DESC);
