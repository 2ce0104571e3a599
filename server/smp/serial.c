/*
 * SMP over a serial console (SMP.md 5): the pure framing (CRC-16/XMODEM, base64 lines of at
 * most 93 decoded bytes with the 06 09 / 04 14 markers, reassembly that ignores console text)
 * and the tty transport that uses it (termios raw mode at a given baud, poll-based reads).
 * Owns the tty file descriptor; knows nothing of sequence numbers or CBOR.
 */
#include "smp/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

uint16_t dh_smp_crc16(const uint8_t *p, size_t n, uint16_t crc)
{
	size_t i;
	int b;

	for (i = 0; i < n; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
					     : (uint16_t)(crc << 1);
	}
	return crc;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = (uint8_t)b64chars[(v >> 18) & 63];
		out[o++] = (uint8_t)b64chars[(v >> 12) & 63];
		out[o++] = (uint8_t)b64chars[(v >> 6) & 63];
		out[o++] = (uint8_t)b64chars[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);

		out[o++] = (uint8_t)b64chars[(v >> 18) & 63];
		out[o++] = (uint8_t)b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? (uint8_t)b64chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	return o;
}

static int b64_val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes whole 4-character groups; padding only in the last group. False on bad input. */
static bool b64_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *outn)
{
	size_t i, o = 0;

	if (n % 4 != 0)
		return false;
	for (i = 0; i < n; i += 4) {
		int v[4], k, pad = 0;
		uint32_t w;

		for (k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad)
				return false;
			v[k] = b64_val(in[i + k]);
			if (v[k] < 0)
				return false;
		}
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		    (uint32_t)v[3];
		if ((size_t)(3 - pad) > cap - o)
			return false;
		out[o++] = (uint8_t)(w >> 16);
		if (pad < 2)
			out[o++] = (uint8_t)(w >> 8);
		if (pad < 1)
			out[o++] = (uint8_t)w;
	}
	*outn = o;
	return true;
}

enum dh_smp_status dh_smp_serial_encode(const uint8_t *frame, size_t n, uint8_t *out, size_t cap,
					size_t *outn)
{
	uint8_t raw[DH_SMP_SERIAL_PKT_MAX];
	size_t rawn, i, o = 0;
	uint16_t crc;

	if (n > DH_SMP_FRAME_MAX || cap < DH_SMP_SERIAL_ENC_MAX(n))
		return DH_SMP_E_NOMEM;
	crc = dh_smp_crc16(frame, n, 0);
	raw[0] = (uint8_t)((n + 2) >> 8);
	raw[1] = (uint8_t)(n + 2);
	memcpy(raw + 2, frame, n);
	raw[n + 2] = (uint8_t)(crc >> 8);
	raw[n + 3] = (uint8_t)crc;
	rawn = n + 4;
	for (i = 0; i < rawn; i += DH_SMP_SERIAL_PIECE) {
		size_t piece = rawn - i < DH_SMP_SERIAL_PIECE ? rawn - i : DH_SMP_SERIAL_PIECE;

		out[o++] = i == 0 ? 0x06 : 0x04;
		out[o++] = i == 0 ? 0x09 : 0x14;
		o += b64_encode(raw + i, piece, out + o);
		out[o++] = '\n';
	}
	*outn = o;
	return DH_SMP_OK;
}

void dh_smp_deframer_init(struct dh_smp_deframer *d)
{
	memset(d, 0, sizeof(*d));
}

static void drop_pkt(struct dh_smp_deframer *d)
{
	if (d->in_pkt)
		d->dropped++;
	d->in_pkt = false;
	d->pkt_len = 0;
	d->pkt_want = 0;
}

