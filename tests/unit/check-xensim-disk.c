/* Unit tests for xensim's disk spec parser and vdev numbering: the vdev
 * table is written from libxl's encoding rules (202<<8 | disk<<4 | part,
 * the 1<<28 extended form, hd and sd majors), the spec table from the
 * examples in xl-disk-configuration(5), plus hostile and malformed input
 * that must be refused with a message. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "xensim.h"
#include "util.h"

#define EXT(disk, part) ((1u << 28) | ((disk) << 8) | (part))

struct vdev_case {
	const char *vdev;
	int ok;
	uint32_t devid;
};

static const struct vdev_case vdev_cases[] = {
	{ "xvda", 1, 51712 },
	{ "xvdb", 1, 51728 },
	{ "xvda1", 1, 51713 },
	{ "xvda15", 1, 51727 },
	{ "xvda16", 1, EXT(0, 16) },
	{ "xvda255", 1, EXT(0, 255) },
	{ "xvdp", 1, (202u << 8) | (15 << 4) },
	{ "xvdq", 1, EXT(16, 0) },
	{ "xvdz", 1, EXT(25, 0) },
	{ "xvdaa", 1, EXT(26, 0) },
	{ "xvdab3", 1, EXT(27, 3) },
	{ "d0p0", 1, 51712 },
	{ "d1p2", 1, 51730 },
	{ "d16p0", 1, EXT(16, 0) },
	{ "d1048575p255", 1, EXT(1048575u, 255) },
	{ "hda", 1, 3u << 8 },
	{ "hdb", 1, (3u << 8) | 64 },
	{ "hdc", 1, 22u << 8 },
	{ "hdd1", 1, (22u << 8) | 64 | 1 },
	{ "hda63", 1, (3u << 8) | 63 },
	{ "sda", 1, 8u << 8 },
	{ "sdb2", 1, (8u << 8) | 16 | 2 },
	{ "sdp15", 1, (8u << 8) | 240 | 15 },
	{ "51712", 1, 51712 },
	{ "0", 1, 0 },
	{ "0x10", 1, 16 },
	{ "2147483647", 1, 2147483647u },
	/* refused */
	{ "", 0, 0 },
	{ "xvd", 0, 0 },
	{ "xvda0", 0, 0 },
	{ "xvda01", 0, 0 },
	{ "xvda256", 0, 0 },
	{ "xvdA", 0, 0 },
	{ "xvda1x", 0, 0 },
	{ "xvda-1", 0, 0 },
	{ "xvdaaaaaa", 0, 0 },	/* index past 2^20 */
	{ "hde", 0, 0 },
	{ "hda64", 0, 0 },
	{ "sdq", 0, 0 },
	{ "sda16", 0, 0 },
	{ "d1048576p0", 0, 0 },
	{ "d0p256", 0, 0 },
	{ "d1p", 0, 0 },
	{ "dp1", 0, 0 },
	{ "d-1p0", 0, 0 },
	{ "2147483648", 0, 0 },
	{ "99999999999999999999", 0, 0 },
	{ "-1", 0, 0 },
	{ "12abc", 0, 0 },
	{ "vda", 0, 0 },
	{ "xvda/", 0, 0 },
};

START_TEST(test_vdev)
{
	const struct vdev_case *c = &vdev_cases[_i];
	uint32_t devid = 0xdeadbeef;
	int r = xensim_vdev_to_devid(c->vdev, &devid);

	if (c->ok) {
		ck_assert_msg(r == 0, "'%s' refused", c->vdev);
		ck_assert_msg(devid == c->devid, "'%s' -> %u, want %u", c->vdev,
			      devid, c->devid);
	} else {
		ck_assert_msg(r == -EINVAL, "'%s' accepted as %u", c->vdev, devid);
		ck_assert_uint_eq(devid, 0xdeadbeef);	/* untouched on error */
	}
}
END_TEST

struct spec_case {
	const char *spec;
	int ok;
	/* expected on success */
	const char *target, *vdev, *script;
	int rw, cdrom, removable, dio, discard, trusted;
	/* expected on failure: a word the message must contain */
	const char *err_has;
};

