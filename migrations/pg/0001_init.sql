-- Device Hub schema, first version, for PostgreSQL: the tables of migrations/sqlite/0001_init.sql
-- (configuration objects, users, tokens, access rights, firmware, device twins) with the same
-- columns and meanings. Flags are BIGINT 0/1 as in SQLite, so that one SQL text serves both
-- engines; times are RFC 3339 text. Only here: the images themselves (blobs, blob_chunks),
-- because several processes share this database and none of them may own the files.

CREATE TABLE users (
	id TEXT PRIMARY KEY,
	tid TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	email TEXT NOT NULL DEFAULT '',
	is_active BIGINT NOT NULL DEFAULT 1,
	create_time TEXT NOT NULL
);

CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	tid TEXT UNIQUE,
	user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name TEXT NOT NULL DEFAULT '',
	secret_hash TEXT NOT NULL UNIQUE,
	prefix TEXT NOT NULL DEFAULT '',
	expire_time TEXT,
	revoked BIGINT NOT NULL DEFAULT 0,
	create_time TEXT NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE products (
	id TEXT PRIMARY KEY,
	tid TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	create_time TEXT NOT NULL
);

CREATE TABLE models (
	id TEXT PRIMARY KEY,
	tid TEXT NOT NULL UNIQUE,
	product_id TEXT NOT NULL REFERENCES products(id),
	name TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	create_time TEXT NOT NULL
);
CREATE INDEX models_product ON models(product_id);

CREATE TABLE channels (
	id TEXT PRIMARY KEY,
	tid TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	create_time TEXT NOT NULL
);

CREATE TABLE access_rights (
	id TEXT PRIMARY KEY,
	tid TEXT UNIQUE,
	user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	action TEXT NOT NULL CHECK (action IN ('admin', 'manage', 'upload', 'update', 'draft')),
	product_id TEXT REFERENCES products(id),
	model_id TEXT REFERENCES models(id),
	channel_id TEXT REFERENCES channels(id),
	create_time TEXT NOT NULL
);
CREATE INDEX access_rights_user ON access_rights(user_id);

CREATE TABLE delivery_methods (
	id TEXT PRIMARY KEY,
	tid TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	kind TEXT NOT NULL,
	create_time TEXT NOT NULL
);

CREATE TABLE delivery_procedures (
	id TEXT PRIMARY KEY,
	tid TEXT NOT NULL UNIQUE,
	name TEXT NOT NULL,
	delivery_method_id TEXT NOT NULL REFERENCES delivery_methods(id),
	steps TEXT NOT NULL DEFAULT '[]',
	confirm BIGINT NOT NULL DEFAULT 0,
	ready_timeout BIGINT NOT NULL DEFAULT 3600,
	processing_timeout BIGINT NOT NULL DEFAULT 3600,
	confirm_timeout BIGINT NOT NULL DEFAULT 86400,
	retention BIGINT NOT NULL DEFAULT 604800,
	create_time TEXT NOT NULL
);

-- An image, once: its bytes in chunks of at most 1 MiB, written in the transaction of the
-- first firmware row that refers to it. Each process keeps a local copy in its data dir
-- (blobs/sha256/..), filled from here on a miss.
CREATE TABLE blobs (
	sha256 TEXT PRIMARY KEY,
	size BIGINT NOT NULL,
	create_time TEXT NOT NULL
);

CREATE TABLE blob_chunks (
	sha256 TEXT NOT NULL REFERENCES blobs(sha256) ON DELETE CASCADE,
	idx BIGINT NOT NULL,
	data BYTEA NOT NULL,
	PRIMARY KEY (sha256, idx)
);

CREATE TABLE firmware (
	id TEXT PRIMARY KEY,
	tid TEXT UNIQUE,
	model_id TEXT NOT NULL REFERENCES models(id),
	version TEXT NOT NULL,
	draft BIGINT NOT NULL DEFAULT 0,
	description TEXT NOT NULL DEFAULT '',
	size BIGINT NOT NULL,
	sha256 TEXT NOT NULL REFERENCES blobs(sha256),
	filename TEXT NOT NULL DEFAULT '',
	image_info TEXT,
	create_time TEXT NOT NULL,
	UNIQUE (model_id, version)
);
CREATE INDEX firmware_sha ON firmware(sha256);

CREATE TABLE firmware_channels (
	firmware_id TEXT NOT NULL REFERENCES firmware(id) ON DELETE CASCADE,
	channel_id TEXT NOT NULL REFERENCES channels(id),
	PRIMARY KEY (firmware_id, channel_id)
);
CREATE INDEX firmware_channels_channel ON firmware_channels(channel_id);

CREATE TABLE devices (
	id TEXT PRIMARY KEY,
	device_id TEXT NOT NULL,
	model_id TEXT NOT NULL REFERENCES models(id),
	channel_id TEXT REFERENCES channels(id),
	current_firmware_id TEXT REFERENCES firmware(id) ON DELETE SET NULL,
	current_firmware_version TEXT,
	last_seen TEXT,
	last_session_id TEXT,
	last_state TEXT,
	create_time TEXT NOT NULL,
	UNIQUE (model_id, device_id)
);
CREATE INDEX devices_device_id ON devices(device_id);
