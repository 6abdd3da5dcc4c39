-- Bulk enrollment jobs (a zip of one folder per person) and their per-photo results.
-- See docs/central-enrollment-jobs.md for the queue and lease semantics.

CREATE TABLE enrollment_jobs (
    id           uuid PRIMARY KEY,
    status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    created_by   text NOT NULL,           -- audit actor of the creating key, e.g. 'key:<prefix>'
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    object_key   text NOT NULL UNIQUE,    -- the uploaded zip (jobs/{id}.zip); deleted once finished
    total        integer NOT NULL CHECK (total > 0),
    people       integer NOT NULL CHECK (people > 0),
    processed    integer NOT NULL DEFAULT 0,
    accepted     integer NOT NULL DEFAULT 0,
    rejected     integer NOT NULL DEFAULT 0,
    -- Entries not enrolled ([{"entry": name, "reason": ...}], capped) and how many there were.
    skipped      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(skipped) = 'array'),
    skipped_count integer NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
    error        text,
    -- The replica worker that holds the job and until when. A queued job's lease_until is when a
    -- sweep may enqueue it again (its queue entry may have been lost); a running job whose lease
    -- expired is taken over by any replica.
    claimed_by   text,
    lease_until  timestamptz,
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    CHECK (processed = accepted + rejected AND processed <= total),
    CHECK (status IN ('done', 'failed') OR finished_at IS NULL)
);
CREATE INDEX enrollment_jobs_recent ON enrollment_jobs (created_at DESC, id DESC);
CREATE INDEX enrollment_jobs_lease ON enrollment_jobs (lease_until) WHERE status IN ('queued', 'running');

CREATE TABLE enrollment_job_results (
    job_id            uuid NOT NULL REFERENCES enrollment_jobs (id) ON DELETE CASCADE,
    seq               integer NOT NULL CHECK (seq >= 0),  -- the photo's index in the archive's plan
    external_id       text NOT NULL,
    filename          text NOT NULL,
    status            text NOT NULL CHECK (status IN ('accepted', 'rejected')),
    reason            text,
    message           text,
    photo_id          uuid,
    template_id       uuid,
    quality           real,
    similar_person_id uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (status = 'accepted' OR reason IS NOT NULL),
    PRIMARY KEY (job_id, seq)  -- one result per photo: a re-run after a takeover cannot count twice
);
