-- Webhook subscriptions and their transactional outbox, for PostgreSQL: the tables of
-- migrations/sqlite/0006_webhooks.sql (see there), with BIGINT numbers and seq a BIGSERIAL
-- where SQLite's INTEGER PRIMARY KEY numbers the rows.

CREATE TABLE webhooks (
	id TEXT PRIMARY KEY,
	tid TEXT UNIQUE,
	url TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	events TEXT NOT NULL DEFAULT '["*"]',
	events_match TEXT NOT NULL DEFAULT ',*,',
	product_id TEXT REFERENCES products(id),
	model_id TEXT REFERENCES models(id),
	active BIGINT NOT NULL DEFAULT 1,
	secret TEXT NOT NULL,
	previous_secret TEXT,
	previous_until_us BIGINT,
	create_time TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
	seq BIGSERIAL PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	event TEXT NOT NULL,
	body TEXT NOT NULL,
	status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts BIGINT NOT NULL DEFAULT 0,
	last_status_code BIGINT,
	last_error TEXT,
	last_response TEXT,
	last_attempt_us BIGINT,
	next_us BIGINT NOT NULL,
	queue_us BIGINT NOT NULL,
	done_us BIGINT,
	lease_owner TEXT,
	lease_until BIGINT,
	create_time TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries(webhook_id, seq);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(webhook_id, seq)
	WHERE status = 'pending';
CREATE INDEX webhook_deliveries_status ON webhook_deliveries(status, done_us);