static const struct spec_case spec_cases[] = {
	{ "vdev=xvda, access=rw, script=blkbackd, devtype=disk, target=/img", 1,
	  "/img", "xvda", "blkbackd", 1, 0, 0, 0, 1, -1, NULL },
	{ "vdev=xvdb,access=r,target=/img", 1,
	  "/img", "xvdb", NULL, 0, 0, 0, 0, 0, -1, NULL },
	{ "/dev/vg/guest-volume,,hda", 1,
	  "/dev/vg/guest-volume", "hda", NULL, 1, 0, 0, 0, 1, -1, NULL },
	{ "/dev/vg/guest-volume,raw,hda,rw", 1,
	  "/dev/vg/guest-volume", "hda", NULL, 1, 0, 0, 0, 1, -1, NULL },
	{ "format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume", 1,
	  "/dev/vg/guest-volume", "hda", NULL, 1, 0, 0, 0, 1, -1, NULL },
	{ "raw:/dev/vg/guest-volume,hda,w", 1,
	  "/dev/vg/guest-volume", "hda", NULL, 1, 0, 0, 0, 1, -1, NULL },
	{ "phy:/dev/vg/x,xvda,w", 1,
	  "/dev/vg/x", "xvda", NULL, 1, 0, 0, 0, 1, -1, NULL },
	{ "/root/image.iso,,hdc,cdrom", 1,
	  "/root/image.iso", "hdc", NULL, 0, 1, 1, 0, 0, -1, NULL },
	{ "/root/image.iso,,hdc,,cdrom", 1,
	  "/root/image.iso", "hdc", NULL, 0, 1, 1, 0, 0, -1, NULL },
	{ "/root/image.iso,raw,hdc,devtype=cdrom", 1,
	  "/root/image.iso", "hdc", NULL, 0, 1, 1, 0, 0, -1, NULL },
	{ "format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso", 1,
	  "/root/image.iso", "hdc", NULL, 0, 1, 1, 0, 0, -1, NULL },
	{ "raw:/root/image.iso,hdc:cdrom,ro", 1,
	  "/root/image.iso", "hdc", NULL, 0, 1, 1, 0, 0, -1, NULL },
	/* target= is taken as it is: a format prefix there is the target's */
	{ "vdev=xvda, script=blkbackd, target=qcow2:/img", 1,
	  "qcow2:/img", "xvda", "blkbackd", 1, 0, 0, 0, 1, -1, NULL },
	/* target= swallows the rest, commas and all */
	{ "vdev=xvda, script=blkbackd, target=nbd://h:10809/a,b=c, d", 1,
	  "nbd://h:10809/a,b=c, d", "xvda", "blkbackd", 1, 0, 0, 0, 1, -1, NULL },
	{ "vdev=xvda,direct-io-safe,no-discard,untrusted,target=/x", 1,
	  "/x", "xvda", NULL, 1, 0, 0, 1, 0, 0, NULL },
	{ "vdev=xvda,access=ro,discard,trusted,target=/x", 1,
	  "/x", "xvda", NULL, 0, 0, 0, 0, 1, 1, NULL },
	{ "vdev=xvda,backendtype=phy,backend=0,specification=xen,target=/x", 1,
	  "/x", "xvda", NULL, 1, 0, 0, 0, 1, -1, NULL },
	{ "vdev=xvdc, devtype=cdrom", 1,	/* empty cdrom */
	  "", "xvdc", NULL, 0, 1, 1, 0, 0, -1, NULL },
	/* refused */
	{ "", 0, .err_has = "vdev" },
	/* xl would make the target "/img, access=rw, ..." */
	{ "vdev=xvda, target=/img, access=rw, script=blkbackd", 0,
	  .err_has = "target= must come last" },
	{ "target=/x", 0, .err_has = "no vdev" },
	{ "vdev=xvda", 0, .err_has = "no target" },
	{ "vdev=xvda,target=", 0, .err_has = "no target" },
	{ "vdev=bogus,target=/x", 0, .err_has = "invalid vdev" },
	{ "vdev=,target=/x", 0, .err_has = "empty vdev" },
	{ "vdev=xvda,vdev=xvdb,target=/x", 0, .err_has = "more than once" },
	{ "/x,,xvda,rw,vdev=xvdb", 0, .err_has = "more than once" },
	{ "vdev=xvda,access=rx,target=/x", 0, .err_has = "access" },
	{ "vdev=xvda,format=qcow2,target=/x", 0, .err_has = "format" },
	{ "qcow2:/x,xvda", 0, .err_has = "prefix" },
	{ "vdev=xvda,backendtype=qdisk,target=/x", 0, .err_has = "backendtype" },
	{ "vdev=xvda,backend=3,target=/x", 0, .err_has = "driver domains" },
	{ "vdev=xvda,specification=virtio,target=/x", 0, .err_has = "specification" },
	{ "vdev=xvda,devtype=floppy,target=/x", 0, .err_has = "devtype" },
	{ "vdev=xvda,script=,target=/x", 0, .err_has = "script" },
	{ "vdev=xvda,frobnicate=1,target=/x", 0, .err_has = "unknown" },
	{ "vdev=xvda,discard=1,target=/x", 0, .err_has = "flag" },
	{ "vdev=xvda,discard,no-discard,target=/x", 0, .err_has = "more than once" },
	{ "vdev=xvda,colo-host=a,target=/x", 0, .err_has = "COLO" },
	{ "vdev=xvda,colo,target=/x", 0, .err_has = "COLO" },
	{ "vdev=xvda,colour=blue,target=/x", 0, .err_has = "unknown" },
	{ "/a,raw,xvda,rw,extra", 0, .err_has = "unexpected" },
	{ "/a,,xvda:floppy", 0, .err_has = "suffix" },
	{ "vdev=xvda,devtype=cdrom,cdrom,target=/x", 0, .err_has = "more than once" },
};

