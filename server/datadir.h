/*
 * The data directory's lock: one devicehubd per --data-dir. Start-up takes it before it
 * touches anything in the directory (migrations, blobs/tmp clean-up, session recovery),
 * because those steps assume that whatever they find belongs to a process that is gone.
 * Several processes may share a database server; each keeps its own data dir and lock.
 */
#ifndef DH_DATADIR_H
#define DH_DATADIR_H

#include "core/err.h"

/* The lock file inside the data dir; it holds the owner's pid, for the message. */
#define DH_DATADIR_LOCK_NAME "devicehubd.lock"

/*
 * Creates dir if needed and takes an exclusive lock on dir/devicehubd.lock (flock), writing
 * this process's pid into it. The lock lasts until the process ends: the descriptor is kept
 * open (close-on-exec) and never closed. DH_E_BUSY when another process holds it (the detail
 * names its pid when it wrote one), DH_E_IO when the file cannot be created or locked.
 */
enum dh_err dh_datadir_lock(const char *dir, struct dh_error *err);

#endif
