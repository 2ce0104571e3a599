/*
 * devicehubd backup and restore (see backup.h): flags, the tar writer and reader, the
 * manifest, and the order of the steps that keep a restore all-or-nothing. The database
 * part goes through db/snapshot.h; the data dir's lock through datadir.h. Writes only the
 * archive (backup) or the target data dir (restore).
 */
#include "backup.h"

#include "blob.h"
#include "core/links.h"
#include "core/util.h"
#include "datadir.h"
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The archive's member names (backup.h). */
#define ARC_INFO     "devicehub-backup.json"
#define ARC_DB       "devicehub.db"
#define ARC_MANIFEST "MANIFEST.sha256"
#define ARC_BLOB_DIR "blobs/sha256/"
/* The short links' key, as in the data dir (mode 0600): without it a restored server makes
 * a new one, and its sessions show their short links as null. Absent from backups of
 * builds before it was added, which restore without it. */
#define ARC_LINK_KEY DH_LINK_KEY_FILE
/* What devicehub-backup.json says of itself; a restore refuses other formats. */
#define ARC_FORMAT         "devicehub-backup"
#define ARC_FORMAT_VERSION 1

/* tar: 512-byte blocks; a ustar header names a member in 100 bytes at most. */
#define TAR_BLOCK    512
#define TAR_NAME_MAX 100
/* Sizes below 8^11 fit the header's octal field; larger ones use GNU's base-256 form. */
#define TAR_OCTAL_SIZE_LIMIT (1ULL << 33)
/* Bytes copied per read and write. */
#define COPY_BLOCK (256 * 1024)
/* Longest path handled; data dirs are operator-chosen paths and PATH_MAX is 4 KiB. */
#define BK_PATH_MAX 4096
/* devicehub-backup.json is a few hundred bytes; anything far larger is not ours. */
#define INFO_MAX (64 * 1024)
/* A manifest line is 64 hex, two spaces, a member name (< 100) and a newline; 16 MiB holds
 * the lines of about 100 000 images. */
#define MANIFEST_MAX (16 * 1024 * 1024)
/* A backup whose image vanished (deleted after the snapshot) starts over this many times. */
#define BACKUP_ATTEMPTS 3
/* The staging directory a restore unpacks into, inside the target data dir. */
#define RESTORE_STAGE ".restore-tmp"

struct tar_header {
	char name[100];
	char mode[8];
	char uid[8];
	char gid[8];
	char size[12];
	char mtime[12];
	char chksum[8];
	char typeflag;
	char linkname[100];
	char magic[6];
	char version[2];
	char uname[32];
	char gname[32];
	char devmajor[8];
	char devminor[8];
	char prefix[155];
	char pad[12];
};
_Static_assert(sizeof(struct tar_header) == TAR_BLOCK, "a tar header is one block");

/* One archive member: its name and the SHA-256 of its bytes. */
struct member {
	char name[TAR_NAME_MAX];
	char sha256[DH_SHA256_HEX];
	bool listed; /* restore: seen in the manifest */
};

struct members {
	struct member *v;
	size_t n, cap;
};

static int members_add(struct members *m, const char *name, const char *sha256)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct member *v = realloc(m->v, cap * sizeof(*v));
		if (!v)
			return -1;
		m->v = v;
		m->cap = cap;
	}
	snprintf(m->v[m->n].name, sizeof(m->v[m->n].name), "%s", name);
	snprintf(m->v[m->n].sha256, sizeof(m->v[m->n].sha256), "%s", sha256 ? sha256 : "");
	m->v[m->n].listed = false;
	m->n++;
	return 0;
}

static int member_cmp(const void *a, const void *b)
{
	return strcmp(((const struct member *)a)->name, ((const struct member *)b)->name);
}

static struct member *members_find(struct members *m, const char *name)
{
	struct member key = { 0 };

	snprintf(key.name, sizeof(key.name), "%s", name);
	return m->n ? bsearch(&key, m->v, m->n, sizeof(*m->v), member_cmp) : NULL;
}

static void fail(const char *cmd, struct dh_error *err)
{
	fprintf(stderr, "devicehubd %s: %s\n", cmd, dh_error_detail(err));
	dh_error_release(err);
}

static bool write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		len -= (size_t)w;
	}
	return true;
}

/* Reads exactly len bytes; false at an early end or on an error (errno 0 at the end). */
static bool read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t r = read(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = 0;
			return false;
		}
		p += r;
		len -= (size_t)r;
	}
	return true;
}

static void digest_hex(struct sha256_ctx *ctx, char out[DH_SHA256_HEX])
{
	uint8_t d[SHA256_DIGEST_SIZE];

	sha256_digest(ctx, sizeof(d), d);
	dh_hex(d, sizeof(d), out);
}

/* ---- tar writing --------------------------------------------------------------------- */

struct tar_out {
	int fd;
	const char *path;
	struct members members; /* every member but the manifest, with its sum */
	uint64_t bytes;
	bool link_key; /* the data dir's link key is in it */
};

static void octal(char *field, size_t width, uint64_t v)
{
	char tmp[24];

	snprintf(tmp, sizeof(tmp), "%0*llo", (int)(width - 1), (unsigned long long)v);
	memcpy(field, tmp, width - 1);
	field[width - 1] = '\0';
}

