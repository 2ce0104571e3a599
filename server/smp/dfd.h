/*
 * Mesh distributor driver: runs one Bluetooth-mesh firmware distribution through a Zephyr
 * DFD node over SMP, following SMP.md section 8 steps 1-11 (probe, distributor state and
 * clean-up, slot-1 check, image upload, slot record, receivers, start, monitoring, apply,
 * finish). Used by the mesh_smp delivery step and by "dh-smp mesh-distribute". Opens and
 * closes its own transport; reports progress through a callback with a snapshot struct; every
 * wait honours a deadline and the caller's cancellation flag.
 */
#ifndef DH_SMP_DFD_H
#define DH_SMP_DFD_H

#include "smp/client.h"
#include "smp/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Receivers per distribution; the distributor's own limit (targets_max) is usually 8. */
#define DH_DFD_RECEIVERS_MAX 64
/* FWID is at most 16 bytes and metadata at most 32 bytes (SMP.md 7.1), as hex plus NUL. */
#define DH_DFD_FWID_HEX_MAX     33
#define DH_DFD_METADATA_HEX_MAX 65

enum dh_dfd_policy {
	DH_DFD_POLICY_APPLY = 0,  /* the distributor applies by itself ("start ... true") */
	DH_DFD_POLICY_VERIFY = 1, /* stop at phase 2; the driver checks, then sends "apply" */
};

struct dh_dfd_receiver {
	uint16_t addr;   /* unicast address */
	uint8_t img_idx; /* image index on the target */
};

/* Parameters of one run. Fill with dh_dfd_params_default, then set what differs. */
struct dh_dfd_params {
	enum dh_smp_transport_kind transport; /* DH_SMP_TR_UDP or DH_SMP_TR_SERIAL */
	char host[256];                       /* UDP: host name or address literal */
	unsigned port;                        /* UDP: default 1337 */
	char device[256];                     /* serial: tty path */
	unsigned baud;                        /* serial: default 115200 */
	struct dh_dfd_receiver receivers[DH_DFD_RECEIVERS_MAX];
	size_t n_receivers;
	unsigned app_idx;      /* AppKey index on the distributor, default 0 */
	unsigned group;        /* 0 = unicast to each target (default) */
	unsigned ttl;          /* default 255 = node default */
	unsigned timeout_base; /* default 0 */
	unsigned xfer_mode;    /* 1 push (default), 2 pull */
	enum dh_dfd_policy policy;
	/* FWID as hex; empty = first 8 bytes of the image file's SHA-256. */
	char fwid_hex[DH_DFD_FWID_HEX_MAX];
	char metadata_hex[DH_DFD_METADATA_HEX_MAX]; /* empty = none */
	bool allow_partial;    /* finish OK when some receivers failed but one succeeded */
	bool preempt;          /* cancel a running distribution instead of failing busy */
	unsigned poll_ms;      /* monitoring interval, default 5000 */
	unsigned fast_poll_ms; /* interval while cancelling or applying, default 2000 */
	unsigned probe_tries;  /* echo attempts, default 3 (each with smp.timeout_ms) */
	/* Deadlines in ms; 0 means the SMP.md 8 formula given with each. */
	unsigned idle_deadline_ms;       /* waiting for phase 0: 2 min + 2 x mesh timeout */
	unsigned upload_deadline_ms;     /* 60 s + size / 2 KB/s */
	unsigned distribute_deadline_ms; /* 10 min + size / 50 B/s */
	unsigned stall_ms;               /* no progress in phase 1, default 15 min */
	unsigned verify_wait_ms;         /* receivers still verifying at phase 2, 60 s */
	struct dh_smp_client_opts smp;   /* SMP timeouts; its cancel field is ignored */
};

/* Fills p with the defaults above: UDP port 1337, 115200 baud, policy apply, 5 s / 2 s. */
void dh_dfd_params_default(struct dh_dfd_params *p);

/* Last known state of one receiver. progress is in percent (2 x the shell value). */
struct dh_dfd_receiver_state {
	uint16_t addr;
	int phase;       /* Firmware Update target phase, 10 = unknown */
	int status;      /* 0 ok, else the receiver was dropped */
	int blob_status; /* BLOB transfer status */
	unsigned progress;
	int img_idx;
};

/* Snapshot handed to the report callback; valid only during the call. */
struct dh_dfd_report {
	const char *stage; /* "probe", "state", "cleanup", "slot-check", "upload", "slot",
			      "receivers", "start", "distribute", "apply", "finish", "cancel" */
	int phase;         /* DFD phase, -1 before the first "dfd get" */
	int status;        /* last DFD status */
	unsigned progress; /* overall distribution percent 0..100 */
	struct dh_dfd_receiver_state receivers[DH_DFD_RECEIVERS_MAX];
	size_t n_receivers;
	int slot_idx; /* -1 until known */
	char fwid[DH_DFD_FWID_HEX_MAX];
	uint64_t upload_off, upload_len; /* during and after the upload */
};

/* Called at each stage change, upload progress step and monitoring round. */
typedef void (*dh_dfd_report_fn)(void *ctx, const struct dh_dfd_report *r);

enum dh_dfd_result {
	DH_DFD_OK = 0,
	DH_DFD_E_UNREACHABLE,   /* distributor_unreachable */
	DH_DFD_E_BUSY,          /* distributor_busy */
	DH_DFD_E_SLOT_LOCKED,   /* distributor_slot_locked */
	DH_DFD_E_UPLOAD_VERIFY, /* upload_verify_failed */
	DH_DFD_E_TOO_MANY,      /* too_many_receivers */
	DH_DFD_E_APP_KEY,       /* invalid_app_key */
	DH_DFD_E_NO_RECEIVERS,  /* no_receivers */
	DH_DFD_E_SLOT_MISSING,  /* slot_missing */
	DH_DFD_E_START,         /* start_failed */
	DH_DFD_E_TIMEOUT,       /* distribution_timeout */
	DH_DFD_E_LOST,          /* distribution_lost */
	DH_DFD_E_VERIFY,        /* verify_failed */
	DH_DFD_E_PARTIAL,       /* partial_failure */
	DH_DFD_E_FAILED,        /* distribution_failed */
	DH_DFD_E_CANCELLED,     /* cancelled */
	DH_DFD_E_INVALID,       /* invalid_params: bad parameters or unreadable image */
	DH_DFD_E__COUNT
};

/* The machine code of a result, e.g. "distributor_busy". Never NULL. */
const char *dh_dfd_code(enum dh_dfd_result r);

struct dh_dfd_error {
	enum dh_dfd_result result;
	char code[40];    /* dh_dfd_code(result) */
	char detail[640]; /* one sentence: step, command and the distributor's raw answer */
};

/*
 * Runs the whole distribution of the image file at image_path with parameters p. cb (may be
 * NULL) receives snapshots; cancel (may be NULL; set from any thread) is polled in every wait, and
 * a non-zero value stops the run with DH_DFD_E_CANCELLED after sending "dfd cancel" if a
 * distribution was started. On failure err (may be NULL) names the code and a detail sentence.
 * Blocks the calling thread for the whole run (minutes to hours); thread-safe across distinct runs.
 */
enum dh_dfd_result dh_dfd_run(const struct dh_dfd_params *p, const char *image_path,
			      dh_dfd_report_fn cb, void *cb_ctx, atomic_int *cancel,
			      struct dh_dfd_error *err);

#endif
