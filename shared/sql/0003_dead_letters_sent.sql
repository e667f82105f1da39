-- Consumed records that were sent to their dead-letter topic, so that a batch retried or
-- redelivered after a rewind sends each one's copy once.

CREATE TABLE dead_letters_sent (
    topic          text        NOT NULL,
    "partition"    integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    sent_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, "partition", "offset")
);