static enum dh_err tar_header_write(struct tar_out *t, const char *name, unsigned mode,
				    uint64_t size, struct dh_error *err)
{
	struct tar_header h;
	unsigned sum = 0;

	memset(&h, 0, sizeof(h));
	if (strlen(name) >= sizeof(h.name))
		return dh_error_set(err, DH_E_INTERNAL, "Member name too long: %s", name);
	memcpy(h.name, name, strlen(name));
	octal(h.mode, sizeof(h.mode), mode);
	octal(h.uid, sizeof(h.uid), 0);
	octal(h.gid, sizeof(h.gid), 0);
	if (size < TAR_OCTAL_SIZE_LIMIT) {
		octal(h.size, sizeof(h.size), size);
	} else {
		h.size[0] = (char)0x80;
		for (int i = 11; i > 0; i--, size >>= 8)
			h.size[i] = (char)(size & 0xff);
	}
	octal(h.mtime, sizeof(h.mtime), (uint64_t)(dh_now_us() / 1000000));
	h.typeflag = '0';
	memcpy(h.magic, "ustar", 6);
	memcpy(h.version, "00", 2);
	memcpy(h.uname, "root", 4);
	memcpy(h.gname, "root", 4);
	memset(h.chksum, ' ', sizeof(h.chksum));
	for (size_t i = 0; i < sizeof(h); i++)
		sum += ((const unsigned char *)&h)[i];
	snprintf(h.chksum, sizeof(h.chksum), "%06o", sum);
	h.chksum[7] = ' ';
	if (!write_all(t->fd, &h, sizeof(h)))
		return dh_error_set(err, DH_E_IO, "Cannot write %s: %s", t->path, strerror(errno));
	t->bytes += sizeof(h);
	return DH_OK;
}

static enum dh_err tar_pad(struct tar_out *t, uint64_t size, struct dh_error *err)
{
	static const char zero[TAR_BLOCK];
	size_t pad = (size_t)((TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);

	if (pad && !write_all(t->fd, zero, pad))
		return dh_error_set(err, DH_E_IO, "Cannot write %s: %s", t->path, strerror(errno));
	t->bytes += pad;
	return DH_OK;
}

/* Adds len bytes of memory as member name; records its sum unless it is the manifest. */
static enum dh_err tar_add_mem(struct tar_out *t, const char *name, const void *data, size_t len,
			       struct dh_error *err)
{
	char sha[DH_SHA256_HEX];
	enum dh_err rc;

	if ((rc = tar_header_write(t, name, 0644, len, err)) != DH_OK)
		return rc;
	if (!write_all(t->fd, data, len))
		return dh_error_set(err, DH_E_IO, "Cannot write %s: %s", t->path, strerror(errno));
	t->bytes += len;
	if ((rc = tar_pad(t, len, err)) != DH_OK)
		return rc;
	dh_sha256_hex(data, len, sha);
	if (strcmp(name, ARC_MANIFEST) != 0 && members_add(&t->members, name, sha) != 0)
		return dh_error_set(err, DH_E_NOMEM, NULL);
	return DH_OK;
}

/*
 * Adds the file at path as member name, hashing it on the way; with expect, its sum must be
 * that (an image named by its hash). ENOENT is reported as DH_E_NOT_FOUND so that the
 * caller can tell a vanished image from a broken disk.
 */
static enum dh_err tar_add_file(struct tar_out *t, const char *name, const char *path,
				unsigned mode, const char *expect, struct dh_error *err)
{
	struct sha256_ctx ctx;
	char sha[DH_SHA256_HEX];
	struct stat st;
	uint64_t left;
	char *buf = NULL;
	enum dh_err rc = DH_OK;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dh_error_set(err, errno == ENOENT ? DH_E_NOT_FOUND : DH_E_IO,
				    "Cannot read %s: %s", path, strerror(errno));
	buf = malloc(COPY_BLOCK);
	if (!buf) {
		rc = dh_error_set(err, DH_E_NOMEM, NULL);
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = dh_error_set(err, DH_E_IO, "Not a regular file: %s", path);
		goto out;
	}
	if ((rc = tar_header_write(t, name, mode, (uint64_t)st.st_size, err)) != DH_OK)
		goto out;
	sha256_init(&ctx);
	for (left = (uint64_t)st.st_size; left > 0;) {
		size_t n = left < COPY_BLOCK ? (size_t)left : COPY_BLOCK;
		if (!read_all(fd, buf, n)) {
			rc = dh_error_set(err, DH_E_IO, "Cannot read %s: %s", path,
					  errno ? strerror(errno) : "it shrank while being copied");
			goto out;
		}
		sha256_update(&ctx, n, (const uint8_t *)buf);
		if (!write_all(t->fd, buf, n)) {
			rc = dh_error_set(err, DH_E_IO, "Cannot write %s: %s", t->path,
					  strerror(errno));
			goto out;
		}
		left -= n;
		t->bytes += n;
	}
	if ((rc = tar_pad(t, (uint64_t)st.st_size, err)) != DH_OK)
		goto out;
	digest_hex(&ctx, sha);
	if (expect && strcmp(sha, expect) != 0) {
		rc = dh_error_set(
			err, DH_E_IO,
			"Image %s is damaged: its content hashes to %s; the blob store needs repair",
			path, sha);
		goto out;
	}
	if (members_add(&t->members, name, sha) != 0)
		rc = dh_error_set(err, DH_E_NOMEM, NULL);
out:
	free(buf);
	close(fd);
	return rc;
}

/* ---- flags --------------------------------------------------------------------------- */

struct sub_opt {
	const char *flag;
	const char *env;
	const char *def;
	const char *metavar;
	const char *help;
};

struct sub_cmd {
	const char *name;
	const char *summary;
	const struct sub_opt *opts;
	size_t nopts;
	int (*run)(const char **vals);
};

static int run_backup(const char **vals);
static int run_restore(const char **vals);

/* Option order is also the index into vals[]. */
static const struct sub_opt backup_opts[] = {
	{ "to", NULL, NULL, "FILE", "the archive to write (must not exist yet)" },
	{ "data-dir", "DEVICEHUB_DATA_DIR", "./var", "DIR", "the data dir to back up" },
	{ "database", "DEVICEHUB_DATABASE", "", "URL",
	  "the server's --database; a PostgreSQL one is refused: use pg_dump" },
};
static const struct sub_opt restore_opts[] = {
	{ "from", NULL, NULL, "FILE", "the archive written by devicehubd backup" },
	{ "data-dir", "DEVICEHUB_DATA_DIR", "./var", "DIR",
	  "the data dir to restore into; created if missing, refused unless empty" },
};

static const struct sub_cmd cmds[] = {
	{ "backup",
	  "Copies the database (a consistent snapshot, taken while the server runs), every\n"
	  "image it refers to and the short links' key (link.key) into one tar archive with a\n"
	  "manifest of SHA-256 sums.",
	  backup_opts, sizeof(backup_opts) / sizeof(backup_opts[0]), run_backup },
	{ "restore",
	  "Unpacks an archive of devicehubd backup into an empty data dir, holding the data dir's\n"
	  "lock, after checking every SHA-256 sum of the manifest and the database itself.\n"
	  "Nothing is left behind when a check fails.",
	  restore_opts, sizeof(restore_opts) / sizeof(restore_opts[0]), run_restore },
};

#define SUB_OPTS_MAX 4

static void sub_usage(const struct sub_cmd *c, FILE *f)
{
	char term[64];

	fprintf(f, "Usage: devicehubd %s", c->name);
	for (size_t i = 0; i < c->nopts; i++)
		fprintf(f, c->opts[i].def ? " [--%s %s]" : " --%s %s", c->opts[i].flag,
			c->opts[i].metavar);
	fprintf(f, "\n\n%s\n\n", c->summary);
	for (size_t i = 0; i < c->nopts; i++) {
		const struct sub_opt *o = &c->opts[i];
		snprintf(term, sizeof(term), "--%s %s", o->flag, o->metavar);
		fprintf(f, "  %-21s %s\n", term, o->help);
		if (o->env)
			fprintf(f, "  %-21s env %s, default \"%s\"\n", "", o->env, o->def);
	}
	fprintf(f, "  %-21s %s\n", "--help", "print this help and exit");
	fprintf(f, "\nexit status: 0 done, 1 failed (the reason on stderr), 2 usage error\n");
}

int dh_backup_is_command(const char *arg)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(arg, cmds[i].name) == 0)
			return 1;
	}
	return 0;
}

