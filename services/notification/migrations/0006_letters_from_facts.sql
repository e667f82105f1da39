-- Letters are composed when they are sent, from the facts they are made of (ADR 0024): about half
-- a kilobyte of JSON per letter instead of its 4-6 KB of MIME, which was written, compressed,
-- logged to the WAL and read back for every letter. Letters recorded before keep their bytes and
-- are sent as they are; `message` is written no more.
ALTER TABLE emails ADD COLUMN facts json;

-- The letter retention: the sent letters whose bytes or facts are still held.
DROP INDEX emails_letters_held;
CREATE INDEX emails_letters_held ON emails (sent_at)
    WHERE status = 'sent' AND (message IS NOT NULL OR facts IS NOT NULL);
