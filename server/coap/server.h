/*
 * The CoAP image server (libcoap3): one UDP endpoint on --coap-listen/--coap-port and one
 * thread of its own that runs libcoap's loop. It answers GET /d/<token> block by block
 * (coap/answer.c) from the link table (core/links.h) and the shared mappings of the blob
 * store, counts what it sends in the delivery tracker (core/delivery.h), and never touches
 * the database. Duplicate requests (same peer, message id and options) within
 * DH_COAP_DEDUP_S are answered again from libcoap's cache without being processed twice.
 *
 * Shared memory: the running flag and the bound port, written by start before the thread
 * runs and by stop after it ended; the stop flag (atomic). libcoap's context belongs to the
 * CoAP thread alone while it runs.
 */
#ifndef DH_COAP_SERVER_H
#define DH_COAP_SERVER_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * Seconds a request's answer is kept for duplicates of it: CoAP's MAX_TRANSMIT_SPAN
 * (RFC 7252 4.8.2), the longest a client retransmits one confirmable message.
 */
#define DH_COAP_DEDUP_S 45

/*
 * Starts the server when --coap-port or --coaps-port is not off; *bound_port and *dtls_port
 * get the UDP ports of plain CoAP and of CoAP over DTLS (0 for one that is off). DTLS uses
 * pre-shared keys: the identity is a device's device_id, the key its coap_psk (looked up
 * once per handshake), and over DTLS a link serves only its session's device. DH_E_IO when
 * an address cannot be bound, DH_E_INVALID when libcoap lacks DTLS.
 */
enum dh_err dh_coap_start(unsigned *bound_port, unsigned *dtls_port, struct dh_error *err);

/* Stops the thread and frees libcoap's context; nothing when not running. */
void dh_coap_stop(void);

/* The bound UDP ports while running (plain, DTLS), 0 otherwise or when off. */
unsigned dh_coap_port(void);
unsigned dh_coap_dtls_port(void);

/*
 * The base of a session's coap_link ("coap://host:port/d/") into out: --coap-public-url when
 * set, else coap:// with the host of --public-url or of http_base (the session's base URL)
 * and the bound port (coaps:// and the DTLS port when only DTLS is on). False when the
 * server is off or the base does not fit.
 */
bool dh_coap_link_prefix(const char *http_base, char *out, size_t size);

#endif
