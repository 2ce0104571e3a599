/*
 * The blob store (see blob.h): temporary files, atomic placement by rename, the aside
 * ("trash") step that lets a delete be undone with its transaction, and the cache of
 * mappings. The cache's mutex guards only the slot table and reference counts; opening,
 * mapping and unmapping happen outside it.
 */
#include "blob.h"

#include "dh_db.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Written once by dh_blob_setup before any thread uses the store. */
static char blob_root[DH_BLOB_PATH_MAX];
static char blob_tmp[DH_BLOB_PATH_MAX];

static bool fmt_path(char *buf, size_t size, const char *fmt, const char *a, const char *b)
{
	int n = snprintf(buf, size, fmt, a, b);

	return n >= 0 && (size_t)n < size;
}

static enum dh_err make_dir(const char *path, struct dh_error *err)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return dh_error_set(err, DH_E_IO, "Cannot create %s: %s", path, strerror(errno));
	return DH_OK;
}

enum dh_err dh_blob_setup(const char *data_dir, struct dh_error *err)
{
	char path[DH_BLOB_PATH_MAX];
	struct dirent *e;
	enum dh_err rc;
	DIR *d;

	if (!fmt_path(blob_root, sizeof(blob_root), "%s/blobs%s", data_dir, "") ||
	    !fmt_path(blob_tmp, sizeof(blob_tmp), "%s/tmp%s", blob_root, "") ||
	    !fmt_path(path, sizeof(path), "%s/sha256%s", blob_root, ""))
		return dh_error_set(err, DH_E_IO, "The data directory path is too long.");
	if ((rc = make_dir(data_dir, err)) != DH_OK || (rc = make_dir(blob_root, err)) != DH_OK ||
	    (rc = make_dir(blob_tmp, err)) != DH_OK || (rc = make_dir(path, err)) != DH_OK)
		return rc;
	/* whatever is in tmp belongs to uploads or deletes of a process that is gone */
	d = opendir(blob_tmp);
	if (!d)
		return dh_error_set(err, DH_E_IO, "Cannot read %s: %s", blob_tmp, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (fmt_path(path, sizeof(path), "%s/%s", blob_tmp, e->d_name) && unlink(path) == 0)
			dh_info("blob.stale_removed", "path=\"%s\"", path);
	}
	closedir(d);
	return DH_OK;
}

