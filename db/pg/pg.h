/*
 * Inside the PostgreSQL engine: the connection helper shared by the driver and the change
 * listener, and this process's id in notifications. Never included outside db/.
 */
#ifndef DH_DB_PG_H
#define DH_DB_PG_H

#include "driver.h"

#include <libpq-fe.h>

/* Connects to target (a URL or key=value string); NULL with err saying why. */
PGconn *dh_pg_connect(const char *target, struct dh_error *err);
/* The libpq connection of db (a PostgreSQL connection). */
PGconn *dh_pg_conn(struct dh_db *db);
/* This process's id in notifications: its own are skipped by its listener. */
const char *dh_pg_origin(void);

/* Starts the listener thread on target (after migrations), stops and joins it. */
enum dh_err dh_pg_listen_start(const char *target, struct dh_error *err);
void dh_pg_listen_stop(void);

#endif
