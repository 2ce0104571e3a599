-- Short links and delivered bytes (issue 15); see migrations/sqlite/0004_links_delivered.sql.
ALTER TABLE sessions ADD COLUMN link_hash TEXT;
ALTER TABLE sessions ADD COLUMN delivered_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN delivered_covered BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN delivered_ranges TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX sessions_link ON sessions(link_hash) WHERE link_hash IS NOT NULL;
