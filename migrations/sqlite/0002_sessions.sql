-- Firmware-update sessions. Each row is one device's attempt to reach a target firmware; its
-- state changes only through the transition table of server/core/fsm.c, as compare-and-set
-- updates (WHERE state = ?). The procedure's steps and timeouts are copied in at request time
-- so that a later edit of the procedure does not change a running session.
--
-- expire_us (µs since the epoch) is when the current state's timeout fires; the reaper reads
-- it through sessions_expire, a partial index over unfinished sessions, never a table scan.
-- lease_owner/lease_until say which process runs a processing session and until when; a
-- session whose lease expired is taken up again once (attempts) or failed at start-up.

CREATE TABLE sessions (
	id TEXT PRIMARY KEY,
	create_time TEXT NOT NULL,
	update_time TEXT NOT NULL,
	creator TEXT NOT NULL DEFAULT '',
	creator_id TEXT,
	state TEXT NOT NULL CHECK (state IN ('ready', 'up_to_date', 'queued', 'processing',
		'created', 'success', 'fail', 'unconfirmed')),
	finished INTEGER NOT NULL DEFAULT 0,
	expire_us INTEGER,
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
	allow_draft INTEGER NOT NULL DEFAULT 0,
	steps TEXT NOT NULL DEFAULT '[]',
	needs_confirm INTEGER NOT NULL DEFAULT 0,
	ready_timeout INTEGER NOT NULL,
	processing_timeout INTEGER NOT NULL,
	confirm_timeout INTEGER NOT NULL,
	retention INTEGER NOT NULL,
	base_url TEXT NOT NULL DEFAULT '',
	queue_us INTEGER,
	lease_owner TEXT,
	lease_until INTEGER,
	attempts INTEGER NOT NULL DEFAULT 0,
	payload TEXT NOT NULL DEFAULT '{}',
	error TEXT,
	history TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX sessions_expire ON sessions(expire_us) WHERE finished = 0;
CREATE INDEX sessions_queue ON sessions(state, queue_us);
CREATE INDEX sessions_model ON sessions(model_id, create_time);
CREATE INDEX sessions_device ON sessions(device_ref);
CREATE INDEX sessions_created ON sessions(create_time, id);
