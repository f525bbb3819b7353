/* The kernel's own block backend, xen-blkback, seen from sysfs: loaded or
 * built in, and serving vbds of this domain. Both backends answer every
 * vbd they see, so blkbackd must not run beside a busy one. */
#ifndef BLKBACKD_KERNEL_BLKBACK_H
#define BLKBACKD_KERNEL_BLKBACK_H

#include <stdbool.h>

struct kernel_blkback {
	bool present;			/* loaded as a module or built in */
	bool builtin;			/* built in: cannot be unloaded */
	unsigned int bound;		/* vbds of this domain it drives */
	char first[256];		/* the first of them, as sysfs names it */
};

/* Reads SYSFS (/sys, or a copy of its layout) into *kb. */
int kernel_blkback_probe(const char *sysfs, struct kernel_blkback *kb);

/* Probes SYSFS and logs what it found: a warning when xen-blkback is there
 * but idle, an error (and -EBUSY: do not start) when it drives vbds. */
int kernel_blkback_check(const char *sysfs);

#endif