bool dh_blob_sha_valid(const char *sha256)
{
	if (!sha256 || strlen(sha256) != 64)
		return false;
	for (size_t i = 0; i < 64; i++) {
		char c = sha256[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

bool dh_blob_path(const char *sha256, char *buf, size_t size)
{
	int n;

	if (!dh_blob_sha_valid(sha256))
		return false;
	n = snprintf(buf, size, "%s/sha256/%.2s/%s", blob_root, sha256, sha256);
	return n >= 0 && (size_t)n < size;
}

enum dh_err dh_blob_writer_open(struct dh_blob_writer *w, struct dh_error *err)
{
	uint8_t rnd[8];
	char hex[17];

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (!dh_random(rnd, sizeof(rnd)))
		return dh_error_set(err, DH_E_IO, "No random bytes for a temporary file name.");
	dh_hex(rnd, sizeof(rnd), hex);
	if (!fmt_path(w->tmp_path, sizeof(w->tmp_path), "%s/up-%s", blob_tmp, hex))
		return dh_error_set(err, DH_E_IO, "The data directory path is too long.");
	w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (w->fd < 0)
		return dh_error_set(err, DH_E_IO, "Cannot create a temporary file in %s: %s",
				    blob_tmp, strerror(errno));
	w->is_open = true;
	sha256_init(&w->ctx);
	return DH_OK;
}

enum dh_err dh_blob_writer_write(struct dh_blob_writer *w, const void *data, size_t len,
				 struct dh_error *err)
{
	const char *p = data;
	size_t left = len;

	if (w->fd < 0)
		return dh_error_set(err, DH_E_INTERNAL, "The upload file is not open.");
	while (left) {
		ssize_t n = write(w->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			dh_error("blob.write", "path=\"%s\" errno=%d", w->tmp_path, errno);
			return dh_error_set(err, DH_E_IO, "Cannot write the upload to disk: %s",
					    strerror(errno));
		}
		p += n;
		left -= (size_t)n;
	}
	sha256_update(&w->ctx, len, data);
	w->size += len;
	return DH_OK;
}

enum dh_err dh_blob_writer_close(struct dh_blob_writer *w, struct dh_error *err)
{
	uint8_t digest[SHA256_DIGEST_SIZE];
	int rc;

	if (w->fd < 0)
		return dh_error_set(err, DH_E_INTERNAL, "The upload file is not open.");
	rc = fsync(w->fd);
	rc |= close(w->fd);
	w->fd = -1;
	if (rc != 0) {
		dh_error("blob.fsync", "path=\"%s\" errno=%d", w->tmp_path, errno);
		return dh_error_set(err, DH_E_IO, "Cannot flush the upload to disk.");
	}
	sha256_digest(&w->ctx, sizeof(digest), digest);
	dh_hex(digest, sizeof(digest), w->sha256);
	return DH_OK;
}

static void sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

enum dh_err dh_blob_writer_place(struct dh_blob_writer *w, bool *created, struct dh_error *err)
{
	char path[DH_BLOB_PATH_MAX], dir[DH_BLOB_PATH_MAX];
	char shard[3] = { w->sha256[0], w->sha256[1], 0 };
	struct stat sb;
	enum dh_err rc;

	*created = false;
	if (!w->is_open || w->fd >= 0 || !dh_blob_path(w->sha256, path, sizeof(path)) ||
	    !fmt_path(dir, sizeof(dir), "%s/sha256/%s", blob_root, shard))
		return dh_error_set(err, DH_E_INTERNAL, "The upload is not ready to be stored.");
	if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == w->size) {
		/* the same image is already stored: share it */
		dh_blob_writer_release(w);
		return DH_OK;
	}
	rc = make_dir(dir, err);
	if (rc != DH_OK)
		return rc;
	if (rename(w->tmp_path, path) != 0)
		return dh_error_set(err, DH_E_IO, "Cannot store the upload: %s", strerror(errno));
	w->is_open = false;
	*created = true;
	sync_dir(dir);
	return DH_OK;
}

void dh_blob_writer_release(struct dh_blob_writer *w)
{
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->is_open) {
		unlink(w->tmp_path);
		w->is_open = false;
	}
}

enum dh_err dh_blob_ensure(const char *sha256, uint64_t size, struct dh_error *err)
{
	struct dh_blob_writer w;
	char path[DH_BLOB_PATH_MAX], dir[DH_BLOB_PATH_MAX];
	char shard[3] = { sha256[0], sha256[1], 0 };
	struct dh_db *db;
	struct stat sb;
	uint64_t n = 0;
	enum dh_err rc;

	if (!dh_blob_path(sha256, path, sizeof(path)))
		return dh_error_set(err, DH_E_INTERNAL, "Not a blob hash.");
	if (stat(path, &sb) == 0 && (uint64_t)sb.st_size == size)
		return DH_OK;
	db = dh_db_thread();
	if (!db)
		return dh_error_set(err, DH_E_IO, "The stored image is missing.");
	rc = dh_blob_writer_open(&w, err);
	if (rc != DH_OK)
		return rc;
	rc = dh_db_blob_fetch(db, sha256, w.fd, &n);
	if (rc == DH_OK && n != size)
		rc = DH_E_IO;
	if (rc == DH_OK &&
	    (fsync(w.fd) != 0 || !fmt_path(dir, sizeof(dir), "%s/sha256/%s", blob_root, shard)))
		rc = DH_E_IO;
	if (rc == DH_OK)
		rc = make_dir(dir, NULL);
	if (rc == DH_OK && rename(w.tmp_path, path) != 0)
		rc = DH_E_IO;
	if (rc == DH_OK) {
		w.is_open = false; /* renamed into place */
		sync_dir(dir);
		dh_info("blob.filled", "sha256=%s size=%llu", sha256, (unsigned long long)size);
	}
	dh_blob_writer_release(&w);
	if (rc != DH_OK) {
		dh_error("blob.missing", "sha256=%s code=%s", sha256, dh_err_name(rc));
		return dh_error_set(err, DH_E_IO, "The stored image is missing.");
	}
	return DH_OK;
}

/* ---- pins of uploads in flight ---- */

/* Unpins remembered for removers that read the epoch before them; beyond, removers that
 * started earlier keep the file (it stays, unreferenced, which is safe). */
#define BLOB_UNPIN_RING 64

struct pin {
	struct pin *next;
	char sha256[DH_SHA256_HEX];
	unsigned count;
};

/* Guarded by pin_lock. */
static struct {
	struct pin *head;
	uint64_t epoch;
	struct {
		char sha256[DH_SHA256_HEX];
		uint64_t epoch;
	} unpins[BLOB_UNPIN_RING];
	size_t next;              /* next unpins slot */
	uint64_t forgotten_epoch; /* the newest epoch of an unpin that left the ring */
} pins;
static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t dh_blob_epoch(void)
{
	uint64_t e;

	pthread_mutex_lock(&pin_lock);
	e = pins.epoch;
	pthread_mutex_unlock(&pin_lock);
	return e;
}

void dh_blob_pin(const char *sha256)
{
	struct pin *p, *fresh = calloc(1, sizeof(*fresh));

	pthread_mutex_lock(&pin_lock);
	pins.epoch++;
	for (p = pins.head; p && strcmp(p->sha256, sha256) != 0; p = p->next)
		;
	if (!p && fresh) {
		p = fresh;
		fresh = NULL;
		snprintf(p->sha256, sizeof(p->sha256), "%s", sha256);
		p->next = pins.head;
		pins.head = p;
	}
	if (p)
		p->count++;
	else
		pins.forgotten_epoch =
			UINT64_MAX; /* out of memory: no remover may trust the epoch */
	pthread_mutex_unlock(&pin_lock);
	free(fresh);
}

void dh_blob_unpin(const char *sha256)
{
	struct pin **pp, *gone = NULL;
	size_t slot;

	pthread_mutex_lock(&pin_lock);
	pins.epoch++;
	for (pp = &pins.head; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->sha256, sha256) == 0) {
			if (--(*pp)->count == 0) {
				gone = *pp;
				*pp = gone->next;
			}
			break;
		}
	}
	slot = pins.next++ % BLOB_UNPIN_RING;
	if (pins.unpins[slot].epoch > pins.forgotten_epoch)
		pins.forgotten_epoch = pins.unpins[slot].epoch;
	snprintf(pins.unpins[slot].sha256, DH_SHA256_HEX, "%s", sha256);
	pins.unpins[slot].epoch = pins.epoch;
	pthread_mutex_unlock(&pin_lock);
	free(gone);
}