int dh_backup_main(int argc, char **argv)
{
	const struct sub_cmd *c = NULL;
	const char *vals[SUB_OPTS_MAX] = { 0 };

	for (size_t i = 0; argc > 1 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) == 0)
			c = &cmds[i];
	}
	if (!c)
		return 2;
	for (size_t i = 0; i < c->nopts; i++) {
		const char *env = c->opts[i].env ? getenv(c->opts[i].env) : NULL;
		vals[i] = env && *env ? env : c->opts[i].def;
	}
	for (int a = 2; a < argc; a++) {
		const char *arg = argv[a], *eq;
		size_t nlen, k = c->nopts;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			sub_usage(c, stdout);
			return 0;
		}
		if (strncmp(arg, "--", 2) != 0) {
			fprintf(stderr, "devicehubd %s: unexpected argument '%s' (see --help)\n",
				c->name, arg);
			return 2;
		}
		arg += 2;
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		for (size_t i = 0; i < c->nopts; i++) {
			if (strlen(c->opts[i].flag) == nlen &&
			    strncmp(c->opts[i].flag, arg, nlen) == 0)
				k = i;
		}
		if (k == c->nopts) {
			fprintf(stderr, "devicehubd %s: unknown flag '--%.*s' (see --help)\n",
				c->name, (int)nlen, arg);
			return 2;
		}
		if (eq) {
			vals[k] = eq + 1;
		} else if (a + 1 < argc) {
			vals[k] = argv[++a];
		} else {
			fprintf(stderr, "devicehubd %s: flag --%s needs a value\n", c->name,
				c->opts[k].flag);
			return 2;
		}
	}
	for (size_t i = 0; i < c->nopts; i++) {
		if (!vals[i] || (!*vals[i] && !c->opts[i].def)) {
			fprintf(stderr, "devicehubd %s: --%s %s is required (see --help)\n",
				c->name, c->opts[i].flag, c->opts[i].metavar);
			return 2;
		}
	}
	return c->run(vals);
}

/* ---- backup -------------------------------------------------------------------------- */

struct blob_list {
	char (*sha)[DH_SHA256_HEX];
	size_t n, cap;
};

static bool collect_blob(void *cls, const char *sha256, struct dh_error *err)
{
	struct blob_list *l = cls;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		void *v = realloc(l->sha, cap * sizeof(*l->sha));
		if (!v) {
			dh_error_set(err, DH_E_NOMEM, NULL);
			return false;
		}
		l->sha = v;
		l->cap = cap;
	}
	snprintf(l->sha[l->n++], DH_SHA256_HEX, "%s", sha256);
	return true;
}

