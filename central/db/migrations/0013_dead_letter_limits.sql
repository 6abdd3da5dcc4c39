-- Dead letters capped per edge and expired (central/ingest/dead_letters.py, docs/central-ingest.md).
-- The edge a dead letter came from (its topic's site and edge; NULL when the topic names none): the cap
-- of rows and bytes applies per edge, the oldest dropped first. Rows written before this have NULL.
ALTER TABLE dead_letters ADD COLUMN site_id text CHECK (octet_length(site_id) <= 64);
ALTER TABLE dead_letters ADD COLUMN edge_id text CHECK (octet_length(edge_id) <= 64);
CREATE INDEX dead_letters_edge_id ON dead_letters (site_id, edge_id, id DESC);
