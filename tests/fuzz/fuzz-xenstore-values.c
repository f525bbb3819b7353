/* Fuzz target: the parsers of the xenstore values blkbackd reads: the
 * strict decimal behind every number (state, online, ring-page-order,
 * ring-ref<N>, event-channel, discard-enable...), the "<domid>/<devid>"
 * watch path, and the frontend "protocol". Each is checked against a
 * simple reference reading of the same text; a disagreement aborts. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xenbus.h>

#include "blkbackd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

/* Reference: all digits, 1..20 of them, value <= max without wrapping. */
static int fuzz_ref_uint(const char *s, unsigned long long max, unsigned long long *ret_val)
{
	unsigned __int128 v = 0;
	size_t i, len = strlen(s);

	if (len == 0 || len > 20)
		return -EINVAL;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
	for (i = 0; i < len; i++)
		v = v * 10 + (unsigned int)(s[i] - '0');
	if (v > max)
		return -ERANGE;
	*ret_val = (unsigned long long)v;
	return 0;
}

static void fuzz_uint(const char *s)
{
	/* The bounds vbd.c and xenbus.c use. */
	static const unsigned long long maxes[] = {
		0, 1, XenbusStateReconfigured, 16, UINT32_MAX, UINT64_MAX,
	};

	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		unsigned long long got = 0xdeadbeef, want = 0xdeadbeef;
		int r = xenbus_parse_uint(s, maxes[i], &got);
		int rr = fuzz_ref_uint(s, maxes[i], &want);

		/* Digits are range-checked as they come, so garbage after an
		 * out-of-range prefix ("99x", max 1) reads as -ERANGE: both are
		 * refusals, and callers treat them alike. */
		if (rr == -EINVAL)
			fuzz_check(r == -EINVAL || r == -ERANGE);
		else
			fuzz_check(r == rr);
		if (r == 0)
			fuzz_check(got == want && got <= maxes[i]);
		else
			fuzz_check(got == 0xdeadbeef);
	}
}

static void fuzz_vbd_path(const char *s)
{
	uint32_t domid = 7, devid = 9;
	int n = xenbus_parse_vbd_path(s, &domid, &devid);
	unsigned long long v;
	char head[32];
	size_t len;

	fuzz_check(n >= 0 && n <= 2);
	if (n == 0) {
		fuzz_check(domid == 7 && devid == 9);
		return;
	}
	/* The first number is the text before the first '/'. */
	len = strcspn(s, "/");
	fuzz_check(len > 0 && len < sizeof(head));
	memcpy(head, s, len);
	head[len] = '\0';
	fuzz_check(fuzz_ref_uint(head, UINT32_MAX, &v) == 0 && v == domid);
	if (n == 1)
		fuzz_check(devid == 9);
}

static void fuzz_protocol(const char *s)
{
	enum blkif_abi abi = (enum blkif_abi)-1;
	int r = blkif_abi_parse(s, &abi);

	fuzz_check(r == 0 || r == -EINVAL);
	if (r < 0)
		return;
	fuzz_check(blkif_abi_name(abi) != NULL && blkif_abi_slot_size(abi) > 0);
	/* A non-empty accepted name is one of the ABIs' own names. */
	if (s && *s) {
		enum blkif_abi again;

		fuzz_check(blkif_abi_parse(blkif_abi_name(abi), &again) == 0);
		fuzz_check(blkif_abi_slot_size(again) == blkif_abi_slot_size(abi));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* xenstore values are at most 4096 bytes and arrive NUL-terminated. */
	char *s;

	if (size > 4096)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_uint(s);
	fuzz_vbd_path(s);
	fuzz_protocol(s);
	fuzz_protocol(NULL);
	free(s);
	return 0;
}
