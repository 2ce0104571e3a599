/*
 * Fuzz target for the SMP response path: frame and CBOR decoding (server/smp/smp.c), every
 * response decoder and error extraction, and the mesh shell output parser
 * (server/smp/shell.c) on both the raw input and a decoded "o" string.
 */
#include "smp/shell.h"
#include "smp/smp.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_smp_shell_doc *doc = malloc(sizeof(*doc));
	struct dh_smp_shell_rsp *sh = malloc(sizeof(*sh));
	struct dh_smp_image_list *l = malloc(sizeof(*l));
	struct dh_smp_hdr h;
	struct dh_smp_err e;
	struct dh_smp_params p;
	struct dh_smp_upload_rsp u;
	cbor_item_t *root = NULL;
	char text[DH_SMP_TEXT_MAX];

	if (!doc || !sh || !l)
		goto out;
	dh_smp_shell_parse((const char *)data, size, doc);
	if (dh_smp_frame_decode(data, size, &h, &root) != DH_SMP_OK)
		goto out;
	(void)dh_smp_body_error(root, false, &e);
	if (dh_smp_body_error(root, true, &e))
		dh_smp_err_name(&e, text, sizeof(text));
	(void)dh_smp_dec_echo(root, text, sizeof(text));
	(void)dh_smp_dec_params(root, &p);
	(void)dh_smp_dec_image_state(root, l);
	(void)dh_smp_dec_upload(root, &u);
	if (dh_smp_dec_shell(root, sh) == DH_SMP_OK)
		dh_smp_shell_parse(sh->o, sh->o_len, doc);
out:
	if (root)
		cbor_decref(&root);
	free(l);
	free(sh);
	free(doc);
	return 0;
}