static bool fmt(char *buf, size_t size, const char *f, const char *a, const char *b)
{
	int n = snprintf(buf, size, f, a, b);
	return n >= 0 && (size_t)n < size;
}

/* The manifest of t's members, sha256sum style; malloc'd, NULL when out of memory. */
static char *manifest_text(const struct tar_out *t, size_t *len)
{
	size_t cap = t->members.n * (DH_SHA256_HEX + 2 + TAR_NAME_MAX + 1) + 1, off = 0;
	char *text = malloc(cap);

	if (!text)
		return NULL;
	for (size_t i = 0; i < t->members.n; i++) {
		int n = snprintf(text + off, cap - off, "%s  %s\n", t->members.v[i].sha256,
				 t->members.v[i].name);
		if (n < 0 || (size_t)n >= cap - off) {
			free(text);
			return NULL;
		}
		off += (size_t)n;
	}
	*len = off;
	return text;
}

/*
 * One attempt: snapshot, then the archive at partial. DH_E_NOT_FOUND means an image went
 * away between the snapshot and its copy (its firmware was deleted meanwhile): try again.
 */
static enum dh_err backup_once(const char **vals, const char *partial, const char *dbtmp,
			       struct dh_db_snapshot_info *info, struct tar_out *t,
			       struct dh_error *err)
{
	const char *data_dir = vals[1];
	struct blob_list blobs = { 0 };
	char path[BK_PATH_MAX], name[TAR_NAME_MAX], created[DH_TIME_LEN], key_path[BK_PATH_MAX];
	bool has_key;
	char *manifest = NULL, *info_text = NULL;
	size_t mlen = 0;
	json_t *j = NULL;
	enum dh_err rc;

	/*
	 * Files of our own, made afresh: what a killed backup left under these names goes, and
	 * whatever appears there meanwhile (a symbolic link planted in a shared directory, to
	 * have the archive written over another file) makes the backup fail instead.
	 */
	unlink(dbtmp);
	unlink(partial);
	rc = dh_db_snapshot_take(vals[2], data_dir, dbtmp, collect_blob, &blobs, info, err);
	if (rc != DH_OK)
		goto out;
	t->fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (t->fd < 0) {
		rc = dh_error_set(err, DH_E_IO, "Cannot create %s: %s", partial, strerror(errno));
		goto out;
	}
	dh_time_format(dh_now_us(), created);
	if (!fmt(key_path, sizeof(key_path), "%s/%s", data_dir, ARC_LINK_KEY)) {
		rc = dh_error_set(err, DH_E_INVALID, "Data dir path too long");
		goto out;
	}
	/* the key is made once at a server's first start and never changes */
	has_key = access(key_path, F_OK) == 0;
	t->link_key = has_key;
	j = json_pack("{s:s, s:i, s:s, s:i, s:s, s:I, s:I, s:b}", "format", ARC_FORMAT, "version",
		      ARC_FORMAT_VERSION, "devicehub", DH_VERSION, "schema_version",
		      info->schema_version, "created", created, "database_bytes",
		      (json_int_t)info->bytes, "images", (json_int_t)blobs.n, "link_key", has_key);
	info_text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	if (!info_text) {
		rc = dh_error_set(err, DH_E_NOMEM, NULL);
		goto out;
	}
	if ((rc = tar_add_mem(t, ARC_INFO, info_text, strlen(info_text), err)) != DH_OK ||
	    (rc = tar_add_file(t, ARC_DB, dbtmp, 0640, NULL, err)) != DH_OK)
		goto out;
	if (has_key && (rc = tar_add_file(t, ARC_LINK_KEY, key_path, 0600, NULL, err)) != DH_OK) {
		/* not an image that vanished: a backup without its key must not pass for whole */
		if (rc == DH_E_NOT_FOUND)
			rc = DH_E_IO;
		goto out;
	}
	for (size_t i = 0; i < blobs.n; i++) {
		const char *sha = blobs.sha[i];
		if (!fmt(name, sizeof(name), ARC_BLOB_DIR "%.2s/%s", sha, sha) ||
		    !fmt(path, sizeof(path), "%s/%s", data_dir, name)) {
			rc = dh_error_set(err, DH_E_INVALID, "Data dir path too long");
			goto out;
		}
		if ((rc = tar_add_file(t, name, path, 0644, sha, err)) != DH_OK)
			goto out;
	}
	manifest = manifest_text(t, &mlen);
	if (!manifest) {
		rc = dh_error_set(err, DH_E_NOMEM, NULL);
		goto out;
	}
	if ((rc = tar_add_mem(t, ARC_MANIFEST, manifest, mlen, err)) != DH_OK)
		goto out;
	{
		/* the end of a tar archive: two zero blocks */
		static const char zero[2 * TAR_BLOCK];
		if (!write_all(t->fd, zero, sizeof(zero)) || fsync(t->fd) != 0) {
			rc = dh_error_set(err, DH_E_IO, "Cannot write %s: %s", partial,
					  strerror(errno));
			goto out;
		}
		t->bytes += sizeof(zero);
	}
out:
	if (t->fd >= 0 && close(t->fd) != 0 && rc == DH_OK)
		rc = dh_error_set(err, DH_E_IO, "Cannot write %s: %s", partial, strerror(errno));
	t->fd = -1;
	unlink(dbtmp);
	json_decref(j);
	free(info_text);
	free(manifest);
	free(blobs.sha);
	return rc;
}

