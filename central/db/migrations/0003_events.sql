-- Recognition events, partitioned by month on the event time; idempotent on the edge's event id.
-- Monthly partitions are created ahead of time by central/db/partitions.py; events_default takes
-- any event outside them so an odd timestamp is never refused.

-- Ledger of every event id ever stored: the global uniqueness a partitioned table cannot give
-- (its unique indexes must include ts). Filled by the events_claim_id trigger below.
CREATE TABLE event_ids (
    id          uuid PRIMARY KEY,
    ts          timestamptz NOT NULL
);
CREATE INDEX event_ids_ts ON event_ids USING brin (ts);  -- retention: DELETE ... WHERE ts < cutoff

CREATE TABLE events (
    id              uuid NOT NULL,            -- the edge's event id (UUIDv7)
    ts              timestamptz NOT NULL,     -- event time on the edge (partition key)
    received_at     timestamptz NOT NULL DEFAULT now(),
    site_id         text NOT NULL,            -- no FK: ingest must never refuse an event
    edge_id         text NOT NULL,
    camera          text NOT NULL,
    seq             bigint NOT NULL DEFAULT 0,
    track_id        bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('recognized', 'unknown', 'changed')),
    person_id       uuid,                     -- NULL: unknown face
    score           real NOT NULL,
    threshold       real NOT NULL,
    quality         real NOT NULL,
    bbox            real[] NOT NULL CHECK (cardinality(bbox) = 4),  -- [x, y, w, h] in pixels
    model_id        text NOT NULL,
    gallery_id      text,
    gallery_version integer NOT NULL DEFAULT 0,
    first_seen      timestamptz,
    crop_key        text,                     -- object key of the face crop, if any
    -- Set when the person was erased: crop deleted (crop_key NULL), the row kept for counts.
    erased_at       timestamptz,
    CHECK (erased_at IS NULL OR crop_key IS NULL),
    PRIMARY KEY (id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE INDEX events_person_ts ON events (person_id, ts DESC) WHERE person_id IS NOT NULL;
CREATE INDEX events_edge_ts ON events (site_id, edge_id, ts DESC);
CREATE INDEX events_site_ts ON events (site_id, ts DESC);
CREATE INDEX events_ts ON events (ts DESC);

-- Skip (return NULL) any row whose id was stored before, whatever its ts: INSERT INTO events is
-- idempotent for every writer. A concurrent insert of the same id waits for the first to commit
-- or roll back. partitions.py sets facegate.moving_events while it re-files rows it already owns.
CREATE FUNCTION events_claim_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('facegate.moving_events', true) = 'on' THEN
        RETURN NEW;
    END IF;
    INSERT INTO event_ids (id, ts) VALUES (NEW.id, NEW.ts) ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER events_claim_id BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_claim_id();
