/*
 * SMP over UDP (SMP.md 5): one frame per datagram on a connected socket, so only the
 * device's address and port can answer. Resolves the host with getaddrinfo (IPv4 or IPv6)
 * and reports the largest unfragmented frame for the address family. Owns the socket; loss,
 * duplicates and retransmission are left to smp_client.c.
 */
#include "smp/transport.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest IP payload minus UDP header over a 1500-byte MTU: 1500 - 20 - 8, 1500 - 40 - 8. */
#define UDP4_PATH_MAX 1472
#define UDP6_PATH_MAX 1452

struct udp_tr {
	struct dh_smp_transport base;
	int fd;
	char host[256];
	char port[8];
};

static int udp_connect(const char *host, const char *port, int *family, char *errbuf, size_t errcap)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	int fd = -1, rc, err = 0;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_protocol = IPPROTO_UDP;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(errbuf, errcap, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			*family = ai->ai_family;
			break;
		}
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(errbuf, errcap, "cannot connect UDP socket to %s port %s: %s", host, port,
			 strerror(err));
	return fd;
}

static enum dh_smp_status udp_send(struct dh_smp_transport *t, const uint8_t *frame, size_t n)
{
	struct udp_tr *u = (struct udp_tr *)t;
	ssize_t w;

	do {
		w = send(u->fd, frame, n, 0);
	} while (w < 0 && errno == EINTR);
	/* An ICMP error from an earlier datagram (device restarting) is not fatal. */
	if (w < 0 && (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH))
		return DH_SMP_OK;
	if (w < 0 || (size_t)w != n)
		return DH_SMP_E_IO;
	return DH_SMP_OK;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum dh_smp_status udp_recv(struct dh_smp_transport *t, uint8_t *buf, size_t cap, size_t *n,
				   int timeout_ms)
{
	struct udp_tr *u = (struct udp_tr *)t;
	int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		struct pollfd p = { .fd = u->fd, .events = POLLIN };
		int64_t left = deadline - mono_ms();
		ssize_t r;
		int pr;

		if (left < 0)
			left = 0;
		pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			return DH_SMP_E_IO;
		if (pr == 0)
			return DH_SMP_E_TIMEOUT;
		if (pr < 0)
			continue;
		/* MSG_TRUNC reports the real size, so oversized datagrams are dropped whole. */
		r = recv(u->fd, buf, cap, MSG_TRUNC);
		if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == ECONNREFUSED ||
			      errno == EHOSTUNREACH || errno == ENETUNREACH))
			continue;
		if (r < 0)
			return DH_SMP_E_IO;
		if ((size_t)r > cap)
			continue;
		*n = (size_t)r;
		return DH_SMP_OK;
	}
}

static enum dh_smp_status udp_reconnect(struct dh_smp_transport *t)
{
	struct udp_tr *u = (struct udp_tr *)t;
	char err[128];
	int family = 0;
	int fd = udp_connect(u->host, u->port, &family, err, sizeof(err));

	if (fd < 0)
		return DH_SMP_E_IO;
	close(u->fd);
	u->fd = fd;
	return DH_SMP_OK;
}

static void udp_free(struct dh_smp_transport *t)
{
	struct udp_tr *u = (struct udp_tr *)t;

	if (u->fd >= 0)
		close(u->fd);
	free(u);
}

static const struct dh_smp_transport_ops udp_ops = {
	.send = udp_send,
	.recv = udp_recv,
	.reconnect = udp_reconnect,
	.free = udp_free,
};

struct dh_smp_transport *dh_smp_udp_open(const char *host, unsigned port, char *errbuf,
					 size_t errcap)
{
	struct udp_tr *u = NULL;
	int family = 0, n;

	if (port == 0 || port > 65535) {
		snprintf(errbuf, errcap, "invalid UDP port %u", port);
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(errbuf, errcap, "out of memory");
		return NULL;
	}
	n = snprintf(u->host, sizeof(u->host), "%s", host);
	if (n < 0 || (size_t)n >= sizeof(u->host)) {
		snprintf(errbuf, errcap, "host name too long");
		free(u);
		return NULL;
	}
	snprintf(u->port, sizeof(u->port), "%u", port);
	u->fd = udp_connect(u->host, u->port, &family, errbuf, errcap);
	if (u->fd < 0) {
		free(u);
		return NULL;
	}
	u->base.ops = &udp_ops;
	u->base.kind = DH_SMP_TR_UDP;
	u->base.path_max = family == AF_INET6 ? UDP6_PATH_MAX : UDP4_PATH_MAX;
	u->base.lossy = true;
	return &u->base;
}
