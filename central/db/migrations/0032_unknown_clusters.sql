-- Unknown faces grouped (central/clusters/, docs/operator-loop.md): clusters of unknown events'
-- embeddings across cameras and sites, grown incrementally by the clustering worker.
-- `centroid`: the sum of the members' unit embeddings (cosine to it is cosine to their mean);
-- pgvector search over it (column `vec`, HNSW) is added by central/db/vectors.py where available.
CREATE TABLE unknown_clusters (
    id             bigserial PRIMARY KEY,
    model_id       text NOT NULL,
    centroid       real[] NOT NULL CHECK (cardinality(centroid) BETWEEN 1 AND 512),
    members        integer NOT NULL DEFAULT 0 CHECK (members >= 0),
    sites          text[] NOT NULL DEFAULT '{}',
    first_seen     timestamptz NOT NULL,
    last_seen      timestamptz NOT NULL,
    best_event_id  uuid,
    best_quality   real NOT NULL DEFAULT -1,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'enrolled', 'merged')),
    person_id      uuid,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unknown_clusters_open ON unknown_clusters (last_seen DESC) WHERE status = 'open';
CREATE INDEX unknown_clusters_sites ON unknown_clusters USING gin (sites);
CREATE INDEX event_embeddings_cluster ON event_embeddings (cluster_id, ts DESC) WHERE cluster_id IS NOT NULL;
-- The worker's queue: unknown faces not yet clustered.
CREATE INDEX event_embeddings_unclustered ON event_embeddings (ts)
    WHERE cluster_id IS NULL AND person_id IS NULL;