static int run_backup(const char **vals)
{
	const char *to = vals[0];
	char partial[BK_PATH_MAX], dbtmp[BK_PATH_MAX];
	struct dh_db_snapshot_info info = { 0 };
	struct tar_out t = { .fd = -1 };
	struct dh_error err = { 0 };
	enum dh_err rc = DH_OK;
	struct stat st;

	if (stat(to, &st) == 0) {
		fprintf(stderr, "devicehubd backup: %s exists; remove it or choose another --to\n",
			to);
		return 1;
	}
	if (!fmt(partial, sizeof(partial), "%s%s", to, ".partial") ||
	    !fmt(dbtmp, sizeof(dbtmp), "%s%s", to, ".db-snapshot")) {
		fprintf(stderr, "devicehubd backup: --to path too long\n");
		return 2;
	}
	t.path = partial;
	for (int attempt = 1; attempt <= BACKUP_ATTEMPTS; attempt++) {
		dh_error_release(&err);
		t.members.n = 0;
		t.bytes = 0;
		rc = backup_once(vals, partial, dbtmp, &info, &t, &err);
		if (rc != DH_E_NOT_FOUND || attempt == BACKUP_ATTEMPTS)
			break;
		fprintf(stderr,
			"devicehubd backup: %s; an image was deleted meanwhile, starting over\n",
			dh_error_detail(&err));
	}
	if (rc == DH_OK && (link(partial, to) != 0 || unlink(partial) != 0))
		rc = dh_error_set(&err, DH_E_IO, "Cannot create %s: %s", to, strerror(errno));
	free(t.members.v);
	if (rc != DH_OK) {
		unlink(partial);
		fail("backup", &err);
		/* a PostgreSQL database or an unknown URL is a usage mistake, not a failure */
		return rc == DH_E_INVALID ? 2 : 1;
	}
	printf("Backup %s: database %lld bytes (schema version %d), %lld images, %s, %llu bytes in"
	       " all, SHA-256 sums in " ARC_MANIFEST "\n",
	       to, (long long)info.bytes, info.schema_version, (long long)info.blobs,
	       t.link_key ? "the link key" : "no link key (the data dir has none yet)",
	       (unsigned long long)t.bytes);
	return 0;
}

/* ---- restore ------------------------------------------------------------------------- */

struct restore {
	const char *from;
	const char *dir;
	char stage[BK_PATH_MAX];
	int fd;
	struct members got; /* members unpacked, with the sums computed while reading */
	char *manifest;     /* MANIFEST.sha256 as read */
	size_t manifest_len;
	json_t *info;         /* devicehub-backup.json */
	uint64_t image_bytes; /* bytes of images unpacked */
	bool link_key;        /* the archive holds the link key */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes the staging directory and everything below it (only what this run wrote). */
static void stage_remove(struct restore *r)
{
	if (r->stage[0])
		nftw(r->stage, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static enum dh_err make_dir(const char *path, struct dh_error *err)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return dh_error_set(err, DH_E_IO, "Cannot create %s: %s", path, strerror(errno));
	return DH_OK;
}

/* Is dir empty but for the lock file? */
static enum dh_err dir_empty(const char *dir, struct dh_error *err)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	enum dh_err rc = DH_OK;

	if (!d)
		return dh_error_set(err, DH_E_IO, "Cannot read %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, DH_DATADIR_LOCK_NAME) == 0)
			continue;
		rc = dh_error_set(
			err, DH_E_CONFLICT,
			"%s is not empty (it holds %.200s); restore only into an empty data dir",
			dir, e->d_name);
		break;
	}
	closedir(d);
	return rc;
}

static uint64_t tar_number(const char *f, size_t width, bool *ok)
{
	uint64_t v = 0;
	size_t i = 0;

	*ok = true;
	if ((unsigned char)f[0] == 0x80) {
		for (i = 1; i < width; i++) {
			if (v >> 56) {
				*ok = false;
				return 0;
			}
			v = (v << 8) | (unsigned char)f[i];
		}
		return v;
	}
	while (i < width && f[i] == ' ')
		i++;
	for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60) {
			*ok = false;
			return 0;
		}
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	if (i < width && f[i] != '\0' && f[i] != ' ')
		*ok = false;
	return v;
}

/* Checks a header block: its checksum, a plain file, a name we write. */
static enum dh_err header_check(const struct tar_header *h, char name[TAR_NAME_MAX], uint64_t *size,
				struct dh_error *err)
{
	struct tar_header copy = *h;
	unsigned sum = 0;
	bool ok;
	uint64_t want = tar_number(h->chksum, sizeof(h->chksum), &ok);

	memset(copy.chksum, ' ', sizeof(copy.chksum));
	for (size_t i = 0; i < sizeof(copy); i++)
		sum += ((const unsigned char *)&copy)[i];
	if (!ok || want != sum)
		return dh_error_set(err, DH_E_INVALID, "Not a Device Hub backup: bad tar header");
	if (!memchr(h->name, '\0', sizeof(h->name)) || h->prefix[0])
		return dh_error_set(err, DH_E_INVALID,
				    "Not a Device Hub backup: a member name is too long");
	memcpy(name, h->name, TAR_NAME_MAX);
	if (h->typeflag != '0' && h->typeflag != '\0')
		return dh_error_set(err, DH_E_INVALID,
				    "Not a Device Hub backup: member %.100s is not a plain file",
				    name);
	*size = tar_number(h->size, sizeof(h->size), &ok);
	if (!ok)
		return dh_error_set(err, DH_E_INVALID,
				    "Not a Device Hub backup: bad size of %.100s", name);
	return DH_OK;
}

