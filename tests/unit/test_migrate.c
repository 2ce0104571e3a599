/* The migration runner: order, idempotence, rollback of a failing migration, and the real
 * migrations of this build applied to an empty database. */
#include "dh_db.h"
#include "dh_db_test.h"

#include <check.h>
#include <stdlib.h>

static int count(struct dh_db *db, const char *sql)
{
	return (int)dh_db_test_int(db, sql);
}

static const struct dh_migration v1[] = {
	{ 1, "one", "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);" },
};
static const struct dh_migration v2[] = {
	{ 1, "one", "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);" },
	{ 2, "two", "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (2);" },
};
static const struct dh_migration bad[] = {
	{ 1, "one", "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);" },
	{ 2, "two", "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (2);" },
	{ 3, "broken", "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (3);" },
};
static const struct dh_migration unordered[] = {
	{ 2, "two", "SELECT 1;" },
	{ 1, "one", "SELECT 1;" },
};

START_TEST(test_upgrade)
{
	struct dh_error err = { 0 };
	struct dh_db *db = dh_db_open("sqlite::memory:", &err);

	ck_assert_ptr_nonnull(db);
	ck_assert_int_eq(dh_db_schema_version(db), -1);
	ck_assert_int_eq(dh_db_migrate(db, v1, 1, &err), DH_OK);
	ck_assert_int_eq(dh_db_schema_version(db), 1);
	/* an older database is upgraded, and applied migrations do not run again */
	ck_assert_int_eq(dh_db_migrate(db, v2, 2, &err), DH_OK);
	ck_assert_int_eq(dh_db_schema_version(db), 2);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM a"), 2);
	ck_assert_int_eq(dh_db_migrate(db, v2, 2, &err), DH_OK);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM a"), 2);
	/* a failing migration leaves nothing of itself behind */
	ck_assert_int_eq(dh_db_migrate(db, bad, 3, &err), DH_E_DB);
	ck_assert_int_eq(dh_db_schema_version(db), 2);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'c'"), 0);
	dh_error_release(&err);
	ck_assert_int_eq(dh_db_migrate(db, unordered, 2, &err), DH_E_INTERNAL);
	dh_error_release(&err);
	dh_db_close(db);
}
END_TEST

START_TEST(test_real_migrations)
{
	struct dh_error err = { 0 };
	struct dh_db *db = dh_db_open("sqlite::memory:", &err);
	const struct dh_migration *m;
	size_t n;

	ck_assert_ptr_nonnull(db);
	m = dh_db_migrations(db, &n);
	ck_assert_uint_gt(n, 0);
	ck_assert_int_eq(dh_db_migrate(db, m, n, &err), DH_OK);
	ck_assert_int_eq(dh_db_schema_version(db), m[n - 1].version);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM sqlite_master WHERE name = 'products'"),
			 1);
	dh_db_close(db);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("runner");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_upgrade);
	tcase_add_test(tc, test_real_migrations);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
