-- Submissions waiting for their seminar's offer (Kafka orders nothing across topics), the
-- seminar's course (contract addition, default basic), and when a registration was submitted
-- (the occurred_at of its submission; unknown for the rows stored before).

ALTER TABLE seminars
    ADD COLUMN course text NOT NULL DEFAULT 'basic' CHECK (course IN ('basic', 'follow_up'));

ALTER TABLE registrations ADD COLUMN submitted_at timestamptz;

CREATE SEQUENCE parking_order;

CREATE TABLE parked_submissions (
    registration_id    text        PRIMARY KEY,
    seminar_id         text        NOT NULL,
    given_kommune_key  text        NOT NULL,
    -- Canonical key: a key of the wrong shape is rejected at once, never parked.
    kommune_key        text        NOT NULL,
    given_name         text        NOT NULL,
    family_name        text        NOT NULL,
    participant_email  text        NOT NULL,
    contact_email      text        NOT NULL,
    submitted_at       timestamptz NOT NULL,
    -- The submission's ids: what it publishes when decided derives from them.
    event_id           uuid        NOT NULL,
    correlation_id     uuid        NOT NULL,
    -- Arrival: the grace runs from arrived_at; the offer decides in arrival_seq order.
    arrived_at         timestamptz NOT NULL DEFAULT now(),
    arrival_seq        bigint      NOT NULL UNIQUE
);

CREATE INDEX parked_submissions_by_seminar ON parked_submissions (seminar_id, arrival_seq);
CREATE INDEX parked_submissions_by_arrival ON parked_submissions (arrived_at, arrival_seq);
