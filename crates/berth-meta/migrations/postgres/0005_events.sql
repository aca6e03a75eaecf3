-- Event configuration (issue 8): EventBridge rules and their targets, connections and API
-- destinations, as the EventBridge API (`AWSEvents.*`) configures them. Times are Unix
-- epoch milliseconds. Rows only: patterns are validated, and secrets generated, by the
-- caller before they are stored.
--
-- PostgreSQL port of migrations/sqlite/0005_events.sql: INTEGER became BIGINT, and the
-- names listings order and page by are COLLATE "C" (byte order, as SQLite's BINARY).

-- Rules (EventBridge `Rule`). Only the `default` event bus exists today; the bus is part of
-- the key so that more buses are a data change, not a schema change.
CREATE TABLE event_rules (
    event_bus_name  TEXT COLLATE "C" NOT NULL DEFAULT 'default',
    name            TEXT COLLATE "C" NOT NULL,
    arn             TEXT NOT NULL UNIQUE,
    description     TEXT,
    -- The event pattern as the caller sent it (JSON text); NULL only for a rule without
    -- a pattern (a schedule rule, which Berth does not create).
    event_pattern   TEXT,
    state           TEXT NOT NULL CHECK (state IN ('ENABLED', 'DISABLED')),
    role_arn        TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (event_bus_name, name)
);

-- Targets of a rule (EventBridge `Target`), at most 5 per rule (EventBridge's quota).
-- `arn` is usually an API destination's ARN (`event_api_destinations.arn`); the delivery
-- pipeline resolves it. JSON columns hold the EventBridge wire shapes verbatim
-- (`InputTransformer`, `HttpParameters`).
CREATE TABLE event_targets (
    event_bus_name          TEXT COLLATE "C" NOT NULL,
    rule_name               TEXT COLLATE "C" NOT NULL,
    target_id               TEXT COLLATE "C" NOT NULL,
    arn                     TEXT NOT NULL,
    role_arn                TEXT,
    input                   TEXT,
    input_path              TEXT,
    input_transformer       TEXT,
    http_parameters         TEXT,
    max_event_age_seconds   BIGINT,
    max_retry_attempts      BIGINT,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    PRIMARY KEY (event_bus_name, rule_name, target_id),
    FOREIGN KEY (event_bus_name, rule_name) REFERENCES event_rules (event_bus_name, name)
        ON DELETE CASCADE
);
CREATE INDEX event_targets_arn ON event_targets (arn);

-- Connections (EventBridge `Connection`): how to authorise against an endpoint.
-- `auth_parameters` is the `CreateConnectionAuthRequestParameters` JSON as the caller sent
-- it, secrets (passwords, API key values, client secrets) included: this table is never
-- returned as is by the API.
CREATE TABLE event_connections (
    name                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    arn                 TEXT NOT NULL UNIQUE,
    description         TEXT,
    authorization_type  TEXT NOT NULL
        CHECK (authorization_type IN ('BASIC', 'API_KEY', 'OAUTH_CLIENT_CREDENTIALS')),
    auth_parameters     TEXT NOT NULL,
    state               TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    last_authorized_at  BIGINT
);

-- API destinations (EventBridge `ApiDestination`): Berth's webhooks. `signing_secret` is
-- Berth's per-destination HMAC-SHA256 key for the `X-Berth-Signature` header, generated
-- at creation, shown only through `berth admin events destination-secret`.
CREATE TABLE event_api_destinations (
    name                              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    arn                               TEXT NOT NULL UNIQUE,
    description                       TEXT,
    connection_arn                    TEXT NOT NULL,
    invocation_endpoint               TEXT NOT NULL,
    http_method                       TEXT NOT NULL,
    invocation_rate_limit_per_second  BIGINT,
    signing_secret                    TEXT NOT NULL,
    state                             TEXT NOT NULL CHECK (state IN ('ACTIVE', 'INACTIVE')),
    created_at                        BIGINT NOT NULL,
    updated_at                        BIGINT NOT NULL
);
CREATE INDEX event_api_destinations_connection ON event_api_destinations (connection_arn);

-- Bumped by every write to the tables above, in the same transaction, so a reader that
-- caches `deliverable_targets` knows when to read again.
CREATE TABLE event_config_generation (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO event_config_generation (id, generation) VALUES (1, 0);
