/*
 * devicehubd backup and devicehubd restore: one archive (POSIX tar) holding a snapshot of
 * the database, every image it refers to and a manifest of SHA-256 sums, written while the
 * server runs, and its unpacking into an empty data dir after every sum was checked.
 *
 * Archive members, in order: devicehub-backup.json (format, versions, time, counts),
 * devicehub.db (the database snapshot), link.key (the short links' key, when the data dir
 * has one), blobs/sha256/<2 hex>/<64 hex> (the images, named by their hash as in the blob
 * store) and MANIFEST.sha256 (sha256sum format: one line
 * "<hex>  <member>" for every other member), so that `tar x` and `sha256sum -c` check an
 * archive without devicehubd.
 */
#ifndef DH_BACKUP_H
#define DH_BACKUP_H

/* Runs `devicehubd backup ...` or `devicehubd restore ...` (argv[1] names which); returns
 * the process's exit status: 0 done, 1 failed (message on stderr), 2 usage error. */
int dh_backup_main(int argc, char **argv);

/* Does argv[1] name a subcommand of this module? */
int dh_backup_is_command(const char *arg);

#endif