/* Was sha256 pinned at any time after since? Call under pin_lock. */
static bool pinned_since(const char *sha256, uint64_t since)
{
	if (pins.forgotten_epoch > since)
		return true;
	for (struct pin *p = pins.head; p; p = p->next) {
		if (strcmp(p->sha256, sha256) == 0)
			return true;
	}
	for (size_t i = 0; i < BLOB_UNPIN_RING; i++) {
		if (pins.unpins[i].epoch > since && strcmp(pins.unpins[i].sha256, sha256) == 0)
			return true;
	}
	return false;
}

bool dh_blob_remove_unused(const char *sha256, uint64_t since_epoch)
{
	char path[DH_BLOB_PATH_MAX], trash[DH_BLOB_PATH_MAX];
	uint8_t rnd[8];
	char hex[17];
	bool moved = false;

	if (!dh_blob_path(sha256, path, sizeof(path)) || !dh_random(rnd, sizeof(rnd)))
		return false;
	dh_hex(rnd, sizeof(rnd), hex);
	if (!fmt_path(trash, sizeof(trash), "%s/del-%s", blob_tmp, hex))
		return false;
	/* only the rename is decided under the lock; an upload pinned after it places anew */
	pthread_mutex_lock(&pin_lock);
	if (!pinned_since(sha256, since_epoch))
		moved = rename(path, trash) == 0;
	pthread_mutex_unlock(&pin_lock);
	if (!moved)
		return false;
	if (unlink(trash) != 0)
		dh_warn("blob.purge", "path=\"%s\" errno=%d", trash, errno);
	dh_blob_map_forget(sha256);
	return true;
}

