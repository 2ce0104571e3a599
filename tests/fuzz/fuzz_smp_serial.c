/*
 * Fuzz target for the serial console deframer (server/smp/serial.c): every byte sequence is
 * fed to the reassembler, each completed frame is decoded, and the input itself, taken as a
 * frame, must survive an encode/deframe round trip unchanged.
 */
#include "smp/smp.h"
#include "smp/transport.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dh_smp_deframer *d = malloc(sizeof(*d));
	uint8_t *enc = malloc(DH_SMP_SERIAL_ENC_MAX(DH_SMP_FRAME_MAX));
	size_t i, fl, en = 0;
	int frames = 0;

	if (!d || !enc)
		goto out;
	dh_smp_deframer_init(d);
	for (i = 0; i < size; i++) {
		struct dh_smp_hdr h;
		cbor_item_t *root = NULL;

		if (!dh_smp_deframer_push(d, data[i], &fl))
			continue;
		if (fl > DH_SMP_FRAME_MAX)
			abort();
		if (dh_smp_frame_decode(d->pkt + 2, fl, &h, &root) == DH_SMP_OK)
			cbor_decref(&root);
	}
	if (size <= DH_SMP_FRAME_MAX &&
	    dh_smp_serial_encode(data, size, enc, DH_SMP_SERIAL_ENC_MAX(DH_SMP_FRAME_MAX), &en) ==
		    DH_SMP_OK) {
		dh_smp_deframer_init(d);
		for (i = 0; i < en; i++) {
			if (dh_smp_deframer_push(d, enc[i], &fl)) {
				if (fl != size || memcmp(d->pkt + 2, data, size) != 0)
					abort();
				frames++;
			}
		}
		if (frames != 1)
			abort();
	}
out:
	free(enc);
	free(d);
	return 0;
}
