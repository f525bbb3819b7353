/* Is the kernel's xen-blkback beside us? The xen-backend bus has a device
 * for every vbd in this domain's backend directory, whoever serves it;
 * the device has a "driver" link only once a kernel driver (xen-blkback,
 * the only one for vbds) took it. A module has /sys/module/NAME/initstate,
 * a built-in one only its parameters there. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kernel-blkback.h"
#include "log.h"

static bool path_exists(const char *sysfs, const char *rel, const char *name, const char *leaf)
{
	char path[512];
	int n = snprintf(path, sizeof(path), "%s/%s%s%s%s%s", sysfs, rel,
			 name ? "/" : "", name ? name : "", leaf ? "/" : "", leaf ? leaf : "");

	return n > 0 && (size_t)n < sizeof(path) && access(path, F_OK) == 0;
}

int kernel_blkback_probe(const char *sysfs, struct kernel_blkback *kb)
{
	char path[512];
	struct dirent *de;
	DIR *dir;

	memset(kb, 0, sizeof(*kb));
	kb->present = path_exists(sysfs, "module/xen_blkback", NULL, NULL);
	kb->builtin = kb->present && !path_exists(sysfs, "module/xen_blkback", NULL, "initstate");

	snprintf(path, sizeof(path), "%s/bus/xen-backend/devices", sysfs);
	dir = opendir(path);
	if (!dir)
		/* No xen-backend bus: not a Xen backend domain, nothing bound. */
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, "vbd-", 4) != 0 ||
		    !path_exists(sysfs, "bus/xen-backend/devices", de->d_name, "driver"))
			continue;
		if (kb->bound++ == 0)
			snprintf(kb->first, sizeof(kb->first), "%s", de->d_name);
	}
	closedir(dir);
	return 0;
}

int kernel_blkback_check(const char *sysfs)
{
	struct kernel_blkback kb;
	int r = kernel_blkback_probe(sysfs, &kb);

	if (r < 0) {
		log_errno(LOG_LEVEL_WARN, r, "cannot tell whether xen-blkback serves vbds here");
		return 0;
	}
	if (kb.bound) {
		log_err("xen-blkback drives %u vbd%s of this domain (%s%s): not starting, both "
			"backends would serve them; detach those disks and unload xen-blkback",
			kb.bound, kb.bound == 1 ? "" : "s", kb.first, kb.bound > 1 ? ", ..." : "");
		return -EBUSY;
	}
	if (kb.builtin)
		log_warn("xen-blkback is built into this kernel: it will take every vbd created "
			 "from now on, ours too (boot a kernel with it as a module)");
	else if (kb.present)
		log_warn("xen-blkback is loaded: it will take every vbd created from now on, "
			 "ours too (modprobe -r xen-blkback; modprobe.d/blkbackd.conf keeps it out)");
	return 0;
}
