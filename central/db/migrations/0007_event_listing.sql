-- Event listing indexes for GET /api/v1/events (central/events/repository.py, docs/central-fleet-events.md).
--
-- Listing is newest first with a keyset cursor over (ts DESC, id DESC), so every listing index ends in
-- (ts DESC, id DESC): a page is one index range scan, `(ts, id) < (cursor)` is an index condition, and
-- equal timestamps need no sort. These replace the 0003 indexes that ended in ts alone (same leading
-- columns, so the queries those served still use these). Building them locks `events` for the build:
-- on a large existing table, apply this migration in a maintenance window.

DROP INDEX events_ts;
DROP INDEX events_site_ts;
DROP INDEX events_edge_ts;
DROP INDEX events_person_ts;

CREATE INDEX events_ts_id ON events (ts DESC, id DESC);
CREATE INDEX events_site_ts_id ON events (site_id, ts DESC, id DESC);
CREATE INDEX events_edge_ts_id ON events (site_id, edge_id, ts DESC, id DESC);
CREATE INDEX events_person_ts_id ON events (person_id, ts DESC, id DESC) WHERE person_id IS NOT NULL;
-- Filters the 0003 indexes did not serve: one camera, and unknown faces only.
CREATE INDEX events_camera_ts_id ON events (camera, ts DESC, id DESC);
CREATE INDEX events_unknown_ts_id ON events (ts DESC, id DESC) WHERE person_id IS NULL;