static bool end_line(struct dh_smp_deframer *d, size_t *frame_len)
{
	uint8_t dec[DH_SMP_SERIAL_LINE_MAX];
	size_t n = 0, len16;

	if (!b64_decode(d->line, d->line_len, dec, sizeof(dec), &n)) {
		drop_pkt(d);
		return false;
	}
	if (d->line_kind == 1) {
		/* A new start line discards any partial packet. */
		drop_pkt(d);
		if (n < 2)
			return false;
		len16 = (size_t)dec[0] << 8 | dec[1];
		if (len16 < 2 || len16 + 2 > sizeof(d->pkt)) {
			d->dropped++;
			return false;
		}
		d->in_pkt = true;
		d->pkt_want = len16 + 2;
	} else if (!d->in_pkt) {
		return false;
	}
	if (n > d->pkt_want - d->pkt_len) {
		drop_pkt(d);
		return false;
	}
	memcpy(d->pkt + d->pkt_len, dec, n);
	d->pkt_len += n;
	if (d->pkt_len < d->pkt_want)
		return false;
	d->in_pkt = false;
	/* The CRC over frame || crc is 0 for an intact packet. */
	if (dh_smp_crc16(d->pkt + 2, d->pkt_want - 2, 0) != 0) {
		d->dropped++;
		return false;
	}
	*frame_len = d->pkt_want - 4;
	return true;
}

bool dh_smp_deframer_push(struct dh_smp_deframer *d, uint8_t byte, size_t *frame_len)
{
	uint8_t prev = d->prev;
	bool done;

	d->prev = byte;
	if (prev == 0x06 && byte == 0x09) {
		d->line_kind = 1;
		d->line_len = 0;
		return false;
	}
	if (prev == 0x04 && byte == 0x14) {
		d->line_kind = 2;
		d->line_len = 0;
		return false;
	}
	if (d->line_kind == 0)
		return false;
	if (byte == '\n') {
		done = end_line(d, frame_len);
		d->line_kind = 0;
		d->line_len = 0;
		return done;
	}
	if (byte == '\r' || byte == 0x06 || byte == 0x04)
		return false;
	if (d->line_len >= DH_SMP_SERIAL_LINE_MAX) {
		/* Longer than any valid line: not ours, or corrupted. */
		drop_pkt(d);
		d->line_kind = 0;
		d->line_len = 0;
		return false;
	}
	d->line[d->line_len++] = byte;
	return false;
}

/* ---- tty transport ---- */

struct serial_tr {
	struct dh_smp_transport base;
	int fd;
	char path[256];
	unsigned baud;
	struct dh_smp_deframer df;
	/* Bytes read from the tty but not yet fed to the deframer. */
	uint8_t rbuf[512];
	size_t rpos, rlen;
};

static const struct {
	unsigned baud;
	speed_t speed;
} bauds[] = {
	{ 9600, B9600 },     { 19200, B19200 },   { 38400, B38400 },
	{ 57600, B57600 },   { 115200, B115200 }, { 230400, B230400 },
	{ 460800, B460800 }, { 921600, B921600 }, { 1000000, B1000000 },
};

