-- The notification service's own state.

-- What the registration events told us, so that funding decisions (which carry no address,
-- participant or seminar) can be written as letters.
CREATE TABLE registrations (
    registration_id   text        PRIMARY KEY,
    kommune_key       text        NOT NULL,
    contact_email     text        NOT NULL,
    given_name        text,
    family_name       text,
    seminar_id        text,
    seminar_title     text,
    seminar_starts_on date,
    seminar_ends_on   date,
    fee_cents         bigint,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Funding decisions that arrived before their registration: emailed once it arrives.
CREATE TABLE pending_decisions (
    event_id        uuid        PRIMARY KEY,
    registration_id text        NOT NULL,
    envelope        jsonb       NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_decisions_by_registration ON pending_decisions (registration_id);

-- One row per email to send: recorded with the event that asks for it, sent by the sender loop.
CREATE TABLE emails (
    id              uuid        PRIMARY KEY,
    event_id        uuid        NOT NULL,
    template        text        NOT NULL,
    registration_id text        NOT NULL,
    kommune_key     text        NOT NULL,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    message         bytea       NOT NULL,
    correlation_id  uuid        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'parked')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- How often an operator sent a parked email again: part of the id of its result events.
    resends         integer     NOT NULL DEFAULT 0 CHECK (resends >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    parked_at       timestamptz,
    UNIQUE (event_id, template),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status = 'pending';
CREATE INDEX emails_parked ON emails (parked_at) WHERE status = 'parked';
