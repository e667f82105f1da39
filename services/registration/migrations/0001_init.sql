-- The registration service's state: seminars, registrations, withdrawals waiting for their submission.

CREATE TABLE seminars (
    seminar_id     text        PRIMARY KEY,
    title          text        NOT NULL,
    starts_on      date        NOT NULL,
    ends_on        date        NOT NULL,
    location       text        NOT NULL,
    fee_cents      bigint      NOT NULL CHECK (fee_cents >= 0),
    capacity       integer     NOT NULL CHECK (capacity >= 1),
    accepted_count integer     NOT NULL DEFAULT 0 CHECK (accepted_count >= 0),
    -- Seats held above capacity after the capacity shrank (a smaller capacity never takes a seat
    -- away). It can only shrink with withdrawals, and only the capacity update may set it.
    kept_seats     integer     NOT NULL DEFAULT 0 CHECK (kept_seats BETWEEN 0 AND accepted_count),
    cancelled      boolean     NOT NULL DEFAULT false,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- A new acceptance needs a free seat: accepted_count may exceed capacity only by seats kept
    -- from before a capacity decrease, and since kept_seats <= accepted_count, accepted_count can
    -- then not grow at all.
    CONSTRAINT seats_within_capacity CHECK (accepted_count <= GREATEST(capacity, kept_seats))
);

CREATE SEQUENCE waitlist_order;

CREATE TABLE registrations (
    registration_id    text        PRIMARY KEY,
    seminar_id         text        NOT NULL,
    given_kommune_key  text        NOT NULL,
    -- Canonical key, or the key as given when its shape is wrong (then status is rejected).
    kommune_key        text        NOT NULL,
    given_name         text        NOT NULL,
    family_name        text        NOT NULL,
    participant_email  text        NOT NULL,
    contact_email      text        NOT NULL,
    status             text        NOT NULL
        CHECK (status IN ('accepted', 'waitlisted', 'withdrawn', 'rejected')),
    -- Arrival order on the waitlist; positions are derived from it.
    waitlist_seq       bigint,
    rejection_reason   text,
    withdrawal_reason  text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'waitlisted') = (waitlist_seq IS NOT NULL)),
    CHECK ((status = 'rejected') = (rejection_reason IS NOT NULL)),
    CHECK ((status = 'withdrawn') = (withdrawal_reason IS NOT NULL))
);

-- One active registration per participant and seminar.
CREATE UNIQUE INDEX registrations_active_participant
    ON registrations (seminar_id, lower(participant_email))
    WHERE status IN ('accepted', 'waitlisted');

CREATE INDEX registrations_waitlist
    ON registrations (seminar_id, waitlist_seq)
    WHERE status = 'waitlisted';

CREATE INDEX registrations_active_by_seminar
    ON registrations (seminar_id)
    WHERE status IN ('accepted', 'waitlisted');

-- A withdrawal that arrived before its submission (order holds only per Kommune key).
CREATE TABLE pending_withdrawals (
    registration_id text        PRIMARY KEY,
    given_kommune_key text      NOT NULL,
    event_id        uuid        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