/* Is name blobs/sha256/<2 hex>/<64 hex> with the prefix matching the hash? */
static bool blob_member(const char *name)
{
	const char *p = name + strlen(ARC_BLOB_DIR);

	return strncmp(name, ARC_BLOB_DIR, strlen(ARC_BLOB_DIR)) == 0 && strlen(p) == 67 &&
	       p[2] == '/' && p[0] == p[3] && p[1] == p[4] && dh_blob_sha_valid(p + 3);
}

/*
 * Copies size bytes of the archive to the new file path (or into memory when mem is not
 * NULL, at most memmax bytes), hashing them, and skips the block padding.
 */
static enum dh_err take_member(struct restore *r, const char *name, uint64_t size, const char *path,
			       char **mem, size_t memmax, char sha[DH_SHA256_HEX],
			       struct dh_error *err)
{
	struct sha256_ctx ctx;
	char *buf = NULL, pad[TAR_BLOCK];
	uint64_t left = size;
	enum dh_err rc = DH_OK;
	int out = -1;
	size_t off = 0;

	if (mem && size > memmax)
		return dh_error_set(err, DH_E_INVALID, "Not a Device Hub backup: %s is too large",
				    name);
	buf = malloc(mem ? (size_t)size + 1 : COPY_BLOCK);
	if (!buf)
		return dh_error_set(err, DH_E_NOMEM, NULL);
	if (!mem) {
		/* the database and the link key as private as the server keeps them; images
		 * as the blob store */
		out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			   strcmp(name, ARC_LINK_KEY) == 0 ? 0600
			   : strcmp(name, ARC_DB) == 0     ? 0640
							   : 0644);
		if (out < 0 && errno == EEXIST) {
			/* the staging dir was empty: an earlier member of the same name */
			rc = dh_error_set(err, DH_E_INVALID,
					  "Not a Device Hub backup: %s appears twice", name);
			goto out;
		}
		if (out < 0) {
			rc = dh_error_set(err, DH_E_IO, "Cannot create %s: %s", path,
					  strerror(errno));
			goto out;
		}
	}
	sha256_init(&ctx);
	while (left > 0) {
		size_t n = mem ? (size_t)left : (left < COPY_BLOCK ? (size_t)left : COPY_BLOCK);
		char *at = mem ? buf + off : buf;
		if (!read_all(r->fd, at, n)) {
			rc = dh_error_set(err, DH_E_INVALID, "The archive ends inside %s: %s", name,
					  errno ? strerror(errno) : "truncated");
			goto out;
		}
		sha256_update(&ctx, n, (const uint8_t *)at);
		if (out >= 0 && !write_all(out, buf, n)) {
			rc = dh_error_set(err, DH_E_IO, "Cannot write %s: %s", path,
					  strerror(errno));
			goto out;
		}
		off += mem ? n : 0;
		left -= n;
	}
	if (size % TAR_BLOCK && !read_all(r->fd, pad, (size_t)(TAR_BLOCK - size % TAR_BLOCK))) {
		rc = dh_error_set(err, DH_E_INVALID, "The archive ends inside %s", name);
		goto out;
	}
	if (out >= 0 && fsync(out) != 0) {
		rc = dh_error_set(err, DH_E_IO, "Cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	digest_hex(&ctx, sha);
	if (mem) {
		buf[size] = '\0';
		*mem = buf;
		buf = NULL;
	}
out:
	if (out >= 0)
		close(out);
	free(buf);
	return rc;
}

/* Reads every member of the archive into the staging directory (or memory). */
static enum dh_err unpack(struct restore *r, struct dh_error *err)
{
	char name[TAR_NAME_MAX], path[BK_PATH_MAX], sha[DH_SHA256_HEX], dir[BK_PATH_MAX];
	struct tar_header h;
	enum dh_err rc;
	uint64_t size = 0;

	for (;;) {
		if (!read_all(r->fd, &h, sizeof(h)))
			return dh_error_set(err, DH_E_INVALID,
					    "The archive ends without its end marker: truncated?");
		if (h.name[0] == '\0') /* the first of the two zero blocks at the end */
			break;
		if ((rc = header_check(&h, name, &size, err)) != DH_OK)
			return rc;
		/* each member once: a second copy would replace what the first one said */
		if ((strcmp(name, ARC_INFO) == 0 && r->info) ||
		    (strcmp(name, ARC_MANIFEST) == 0 && r->manifest))
			return dh_error_set(err, DH_E_INVALID,
					    "Not a Device Hub backup: %s appears twice", name);
		if (strcmp(name, ARC_INFO) == 0) {
			char *text = NULL;
			if ((rc = take_member(r, name, size, NULL, &text, INFO_MAX, sha, err)) !=
			    DH_OK)
				return rc;
			r->info = json_loads(text, 0, NULL);
			free(text);
			if (!json_is_object(r->info) ||
			    json_integer_value(json_object_get(r->info, "version")) !=
				    ARC_FORMAT_VERSION ||
			    !json_string_value(json_object_get(r->info, "format")) ||
			    strcmp(json_string_value(json_object_get(r->info, "format")),
				   ARC_FORMAT) != 0)
				return dh_error_set(err, DH_E_INVALID,
						    "Not a Device Hub backup of format %d: %s",
						    ARC_FORMAT_VERSION, ARC_INFO);
		} else if (strcmp(name, ARC_MANIFEST) == 0) {
			if ((rc = take_member(r, name, size, NULL, &r->manifest, MANIFEST_MAX, sha,
					      err)) != DH_OK)
				return rc;
			r->manifest_len = (size_t)size;
			continue; /* not a member the manifest lists */
		} else if (strcmp(name, ARC_LINK_KEY) == 0) {
			if (size != DH_LINK_KEY_LEN)
				return dh_error_set(err, DH_E_INVALID,
						    "Not a Device Hub backup: %s holds %llu bytes,"
						    " not %d",
						    name, (unsigned long long)size,
						    DH_LINK_KEY_LEN);
			if (!fmt(path, sizeof(path), "%s/%s", r->stage, name))
				return dh_error_set(err, DH_E_INVALID, "Data dir path too long");
			if ((rc = take_member(r, name, size, path, NULL, 0, sha, err)) != DH_OK)
				return rc;
			r->link_key = true;
		} else if (strcmp(name, ARC_DB) == 0 || blob_member(name)) {
			if (!fmt(path, sizeof(path), "%s/%s", r->stage, name))
				return dh_error_set(err, DH_E_INVALID, "Data dir path too long");
			if (blob_member(name)) {
				/* stage/blobs, stage/blobs/sha256, stage/blobs/sha256/xx */
				if (!fmt(dir, sizeof(dir), "%s/%s", r->stage, "blobs") ||
				    make_dir(dir, err) != DH_OK ||
				    !fmt(dir, sizeof(dir), "%s/%s", r->stage, "blobs/sha256") ||
				    make_dir(dir, err) != DH_OK)
					return DH_E_IO;
				snprintf(dir, sizeof(dir), "%s", path);
				*strrchr(dir, '/') = '\0';
				if ((rc = make_dir(dir, err)) != DH_OK)
					return rc;
			}
			if ((rc = take_member(r, name, size, path, NULL, 0, sha, err)) != DH_OK)
				return rc;
			if (blob_member(name)) {
				if (strcmp(sha, strrchr(name, '/') + 1) != 0)
					return dh_error_set(
						err, DH_E_INVALID,
						"Image %s in the archive is damaged: its content hashes to %s",
						name, sha);
				r->image_bytes += size;
			}
		} else {
			return dh_error_set(err, DH_E_INVALID,
					    "Not a Device Hub backup: unexpected member %.100s",
					    name);
		}
		if (members_add(&r->got, name, sha) != 0)
			return dh_error_set(err, DH_E_NOMEM, NULL);
	}
	if (!r->info || !r->manifest)
		return dh_error_set(err, DH_E_INVALID, "Not a Device Hub backup: no %s",
				    r->info ? ARC_MANIFEST : ARC_INFO);
	return DH_OK;
}

/* The manifest lists exactly the members read, each with the sum computed while reading. */
static enum dh_err manifest_check(struct restore *r, struct dh_error *err)
{
	size_t listed = 0;
	char *line = r->manifest, *end = r->manifest + r->manifest_len;

	qsort(r->got.v, r->got.n, sizeof(*r->got.v), member_cmp);
	for (size_t i = 1; i < r->got.n; i++) {
		if (strcmp(r->got.v[i - 1].name, r->got.v[i].name) == 0)
			return dh_error_set(err, DH_E_INVALID,
					    "Not a Device Hub backup: %s appears twice",
					    r->got.v[i].name);
	}
	if (!members_find(&r->got, ARC_DB))
		return dh_error_set(err, DH_E_INVALID, "Not a Device Hub backup: no " ARC_DB);
	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		char name[TAR_NAME_MAX];
		struct member *m;
		size_t len;

		if (!nl)
			return dh_error_set(err, DH_E_INVALID,
					    ARC_MANIFEST " has an unfinished line");
		len = (size_t)(nl - line);
		if (len < DH_SHA256_HEX + 2 || len - (DH_SHA256_HEX + 1) >= sizeof(name) ||
		    line[DH_SHA256_HEX - 1] != ' ' || line[DH_SHA256_HEX] != ' ')
			return dh_error_set(err, DH_E_INVALID,
					    ARC_MANIFEST " has a malformed line");
		memcpy(name, line + DH_SHA256_HEX + 1, len - (DH_SHA256_HEX + 1));
		name[len - (DH_SHA256_HEX + 1)] = '\0';
		m = members_find(&r->got, name);
		if (!m || m->listed)
			return dh_error_set(err, DH_E_INVALID, ARC_MANIFEST " lists %.100s %s",
					    name, m ? "twice" : "which the archive lacks");
		if (strncmp(line, m->sha256, DH_SHA256_HEX - 1) != 0)
			return dh_error_set(err, DH_E_INVALID,
					    "%s does not match its SHA-256 in " ARC_MANIFEST
					    " (the archive is damaged)",
					    name);
		m->listed = true;
		listed++;
		line = nl + 1;
	}
	if (listed != r->got.n)
		return dh_error_set(err, DH_E_INVALID,
				    ARC_MANIFEST " lists %zu members, the archive holds %zu",
				    listed, r->got.n);
	return DH_OK;
}

