/* Access-rights evaluation: implication of actions and matching of scopes. */
#include "core/rights.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define P1 "11111111-1111-4111-8111-111111111111"
#define P2 "22222222-2222-4222-8222-222222222222"
#define M1 "33333333-3333-4333-8333-333333333333"
#define M2 "44444444-4444-4444-8444-444444444444"
#define C1 "55555555-5555-4555-8555-555555555555"
#define C2 "66666666-6666-4666-8666-666666666666"

static const struct {
	enum dh_action grant;
	const char *gp, *gm, *gc;
	enum dh_action want;
	const char *sp, *sm, *sc;
	bool allow, sees;
} cases[] = {
	/* admin covers everything, scoped or not */
	{ DH_ACT_ADMIN, "", "", "", DH_ACT_MANAGE, NULL, NULL, NULL, true, true },
	{ DH_ACT_ADMIN, "", "", "", DH_ACT_ADMIN, P1, M1, C1, true, true },
	/* manage implies upload/update/draft but not admin */
	{ DH_ACT_MANAGE, "", "", "", DH_ACT_UPLOAD, P1, M1, NULL, true, true },
	{ DH_ACT_MANAGE, "", "", "", DH_ACT_DRAFT, P1, M1, C1, true, true },
	{ DH_ACT_MANAGE, "", "", "", DH_ACT_ADMIN, NULL, NULL, NULL, false, true },
	/* product scope */
	{ DH_ACT_MANAGE, P1, "", "", DH_ACT_MANAGE, P1, M1, NULL, true, true },
	{ DH_ACT_MANAGE, P1, "", "", DH_ACT_MANAGE, P2, M2, NULL, false, false },
	{ DH_ACT_MANAGE, P1, "", "", DH_ACT_MANAGE, NULL, NULL, NULL, false, false },
	/* model scope */
	{ DH_ACT_UPLOAD, P1, M1, "", DH_ACT_UPLOAD, P1, M1, C1, true, true },
	{ DH_ACT_UPLOAD, P1, M1, "", DH_ACT_UPLOAD, P1, M2, C1, false, false },
	{ DH_ACT_UPLOAD, P1, M1, "", DH_ACT_MANAGE, P1, M1, NULL, false, true },
	/* model + channel scope */
	{ DH_ACT_UPDATE, P1, M1, C1, DH_ACT_UPDATE, P1, M1, C1, true, true },
	{ DH_ACT_UPDATE, P1, M1, C1, DH_ACT_UPDATE, P1, M1, C2, false, true },
	{ DH_ACT_UPDATE, P1, M1, C1, DH_ACT_UPDATE, P1, M1, NULL, false, true },
	/* update does not imply draft; draft implies update */
	{ DH_ACT_UPDATE, "", "", "", DH_ACT_DRAFT, P1, M1, C1, false, true },
	{ DH_ACT_DRAFT, "", "", "", DH_ACT_UPDATE, P1, M1, C1, true, true },
	/* upload does not imply update */
	{ DH_ACT_UPLOAD, "", "", "", DH_ACT_UPDATE, P1, M1, C1, false, true },
	/* any valid token passes DH_ACT_AUTH */
	{ DH_ACT_UPDATE, P1, M1, C1, DH_ACT_AUTH, NULL, NULL, NULL, false, false },
};

START_TEST(test_cases)
{
	struct dh_grant g = { .action = cases[_i].grant };
	struct dh_principal p = { .ngrants = 1, .grants = &g };
	struct dh_scope s = { cases[_i].sp, cases[_i].sm, cases[_i].sc };

	strcpy(g.product, cases[_i].gp);
	strcpy(g.model, cases[_i].gm);
	strcpy(g.channel, cases[_i].gc);
	ck_assert_msg(dh_rights_allow(&p, cases[_i].want, &s) == cases[_i].allow, "allow case %d",
		      _i);
	ck_assert_msg(dh_rights_sees(&p, &s) == cases[_i].sees, "sees case %d", _i);
}
END_TEST

START_TEST(test_any_and_names)
{
	struct dh_grant g = { .action = DH_ACT_UPDATE };
	struct dh_principal p = { .ngrants = 1, .grants = &g };
	struct dh_principal none = { 0 };

	strcpy(g.model, M1);
	ck_assert(dh_rights_any(&p, DH_ACT_AUTH));
	ck_assert(dh_rights_any(&p, DH_ACT_UPDATE));
	ck_assert(!dh_rights_any(&p, DH_ACT_MANAGE));
	ck_assert(!dh_rights_any(&none, DH_ACT_AUTH));
	ck_assert(dh_rights_any(&none, DH_ACT_NONE));
	ck_assert_int_eq(dh_action_parse("draft"), DH_ACT_DRAFT);
	ck_assert_int_eq(dh_action_parse("auth"), DH_ACT_NONE);
	ck_assert_int_eq(dh_action_parse("ADMIN"), DH_ACT_NONE);
	ck_assert_str_eq(dh_action_name(DH_ACT_MANAGE), "manage");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rights");
	TCase *tc = tcase_create("eval");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_cases, 0, sizeof(cases) / sizeof(cases[0]));
	tcase_add_test(tc, test_any_and_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
