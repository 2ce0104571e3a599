/*
 * The SMP transports behind one small interface: UDP (one frame per datagram on a connected
 * socket, IPv4 or IPv6) and serial (SMP over console: base64 lines with a length and a
 * CRC-16/XMODEM, SMP.md 5) on a tty in raw mode. A transport moves whole frames; matching
 * answers to requests, timeouts and retransmission belong to smp_client.c. This header also
 * exposes the pure serial framing (encoder and deframer) for the tests and fuzz targets.
 */
#ifndef DH_SMP_TRANSPORT_H
#define DH_SMP_TRANSPORT_H

#include "smp/smp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dh_smp_transport_kind {
	DH_SMP_TR_UDP = 0,
	DH_SMP_TR_SERIAL = 1,
};

struct dh_smp_transport;

struct dh_smp_transport_ops {
	/* Sends one whole frame. DH_SMP_E_IO on failure. */
	enum dh_smp_status (*send)(struct dh_smp_transport *t, const uint8_t *frame, size_t n);
	/*
	 * Waits up to timeout_ms for one frame and copies it to buf (at most cap bytes; longer
	 * frames are dropped). Returns DH_SMP_OK with *n set, DH_SMP_E_TIMEOUT, or DH_SMP_E_IO.
	 */
	enum dh_smp_status (*recv)(struct dh_smp_transport *t, uint8_t *buf, size_t cap, size_t *n,
				   int timeout_ms);
	/* Closes and opens the link again (after a transport error). */
	enum dh_smp_status (*reconnect)(struct dh_smp_transport *t);
	/* Closes the link and frees t. */
	void (*free)(struct dh_smp_transport *t);
};

struct dh_smp_transport {
	const struct dh_smp_transport_ops *ops;
	enum dh_smp_transport_kind kind;
	/*
	 * Largest frame the path carries (UDP: 1472 for IPv4, 1452 for IPv6, SMP.md 3.4; serial:
	 * DH_SMP_FRAME_MAX). The client also subtracts DH_SMP_SERIAL_OVERHEAD from the device's
	 * buf_size on serial.
	 */
	size_t path_max;
	/* True when lost frames are normal and the client must retransmit (UDP). */
	bool lossy;
};

/* On serial the 2-byte length and 2-byte CRC share the device's buffer (SMP.md 3.4). */
#define DH_SMP_SERIAL_OVERHEAD 4
#define DH_SMP_UDP_PORT        1337
#define DH_SMP_SERIAL_BAUD     115200

/*
 * Opens a UDP transport to host:port (getaddrinfo, IPv4 or IPv6 literal or name; the first
 * address that connects wins). Returns NULL and writes a sentence to errbuf on failure.
 * The caller frees the result with t->ops->free(t).
 */
struct dh_smp_transport *dh_smp_udp_open(const char *host, unsigned port, char *errbuf,
					 size_t errcap);

/*
 * Opens a serial transport on a tty path at baud (raw mode, 8N1, no flow control). Returns
 * NULL and writes a sentence to errbuf on failure.
 */
struct dh_smp_transport *dh_smp_serial_open(const char *path, unsigned baud, char *errbuf,
					    size_t errcap);

/* Calls t->ops->free when t is not NULL. */
void dh_smp_transport_free(struct dh_smp_transport *t);

/* ---- serial framing (pure) ---- */

/* A line holds 2 marker bytes, at most 124 base64 characters (93 bytes) and '\n'. */
#define DH_SMP_SERIAL_PIECE    93
#define DH_SMP_SERIAL_LINE_MAX 127
/* Decoded packet: 2-byte length, frame, 2-byte CRC. */
#define DH_SMP_SERIAL_PKT_MAX (DH_SMP_FRAME_MAX + 4)
/* Upper bound of the encoded size of a frame of n bytes (lines included). */
#define DH_SMP_SERIAL_ENC_MAX(n) ((((n) + 4 + DH_SMP_SERIAL_PIECE - 1) / DH_SMP_SERIAL_PIECE) * 128)

/* CRC-16/XMODEM (poly 0x1021, init 0, no reflection); check value 0x31c3 for "123456789". */
uint16_t dh_smp_crc16(const uint8_t *p, size_t n, uint16_t crc);

/*
 * Encodes one frame as console lines (06 09 first, 04 14 after, 124 base64 characters per
 * full line). Returns DH_SMP_E_NOMEM when out is too small or the frame exceeds
 * DH_SMP_FRAME_MAX.
 */
enum dh_smp_status dh_smp_serial_encode(const uint8_t *frame, size_t n, uint8_t *out, size_t cap,
					size_t *outn);

/* Reassembly state for the receive direction; initialise with dh_smp_deframer_init. */
struct dh_smp_deframer {
	uint8_t line[DH_SMP_SERIAL_LINE_MAX + 1];
	size_t line_len;
	int line_kind; /* 0 outside a frame line, 1 after 06 09, 2 after 04 14 */
	uint8_t prev;  /* previous byte, to spot a marker pair */
	uint8_t pkt[DH_SMP_SERIAL_PKT_MAX];
	size_t pkt_len;  /* decoded bytes so far */
	size_t pkt_want; /* 2 + length field, once known */
	bool in_pkt;
	unsigned long dropped; /* packets discarded (bad CRC, bad base64, overrun) */
};

void dh_smp_deframer_init(struct dh_smp_deframer *d);

/*
 * Feeds one received byte. Returns true when it completed a frame with a good CRC; the frame
 * (without length and CRC) is then at d->pkt + 2 with length *frame_len and stays valid until
 * the next call. Console text, broken lines and bad packets are dropped silently.
 */
bool dh_smp_deframer_push(struct dh_smp_deframer *d, uint8_t byte, size_t *frame_len);

#endif
