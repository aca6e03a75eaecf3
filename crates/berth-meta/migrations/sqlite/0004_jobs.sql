-- Durable background jobs (issue 8). Times are Unix epoch milliseconds.
--
-- Portable to PostgreSQL as written except: `id` becomes `BIGINT GENERATED ALWAYS AS
-- IDENTITY PRIMARY KEY`, and the partial indexes keep their WHERE clauses unchanged.
--
-- States: queued (waiting for run_at), running (leased to lease_owner until
-- lease_expires_at), retrying (failed, waiting for run_at to try again), succeeded,
-- dead (failed for good: permanent error, max_attempts or deadline reached; last_error
-- says why), cancelled.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    idempotency_key  TEXT,
    state            TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'dead', 'cancelled')),
    run_at           INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    deadline         INTEGER,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    last_error       TEXT,
    result           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
);

-- Enqueueing a key that is already pending (queued, retrying) or running is a no-op;
-- once the job finished, the same key may be enqueued again.
CREATE UNIQUE INDEX jobs_active_key ON jobs (kind, idempotency_key)
    WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running', 'retrying');

-- Claiming: due jobs of one kind, oldest first; expired leases.
CREATE INDEX jobs_due ON jobs (kind, run_at)
    WHERE state IN ('queued', 'retrying');
CREATE INDEX jobs_leased ON jobs (kind, lease_expires_at)
    WHERE state = 'running';

-- Inspection: listing by state (and kind), newest first.
CREATE INDEX jobs_state ON jobs (state, id);
