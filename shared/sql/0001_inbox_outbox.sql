-- Infrastructure tables every service owns in its own database.

CREATE TABLE inbox (
    event_id     uuid        PRIMARY KEY,
    topic        text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id           bigserial   PRIMARY KEY,
    topic        text        NOT NULL,
    message_key  bytea       NOT NULL,
    payload      bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '[]'::jsonb,
    event_id     uuid        NOT NULL UNIQUE,
    event_type   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

-- The relay reads only unpublished rows, in id order.
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
