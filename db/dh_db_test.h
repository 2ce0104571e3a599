/*
 * Helpers for unit tests that look into a database without knowing its engine. Not used by
 * the server.
 */
#ifndef DH_DB_TEST_H
#define DH_DB_TEST_H

#include "dh_db.h"

#include <stdint.h>

/* The first column of the first row of sql as an integer; -1 when the query fails or has no
 * row. */
int64_t dh_db_test_int(struct dh_db *db, const char *sql);

#endif