/* ---- the mapping cache ---- */

struct map_entry {
	struct dh_blob_map pub; /* first: a struct dh_blob_map * is a struct map_entry * */
	char sha256[DH_SHA256_HEX];
	size_t map_len; /* 0: nothing mapped (empty blob) */
	unsigned refs;  /* guarded by map_lock; the cache holds one while cached */
	bool cached;
	uint64_t last_use;
};

static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static struct map_entry *map_slots[DH_BLOB_MAP_SLOTS]; /* guarded by map_lock */
static uint64_t map_clock;                             /* guarded by map_lock */

static void entry_free(struct map_entry *e)
{
	if (!e)
		return;
	if (e->map_len)
		munmap((void *)e->pub.data, e->map_len);
	if (e->pub.fd >= 0)
		close(e->pub.fd);
	free(e);
}

/* Finds a cached entry and takes a reference; call with map_lock held. */
static struct map_entry *lookup_locked(const char *sha256, uint64_t size)
{
	for (size_t i = 0; i < DH_BLOB_MAP_SLOTS; i++) {
		struct map_entry *e = map_slots[i];
		if (e && e->pub.size == size && strcmp(e->sha256, sha256) == 0) {
			e->refs++;
			e->last_use = ++map_clock;
			return e;
		}
	}
	return NULL;
}

/* A new mapping of blob sha256; fetch: fill a missing file from the database first, else
 * *absent says that it is missing. */
static struct map_entry *map_new(const char *sha256, uint64_t size, bool fetch, bool *absent,
				 struct dh_error *err)
{
	char path[DH_BLOB_PATH_MAX];
	struct map_entry *e = NULL;
	struct stat sb;
	void *p;
	int fd;

	if (!dh_blob_path(sha256, path, sizeof(path))) {
		dh_error_set(err, DH_E_INTERNAL, "Not a blob hash.");
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && !fetch) {
		*absent = true;
		dh_error_set(err, DH_E_IO, "The image is not in this server's blob store yet.");
		return NULL;
	}
	if (fd < 0 && errno == ENOENT && dh_blob_ensure(sha256, size, NULL) == DH_OK)
		fd = open(path, O_RDONLY | O_CLOEXEC); /* filled from the database */
	if (fd < 0 || fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != size || size > SIZE_MAX) {
		dh_error("blob.missing", "sha256=%s errno=%d", sha256, errno);
		dh_error_set(err, DH_E_IO, "The stored image is missing or damaged.");
		goto out;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		dh_error_set(err, DH_E_NOMEM, NULL);
		goto out;
	}
	memcpy(e->sha256, sha256, DH_SHA256_HEX);
	e->pub.size = size;
	e->pub.fd = -1;
	e->refs = 1;
	if (size == 0) {
		e->pub.data = (const uint8_t *)"";
		goto out;
	}
	p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		dh_error("blob.mmap", "sha256=%s errno=%d", sha256, errno);
		dh_error_set(err, DH_E_IO, "Cannot map the stored image.");
		free(e);
		e = NULL;
		goto out;
	}
	e->pub.data = p;
	e->map_len = (size_t)size;
	e->pub.fd = fd; /* kept for sendfile */
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return e;
}

static struct dh_blob_map *map_get(const char *sha256, uint64_t size, bool fetch, bool *absent,
				   struct dh_error *err)
{
	struct map_entry *e, *mine, *evicted = NULL;
	size_t slot = DH_BLOB_MAP_SLOTS;

