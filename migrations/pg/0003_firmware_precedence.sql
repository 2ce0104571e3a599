-- Target selection by precedence key (see migrations/sqlite/0003_firmware_precedence.sql).
-- The key's byte order is precedence, so it compares bytewise: COLLATE "C".
ALTER TABLE firmware ADD COLUMN version_key TEXT COLLATE "C";
CREATE INDEX firmware_precedence ON firmware(model_id, version_key DESC, create_time, id);
