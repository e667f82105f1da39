-- Erasure of personal data (ADR 0018): on an operator's request (command.erase) or by the
-- retention schedule. The personal columns become NULL; statuses, seminars, Kommune keys and
-- counts stay. An erased registration keeps a marker, so that no redelivered event, dead-letter
-- replay or resend brings its data back.

ALTER TABLE registrations
    ALTER COLUMN given_name DROP NOT NULL,
    ALTER COLUMN family_name DROP NOT NULL,
    ALTER COLUMN participant_email DROP NOT NULL,
    ALTER COLUMN contact_email DROP NOT NULL,
    ADD COLUMN erased_at timestamptz;

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

-- One marker per erased registration id, also for ids this service holds nothing of (yet): an
-- event of an erased registration that arrives later is not applied.
CREATE TABLE erased_registrations (
    registration_id text        PRIMARY KEY,
    command_id      uuid        NOT NULL REFERENCES erasures (command_id) DEFERRABLE INITIALLY DEFERRED,
    cause           text        NOT NULL CHECK (cause IN ('request', 'retention')),
    erased_at       timestamptz NOT NULL DEFAULT now()
);

-- The retention schedule: registrations not erased yet, by seminar.
CREATE INDEX registrations_not_erased ON registrations (seminar_id) WHERE erased_at IS NULL;
