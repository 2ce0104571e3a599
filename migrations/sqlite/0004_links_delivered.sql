-- Short links and delivered bytes (issue 15).
--
-- link_hash is the SHA-256 (64 lower-case hex digits) of the session's short-link token;
-- the token itself is never stored. It is set by the link step while the session is
-- processing and cleared when a worker claims the session again, so each run has its own
-- link. The partial unique index answers the look-up of a presented token in one probe.
--
-- delivered_bytes counts the image bytes sent for the session over any transport, repeats
-- included; delivered_covered is how many distinct bytes were sent at least once, and
-- delivered_ranges the byte intervals behind it ("start-end,..." with end exclusive, at
-- most 256 of them). The flusher (server/pipeline/delivered.c) adds to them every second
-- and at state changes; no row is written per range or block.

ALTER TABLE sessions ADD COLUMN link_hash TEXT;
ALTER TABLE sessions ADD COLUMN delivered_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN delivered_covered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN delivered_ranges TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX sessions_link ON sessions(link_hash) WHERE link_hash IS NOT NULL;
