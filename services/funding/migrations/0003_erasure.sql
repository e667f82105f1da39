-- Erasure of personal data (ADR 0018): funding holds only the pseudonymised participant identity
-- (participant_hash, already nullable). Decisions, amounts, periods and Kommune keys stay. An
-- erased registration keeps a marker, so that a redelivered acceptance or a dead-letter replay
-- never stores its identity again.

-- Who asked, why and when; how many registrations it erased. Nothing of the erased person.
-- requested_by: the operator's login (personal data of an employee, kept for accountability), or
-- 'retention' for a scheduled round.
CREATE TABLE erasures (
    command_id    uuid        PRIMARY KEY,
    requested_by  text        NOT NULL,
    reason        text        NOT NULL,
    cause         text        NOT NULL CHECK (cause IN ('request', 'retention')),
    registrations integer     NOT NULL CHECK (registrations >= 0),
    erased_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE erased_registrations (
    registration_id text        PRIMARY KEY,
    command_id      uuid        NOT NULL REFERENCES erasures (command_id) DEFERRABLE INITIALLY DEFERRED,
    cause           text        NOT NULL CHECK (cause IN ('request', 'retention')),
    erased_at       timestamptz NOT NULL DEFAULT now()
);

-- The retention schedule: the identities still held.
CREATE INDEX fundings_with_identity ON fundings (period_id) WHERE participant_hash IS NOT NULL;
