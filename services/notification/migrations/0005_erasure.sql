-- Erasure of personal data (ADR 0018): the registration's contact address and participant name,
-- and its letters' recipients, subjects and bytes become NULL; that a letter of a template was
-- sent on a day stays (template, status, sent_at). The letter retention drops only the bytes.
-- An erased registration keeps a marker, so that no redelivered event, dead-letter replay or
-- `lotse mail resend` brings its data back or sends a letter with it.

ALTER TABLE registrations ALTER COLUMN contact_email DROP NOT NULL;
ALTER TABLE emails
    ALTER COLUMN recipient DROP NOT NULL,
    ALTER COLUMN subject DROP NOT NULL,
    ALTER COLUMN message DROP NOT NULL;

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

-- The letter retention: the sent letters whose bytes are still held.
CREATE INDEX emails_letters_held ON emails (sent_at) WHERE status = 'sent' AND message IS NOT NULL;
