-- A device's pre-shared key for CoAP over DTLS (issue 15, docs/coap.md). The device names
-- itself in the DTLS handshake with its device_id as the PSK identity, so among the devices
-- that have a key each device_id appears once; the partial unique index says so and answers
-- the handshake's look-up. The key is kept as given: the server needs it to do the handshake.

ALTER TABLE devices ADD COLUMN coap_psk TEXT;
CREATE UNIQUE INDEX devices_psk_identity ON devices(device_id) WHERE coap_psk IS NOT NULL;