static bool image_present(void *cls, const char *sha256, struct dh_error *err)
{
	struct restore *r = cls;
	char name[TAR_NAME_MAX];

	if (fmt(name, sizeof(name), ARC_BLOB_DIR "%.2s/%s", sha256, sha256) &&
	    members_find(&r->got, name))
		return true;
	dh_error_set(err, DH_E_INVALID, "The backup lacks image %s that its database refers to",
		     sha256);
	return false;
}

static enum dh_err sync_dir(const char *path, struct dh_error *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) != 0) {
		if (fd >= 0)
			close(fd);
		return dh_error_set(err, DH_E_IO, "Cannot sync %s: %s", path, strerror(errno));
	}
	close(fd);
	return DH_OK;
}

/* Moves the checked staging files into the data dir: images and the link key first, the
 * database last. */
static enum dh_err install(struct restore *r, struct dh_error *err)
{
	char from[BK_PATH_MAX], to[BK_PATH_MAX], key_from[BK_PATH_MAX], key_to[BK_PATH_MAX];
	struct stat st;
	enum dh_err rc;

	if (!fmt(to, sizeof(to), "%s/%s", r->dir, "blobs") ||
	    !fmt(from, sizeof(from), "%s/%s", r->stage, "blobs") ||
	    !fmt(key_to, sizeof(key_to), "%s/%s", r->dir, ARC_LINK_KEY) ||
	    !fmt(key_from, sizeof(key_from), "%s/%s", r->stage, ARC_LINK_KEY))
		return dh_error_set(err, DH_E_INVALID, "Data dir path too long");
	if (r->link_key && rename(key_from, key_to) != 0)
		return dh_error_set(err, DH_E_IO, "Cannot move %s to %s: %s", key_from, key_to,
				    strerror(errno));
	if (stat(from, &st) == 0) {
		if (rename(from, to) != 0) {
			rc = dh_error_set(err, DH_E_IO, "Cannot move %s to %s: %s", from, to,
					  strerror(errno));
			goto undo_key;
		}
	} else if ((rc = make_dir(to, err)) != DH_OK) {
		goto undo_key;
	}
	if (!fmt(from, sizeof(from), "%s/%s", r->stage, ARC_DB)) {
		rc = dh_error_set(err, DH_E_INVALID, "Data dir path too long");
		goto undo_blobs;
	}
	if ((rc = sync_dir(to, err)) != DH_OK ||
	    (rc = dh_db_snapshot_install(from, r->dir, err)) != DH_OK)
		goto undo_blobs;
	return sync_dir(r->dir, err);
undo_blobs:
	/* put the data dir back as it was: empty */
	if (fmt(from, sizeof(from), "%s/%s", r->stage, "blobs"))
		rename(to, from);
undo_key:
	if (r->link_key)
		rename(key_to, key_from);
	return rc;
}

