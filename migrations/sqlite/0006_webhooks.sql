-- Webhook subscriptions and their transactional outbox.
--
-- A webhook names a URL, the event types it wants (events: the JSON list as given;
-- events_match: the same as ",type,type," for a LIKE that both engines run), an optional
-- product/model scope and its signing key (secret: the base64 of the HMAC key, the only form
-- kept; previous_secret signs too until previous_until_us, so that a receiver can switch keys
-- without losing deliveries).
--
-- webhook_deliveries is the outbox: one row per (event, webhook), inserted in the same
-- transaction as the change that caused the event. seq orders the rows of one webhook (event
-- order); id is the webhook-id header, the same on every attempt. A row waits in 'pending'
-- until next_us; a sender claims it with lease_owner/lease_until (compare-and-set), so that
-- each delivery is in flight from one process at a time; it ends 'delivered' or 'failed'.
-- queue_us is when it entered the queue (--webhook-max-age counts from there; a redelivery
-- resets it); done_us is when it left (the log's retention counts from there).

CREATE TABLE webhooks (
	id TEXT PRIMARY KEY,
	tid TEXT UNIQUE,
	url TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	events TEXT NOT NULL DEFAULT '["*"]',
	events_match TEXT NOT NULL DEFAULT ',*,',
	product_id TEXT REFERENCES products(id),
	model_id TEXT REFERENCES models(id),
	active INTEGER NOT NULL DEFAULT 1,
	secret TEXT NOT NULL,
	previous_secret TEXT,
	previous_until_us INTEGER,
	create_time TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
	seq INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	event TEXT NOT NULL,
	body TEXT NOT NULL,
	status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts INTEGER NOT NULL DEFAULT 0,
	last_status_code INTEGER,
	last_error TEXT,
	last_response TEXT,
	last_attempt_us INTEGER,
	next_us INTEGER NOT NULL,
	queue_us INTEGER NOT NULL,
	done_us INTEGER,
	lease_owner TEXT,
	lease_until INTEGER,
	create_time TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries(webhook_id, seq);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries(webhook_id, seq)
	WHERE status = 'pending';
CREATE INDEX webhook_deliveries_status ON webhook_deliveries(status, done_us);