	pthread_mutex_lock(&map_lock);
	e = lookup_locked(sha256, size);
	pthread_mutex_unlock(&map_lock);
	if (e)
		return &e->pub;
	mine = map_new(sha256, size, fetch, absent, err);
	if (!mine)
		return NULL;
	pthread_mutex_lock(&map_lock);
	e = lookup_locked(sha256, size); /* another thread may have mapped it meanwhile */
	if (!e) {
		for (size_t i = 0; i < DH_BLOB_MAP_SLOTS; i++) {
			if (!map_slots[i]) {
				slot = i;
				break;
			}
			if (slot == DH_BLOB_MAP_SLOTS ||
			    map_slots[i]->last_use < map_slots[slot]->last_use)
				slot = i;
		}
		if (map_slots[slot]) {
			evicted = map_slots[slot];
			evicted->cached = false;
			if (--evicted->refs != 0)
				evicted = NULL; /* still being sent; its last put frees it */
		}
		mine->cached = true;
		mine->refs++;
		mine->last_use = ++map_clock;
		map_slots[slot] = mine;
		e = mine;
		mine = NULL;
	}
	pthread_mutex_unlock(&map_lock);
	entry_free(mine);
	entry_free(evicted);
	return &e->pub;
}

struct dh_blob_map *dh_blob_map_get(const char *sha256, uint64_t size, struct dh_error *err)
{
	bool absent = false;

	return map_get(sha256, size, true, &absent, err);
}

struct dh_blob_map *dh_blob_map_get_local(const char *sha256, uint64_t size, bool *absent,
					  struct dh_error *err)
{
	*absent = false;
	return map_get(sha256, size, false, absent, err);
}

void dh_blob_map_put(void *map)
{
	struct map_entry *e = map;
	bool last;

	if (!e)
		return;
	pthread_mutex_lock(&map_lock);
	last = --e->refs == 0;
	pthread_mutex_unlock(&map_lock);
	if (last)
		entry_free(e);
}

/* Drops the cache's reference of slots matching sha256 (all when NULL). */
static void drop_cached(const char *sha256)
{
	struct map_entry *gone[DH_BLOB_MAP_SLOTS];
	size_t n = 0;

	pthread_mutex_lock(&map_lock);
	for (size_t i = 0; i < DH_BLOB_MAP_SLOTS; i++) {
		struct map_entry *e = map_slots[i];
		if (!e || (sha256 && strcmp(e->sha256, sha256) != 0))
			continue;
		map_slots[i] = NULL;
		e->cached = false;
		if (--e->refs == 0)
			gone[n++] = e;
	}
	pthread_mutex_unlock(&map_lock);
	for (size_t i = 0; i < n; i++)
		entry_free(gone[i]);
}

void dh_blob_map_forget(const char *sha256)
{
	drop_cached(sha256);
}

void dh_blob_map_clear(void)
{
	drop_cached(NULL);
}

/* ---- filling in the background ---- */

enum fill_state {
	FILL_FREE,
	FILL_QUEUED,
	FILL_RUNNING,
	FILL_FAILED,
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t th;
	bool is_running; /* between start and stop: asks are taken */
	bool stop;
	uint64_t next_seq; /* fills start in the order they were asked for */
	struct {
		enum fill_state state;
		char sha256[DH_SHA256_HEX];
		uint64_t size;
		uint64_t seq;
		int64_t failed_ms;
	} slot[DH_BLOB_FILL_SLOTS];
} filler = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };

/* Is blob sha256 here, whole? (a stat: no database, no reading) */
static bool blob_here(const char *sha256, uint64_t size)
{
	char path[DH_BLOB_PATH_MAX];
	struct stat sb;

	return dh_blob_path(sha256, path, sizeof(path)) && stat(path, &sb) == 0 &&
	       (uint64_t)sb.st_size == size;
}

enum dh_err dh_blob_fill_later(const char *sha256, uint64_t size)
{
	int64_t now = dh_mono_ms(), forget = now - DH_BLOB_FILL_RETRY_S * 1000LL;
	size_t room = DH_BLOB_FILL_SLOTS;
	enum dh_err rc = DH_E_BUSY;

