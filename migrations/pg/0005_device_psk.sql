-- A device's pre-shared key for CoAP over DTLS; see migrations/sqlite/0005_device_psk.sql.
ALTER TABLE devices ADD COLUMN coap_psk TEXT;
CREATE UNIQUE INDEX devices_psk_identity ON devices(device_id) WHERE coap_psk IS NOT NULL;
