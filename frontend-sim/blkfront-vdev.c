/* Guest disk names to xenbus device ids, the way libxl numbers them
 * (Xen's docs/misc/vbd-interface): the frontend dir is device/vbd/<devid>.
 * Pure string arithmetic, so it is unit-tested on its own. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blkfront.h"

/* libxl's disk naming (docs/misc/vbd-interface): xvd<letters>[<part>],
 * hd<a-d>[<part>], sd<letters>[<part>], d<N>[p<M>], or a plain number. */
int bf_vdev_to_devid(const char *vdev, uint32_t *ret_devid)
{
	unsigned long long disk = 0, part = 0;
	const char *p;
	char *end;
	int kind;

	if (isdigit((unsigned char)vdev[0])) {
		errno = 0;
		disk = strtoull(vdev, &end, 10);
		if (*end || errno || disk > UINT32_MAX)
			return -EINVAL;
		*ret_devid = (uint32_t)disk;
		return 0;
	}
	if (vdev[0] == 'd' && isdigit((unsigned char)vdev[1])) {
		errno = 0;
		disk = strtoull(vdev + 1, &end, 10);
		if (*end == 'p' && isdigit((unsigned char)end[1]))
			part = strtoull(end + 1, &end, 10);
		if (*end || errno)
			return -EINVAL;
		kind = 'x';
	} else {
		long long d = -1;

		if (strncmp(vdev, "xvd", 3) == 0)
			kind = 'x', p = vdev + 3;
		else if (strncmp(vdev, "hd", 2) == 0)
			kind = 'h', p = vdev + 2;
		else if (strncmp(vdev, "sd", 2) == 0)
			kind = 's', p = vdev + 2;
		else
			return -EINVAL;
		if (!islower((unsigned char)*p))
			return -EINVAL;
		for (; islower((unsigned char)*p); p++) {
			d = (d + 1) * 26 + (*p - 'a');
			if (d >= (1 << 20))
				return -EINVAL;
		}
		disk = (unsigned long long)d;
		if (*p) {
			if (!isdigit((unsigned char)*p) || *p == '0')
				return -EINVAL;
			errno = 0;
			part = strtoull(p, &end, 10);
			if (*end || errno)
				return -EINVAL;
		}
	}
	switch (kind) {
	case 'h':
		if (disk > 3 || part > 63)
			return -EINVAL;
		*ret_devid = ((disk < 2 ? 3u : 22u) << 8) | ((disk & 1) << 6) | (uint32_t)part;
		return 0;
	case 's':
		if (disk > 15 || part > 15)
			return -EINVAL;
		*ret_devid = (8u << 8) | ((uint32_t)disk << 4) | (uint32_t)part;
		return 0;
	default:
		if (disk < 16 && part < 16)
			*ret_devid = (202u << 8) | ((uint32_t)disk << 4) | (uint32_t)part;
		else if (disk < (1u << 20) && part < 256)
			*ret_devid = (1u << 28) | ((uint32_t)disk << 8) | (uint32_t)part;
		else
			return -EINVAL;
		return 0;
	}
}