START_TEST(test_spec)
{
	const struct spec_case *c = &spec_cases[_i];
	struct xensim_disk d;
	char err[256];
	int r;

	memset(err, 'X', sizeof(err));
	r = xensim_disk_parse(c->spec, &d, err, sizeof(err));
	if (!c->ok) {
		ck_assert_msg(r == -EINVAL, "'%s' accepted", c->spec);
		ck_assert_msg(strstr(err, c->err_has) != NULL,
			      "'%s': message '%s' lacks '%s'", c->spec, err,
			      c->err_has);
		ck_assert_ptr_null(d.target);
		ck_assert_ptr_null(d.vdev);
		ck_assert_ptr_null(d.script);
		return;
	}
	ck_assert_msg(r == 0, "'%s' refused: %s", c->spec, err);
	ck_assert_str_eq(d.target, c->target);
	ck_assert_str_eq(d.vdev, c->vdev);
	if (c->script)
		ck_assert_str_eq(d.script, c->script);
	else
		ck_assert_ptr_null(d.script);
	ck_assert_int_eq(d.readwrite, c->rw);
	ck_assert_int_eq(d.cdrom, c->cdrom);
	ck_assert_int_eq(d.removable, c->removable);
	ck_assert_int_eq(d.direct_io_safe, c->dio);
	ck_assert_int_eq(d.discard, c->discard);
	ck_assert_int_eq(d.trusted, c->trusted);
	xensim_disk_done(&d);
	xensim_disk_done(&d);	/* idempotent */
}
END_TEST

/* A long spec must not overflow anything and the message must fit. */
START_TEST(test_spec_long)
{
	struct xensim_disk d;
	char err[32];
	size_t n = 100000;
	char *spec = malloc(n + 64);
	int r;

	ck_assert_ptr_nonnull(spec);
	strcpy(spec, "vdev=xvda,target=");
	memset(spec + strlen(spec), 'a', n);
	spec[17 + n] = '\0';
	r = xensim_disk_parse(spec, &d, err, sizeof(err));
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(strlen(d.target), n);
	xensim_disk_done(&d);

	memset(spec, ',', n);
	spec[n] = '\0';
	r = xensim_disk_parse(spec, &d, err, sizeof(err));
	ck_assert_int_eq(r, -EINVAL);
	ck_assert_uint_lt(strlen(err), sizeof(err));
	free(spec);
}
END_TEST

static Suite *xensim_disk_suite(void)
{
	Suite *s = suite_create("xensim-disk");
	TCase *tc = tcase_create("vdev");

	tcase_add_loop_test(tc, test_vdev, 0, ARRAY_SIZE(vdev_cases));
	suite_add_tcase(s, tc);
	tc = tcase_create("spec");
	tcase_add_loop_test(tc, test_spec, 0, ARRAY_SIZE(spec_cases));
	tcase_add_test(tc, test_spec_long);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(xensim_disk_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