	if (!dh_blob_sha_valid(sha256))
		return DH_E_INVALID;
	if (blob_here(sha256, size))
		return DH_OK;
	pthread_mutex_lock(&filler.lock);
	if (!filler.is_running) {
		rc = DH_E_IO;
		goto out;
	}
	for (size_t i = 0; i < DH_BLOB_FILL_SLOTS; i++) {
		if (filler.slot[i].state != FILL_FREE && filler.slot[i].size == size &&
		    strcmp(filler.slot[i].sha256, sha256) == 0) {
			if (filler.slot[i].state != FILL_FAILED) {
				rc = DH_OK; /* on its way */
				goto out;
			}
			if (filler.slot[i].failed_ms > forget) {
				rc = DH_E_IO; /* failed a moment ago: not again yet */
				goto out;
			}
			room = i;
			break;
		}
		if (room == DH_BLOB_FILL_SLOTS &&
		    (filler.slot[i].state == FILL_FREE ||
		     (filler.slot[i].state == FILL_FAILED && filler.slot[i].failed_ms <= forget)))
			room = i;
	}
	if (room < DH_BLOB_FILL_SLOTS) {
		filler.slot[room].state = FILL_QUEUED;
		snprintf(filler.slot[room].sha256, DH_SHA256_HEX, "%s", sha256);
		filler.slot[room].size = size;
		filler.slot[room].seq = filler.next_seq++;
		pthread_cond_signal(&filler.wake);
		dh_debug("blob.fill_queued", "sha256=%s size=%llu", sha256,
			 (unsigned long long)size);
		rc = DH_OK;
	}
out:
	pthread_mutex_unlock(&filler.lock);
	return rc;
}

/* The oldest queued fill, or DH_BLOB_FILL_SLOTS. Call locked. */
static size_t next_fill(void)
{
	size_t pick = DH_BLOB_FILL_SLOTS;

	for (size_t i = 0; i < DH_BLOB_FILL_SLOTS; i++) {
		if (filler.slot[i].state == FILL_QUEUED &&
		    (pick == DH_BLOB_FILL_SLOTS || filler.slot[i].seq < filler.slot[pick].seq))
			pick = i;
	}
	return pick;
}

static void *filler_main(void *arg)
{
	char sha256[DH_SHA256_HEX];
	uint64_t size;
	size_t i;

	(void)arg;
	pthread_mutex_lock(&filler.lock);
	while (!filler.stop) {
		enum dh_err rc;

		i = next_fill();
		if (i == DH_BLOB_FILL_SLOTS) {
			pthread_cond_wait(&filler.wake, &filler.lock);
			continue;
		}
		filler.slot[i].state = FILL_RUNNING;
		memcpy(sha256, filler.slot[i].sha256, sizeof(sha256));
		size = filler.slot[i].size;
		pthread_mutex_unlock(&filler.lock);
		/* the copy from the database: logs blob.filled, or blob.missing */
		rc = dh_blob_ensure(sha256, size, NULL);
		pthread_mutex_lock(&filler.lock);
		if (rc == DH_OK) {
			filler.slot[i].state = FILL_FREE;
		} else {
			filler.slot[i].state = FILL_FAILED;
			filler.slot[i].failed_ms = dh_mono_ms();
		}
	}
	pthread_mutex_unlock(&filler.lock);
	dh_db_thread_close();
	return NULL;
}

enum dh_err dh_blob_filler_start(struct dh_error *err)
{
	pthread_mutex_lock(&filler.lock);
	if (filler.is_running) {
		pthread_mutex_unlock(&filler.lock);
		return DH_OK;
	}
	memset(filler.slot, 0, sizeof(filler.slot));
	filler.stop = false;
	if (pthread_create(&filler.th, NULL, filler_main, NULL) != 0) {
		pthread_mutex_unlock(&filler.lock);
		return dh_error_set(err, DH_E_INTERNAL, "Cannot start the blob filler thread.");
	}
	filler.is_running = true;
	pthread_mutex_unlock(&filler.lock);
	return DH_OK;
}

void dh_blob_filler_stop(void)
{
	pthread_mutex_lock(&filler.lock);
	if (!filler.is_running) {
		pthread_mutex_unlock(&filler.lock);
		return;
	}
	filler.is_running = false;
	filler.stop = true;
	pthread_cond_signal(&filler.wake);
	pthread_mutex_unlock(&filler.lock);
	/* a fill under way ends first: at most one image's copy */
	pthread_join(filler.th, NULL);
}