static int serial_open_fd(const char *path, unsigned baud, char *errbuf, size_t errcap)
{
	struct termios tio;
	speed_t speed = 0;
	size_t i;
	int fd;

	for (i = 0; i < sizeof(bauds) / sizeof(bauds[0]); i++) {
		if (bauds[i].baud == baud)
			speed = bauds[i].speed;
	}
	if (speed == 0) {
		snprintf(errbuf, errcap, "unsupported baud rate %u", baud);
		return -1;
	}
	fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(errbuf, errcap, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (tcgetattr(fd, &tio) != 0) {
		snprintf(errbuf, errcap, "%s is not a tty: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	cfmakeraw(&tio);
	tio.c_cflag &= ~(tcflag_t)(CSTOPB | PARENB | CRTSCTS);
	tio.c_cflag |= CS8 | CLOCAL | CREAD;
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	if (cfsetispeed(&tio, speed) != 0 || cfsetospeed(&tio, speed) != 0 ||
	    tcsetattr(fd, TCSANOW, &tio) != 0) {
		snprintf(errbuf, errcap, "cannot configure %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum dh_smp_status serial_send(struct dh_smp_transport *t, const uint8_t *frame, size_t n)
{
	struct serial_tr *s = (struct serial_tr *)t;
	uint8_t out[DH_SMP_SERIAL_ENC_MAX(DH_SMP_FRAME_MAX)];
	size_t outn = 0, done = 0;
	enum dh_smp_status st;

	st = dh_smp_serial_encode(frame, n, out, sizeof(out), &outn);
	if (st != DH_SMP_OK)
		return st;
	while (done < outn) {
		ssize_t w = write(s->fd, out + done, outn - done);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd p = { .fd = s->fd, .events = POLLOUT };

			if (poll(&p, 1, 1000) < 0 && errno != EINTR)
				return DH_SMP_E_IO;
			continue;
		}
		if (w <= 0)
			return DH_SMP_E_IO;
		done += (size_t)w;
	}
	return DH_SMP_OK;
}

static enum dh_smp_status serial_recv(struct dh_smp_transport *t, uint8_t *buf, size_t cap,
				      size_t *n, int timeout_ms)
{
	struct serial_tr *s = (struct serial_tr *)t;
	int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		size_t flen;

		while (s->rpos < s->rlen) {
			if (!dh_smp_deframer_push(&s->df, s->rbuf[s->rpos++], &flen))
				continue;
			if (flen > cap)
				continue;
			memcpy(buf, s->df.pkt + 2, flen);
			*n = flen;
			return DH_SMP_OK;
		}
		int64_t left = deadline - mono_ms();
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		ssize_t r;
		int pr;

		if (left <= 0)
			return DH_SMP_E_TIMEOUT;
		pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			return DH_SMP_E_IO;
		if (pr <= 0)
			continue;
		r = read(s->fd, s->rbuf, sizeof(s->rbuf));
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0 && errno == EIO) {
			/* A pty whose other side is closed: nothing to read until it reopens. */
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			nanosleep(&ts, NULL);
			continue;
		}
		if (r <= 0)
			return DH_SMP_E_IO;
		s->rpos = 0;
		s->rlen = (size_t)r;
	}
}

static enum dh_smp_status serial_reconnect(struct dh_smp_transport *t)
{
	struct serial_tr *s = (struct serial_tr *)t;
	char err[128];
	int fd = serial_open_fd(s->path, s->baud, err, sizeof(err));

	if (fd < 0)
		return DH_SMP_E_IO;
	close(s->fd);
	s->fd = fd;
	s->rpos = s->rlen = 0;
	dh_smp_deframer_init(&s->df);
	return DH_SMP_OK;
}

static void serial_free(struct dh_smp_transport *t)
{
	struct serial_tr *s = (struct serial_tr *)t;

	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

static const struct dh_smp_transport_ops serial_ops = {
	.send = serial_send,
	.recv = serial_recv,
	.reconnect = serial_reconnect,
	.free = serial_free,
};

struct dh_smp_transport *dh_smp_serial_open(const char *path, unsigned baud, char *errbuf,
					    size_t errcap)
{
	struct serial_tr *s = NULL;
	int n;

	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(errbuf, errcap, "out of memory");
		return NULL;
	}
	n = snprintf(s->path, sizeof(s->path), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(s->path)) {
		snprintf(errbuf, errcap, "serial device path too long");
		free(s);
		return NULL;
	}
	s->baud = baud;
	s->fd = serial_open_fd(path, baud, errbuf, errcap);
	if (s->fd < 0) {
		free(s);
		return NULL;
	}
	s->base.ops = &serial_ops;
	s->base.kind = DH_SMP_TR_SERIAL;
	s->base.path_max = DH_SMP_FRAME_MAX;
	s->base.lossy = false;
	dh_smp_deframer_init(&s->df);
	return &s->base;
}

void dh_smp_transport_free(struct dh_smp_transport *t)
{
	if (t)
		t->ops->free(t);
}