static int run_restore(const char **vals)
{
	struct restore r = { .from = vals[0], .dir = vals[1], .fd = -1 };
	struct dh_db_snapshot_info info = { 0 };
	struct dh_error err = { 0 };
	char db[BK_PATH_MAX];
	enum dh_err rc;
	bool staged = false;

	/* the lock first: no server may start on the directory while it is being filled */
	if ((rc = dh_datadir_lock(r.dir, &err)) != DH_OK)
		goto out;
	if (!fmt(r.stage, sizeof(r.stage), "%s/%s", r.dir, RESTORE_STAGE) ||
	    !fmt(db, sizeof(db), "%s/%s", r.stage, ARC_DB)) {
		rc = dh_error_set(&err, DH_E_INVALID, "Data dir path too long");
		goto out;
	}
	/* a staging dir found here can only be a dead restore's: this one holds the lock */
	stage_remove(&r);
	if ((rc = dir_empty(r.dir, &err)) != DH_OK)
		goto out;
	r.fd = open(r.from, O_RDONLY | O_CLOEXEC);
	if (r.fd < 0) {
		rc = dh_error_set(&err, DH_E_IO, "Cannot read %s: %s", r.from, strerror(errno));
		goto out;
	}
	if (mkdir(r.stage, 0750) != 0) {
		rc = dh_error_set(&err, DH_E_IO, "Cannot create %s: %s", r.stage, strerror(errno));
		r.stage[0] = '\0';
		goto out;
	}
	staged = true;
	if ((rc = unpack(&r, &err)) != DH_OK || (rc = manifest_check(&r, &err)) != DH_OK ||
	    (rc = dh_db_snapshot_check(db, image_present, &r, &info, &err)) != DH_OK ||
	    (rc = install(&r, &err)) != DH_OK)
		goto out;
	printf("Restored %s from %s: database %lld bytes (schema version %d), %lld images (%llu"
	       " bytes), %s, every SHA-256 sum checked\n",
	       r.dir, r.from, (long long)info.bytes, info.schema_version, (long long)info.blobs,
	       (unsigned long long)r.image_bytes,
	       r.link_key ? "the link key"
			  : "no link key (a new one is made at the first start: sessions then show"
			    " their short links as null until they run again)");
out:
	if (staged)
		stage_remove(&r);
	if (r.fd >= 0)
		close(r.fd);
	free(r.got.v);
	free(r.manifest);
	json_decref(r.info);
	if (rc != DH_OK) {
		fail("restore", &err);
		return 1;
	}
	return 0;
}
