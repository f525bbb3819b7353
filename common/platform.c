/* Chooses a platform provider by name or by what the host offers. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "platform.h"

static const struct platform_ops *const providers[] = {
	&platform_xen_ops,
	&platform_sim_ops,
};

int platform_open(const struct platform_config *cfg, struct platform **ret)
{
	struct platform_config c = *cfg;
	size_t i;

	if (!c.name)
		c.name = access("/dev/xen/gntdev", F_OK) == 0 ? "xen" : "sim";
	for (i = 0; i < sizeof(providers) / sizeof(providers[0]); i++)
		if (strcmp(providers[i]->name, c.name) == 0)
			return providers[i]->open(&c, ret);
	return -ENOENT;
}

void platform_close(struct platform *p)
{
	if (p)
		plat_ops_of(p)->close(p);
}

const char *platform_name(const struct platform *p)
{
	return plat_ops_of(p)->name;
}
