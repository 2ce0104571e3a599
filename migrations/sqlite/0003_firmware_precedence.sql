-- Target selection picks the highest SemVer precedence in SQL (ORDER BY ... LIMIT 1 over an
-- index), which the text of a version cannot give: '1.10.0' < '1.9.0' as text. version_key
-- is the version's precedence key (server/core/target.c), whose byte order is precedence.
-- Rows written before this migration get theirs when the server starts
-- (dh_db_firmware_fill_keys). On PostgreSQL the column must compare bytewise:
-- version_key TEXT COLLATE "C".
ALTER TABLE firmware ADD COLUMN version_key TEXT;
-- The index is in the query's order, ties (oldest first) included, so no sort is needed.
CREATE INDEX firmware_precedence ON firmware(model_id, version_key DESC, create_time, id);
