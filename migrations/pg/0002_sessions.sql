-- Firmware-update sessions for PostgreSQL: the table of migrations/sqlite/0002_sessions.sql,
-- same columns and meanings (see there). Only here: events, the session events of every
-- process, kept for a while so that the other processes' listeners copy them into their own
-- event bus (a notification names the row; old rows are pruned).

CREATE TABLE sessions (
	id TEXT PRIMARY KEY,
	create_time TEXT NOT NULL,
	update_time TEXT NOT NULL,
	creator TEXT NOT NULL DEFAULT '',
	creator_id TEXT,
	state TEXT NOT NULL CHECK (state IN ('ready', 'up_to_date', 'queued', 'processing',
		'created', 'success', 'fail', 'unconfirmed')),
	finished BIGINT NOT NULL DEFAULT 0,
	expire_us BIGINT,
	delivery_procedure_id TEXT NOT NULL REFERENCES delivery_procedures(id),
	product_id TEXT NOT NULL,
	model_id TEXT NOT NULL REFERENCES models(id),
	channel_id TEXT REFERENCES channels(id),
	device_ref TEXT REFERENCES devices(id) ON DELETE SET NULL,
	device_name TEXT,
	current_firmware_id TEXT REFERENCES firmware(id) ON DELETE SET NULL,
	current_version TEXT,
	target_firmware_id TEXT REFERENCES firmware(id) ON DELETE SET NULL,
	target_version TEXT,
	allow_draft BIGINT NOT NULL DEFAULT 0,
	steps TEXT NOT NULL DEFAULT '[]',
	needs_confirm BIGINT NOT NULL DEFAULT 0,
	ready_timeout BIGINT NOT NULL,
	processing_timeout BIGINT NOT NULL,
	confirm_timeout BIGINT NOT NULL,
	retention BIGINT NOT NULL,
	base_url TEXT NOT NULL DEFAULT '',
	queue_us BIGINT,
	lease_owner TEXT,
	lease_until BIGINT,
	attempts BIGINT NOT NULL DEFAULT 0,
	payload TEXT NOT NULL DEFAULT '{}',
	error TEXT,
	history TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX sessions_expire ON sessions(expire_us) WHERE finished = 0;
CREATE INDEX sessions_queue ON sessions(state, queue_us);
CREATE INDEX sessions_model ON sessions(model_id, create_time);
CREATE INDEX sessions_device ON sessions(device_ref);
CREATE INDEX sessions_created ON sessions(create_time, id);
CREATE INDEX sessions_lease ON sessions(lease_owner) WHERE state = 'processing';

CREATE TABLE events (
	seq BIGSERIAL PRIMARY KEY,
	origin TEXT NOT NULL,
	need TEXT NOT NULL,
	type TEXT NOT NULL,
	session_id TEXT NOT NULL,
	product_id TEXT NOT NULL,
	model_id TEXT NOT NULL,
	channel_id TEXT,
	data TEXT,
	create_us BIGINT NOT NULL
);
CREATE INDEX events_age ON events(create_us);
