/* The xenbus vocabulary every program shares: the xenstore key names of a
 * vbd (PROTOCOL.md §1, xen/io/blkif.h), the xenbus state names, a strict
 * number parser, and libxenstore's calls turned into -errno returns on a
 * bare handle. The daemon, blkback-ctl and the simulator all use these
 * spellings; a typo here is shared by both ends and so passes make check:
 * only the real xenstore tools and make check-xen catch it. */
#ifndef BLKBACK_XENBUS_H
#define BLKBACK_XENBUS_H

#include <stdarg.h>
#include <stdbool.h>

#include <xenstore.h>

/* Backend directory keys, written by the toolstack. */
#define XK_STATE		"state"
#define XK_ONLINE		"online"
#define XK_SCRIPT		"script"
#define XK_PARAMS		"params"
#define XK_MODE			"mode"
#define XK_TYPE			"type"
#define XK_DEVICE_TYPE		"device-type"
#define XK_REMOVABLE		"removable"
#define XK_BOOTABLE		"bootable"
#define XK_SPECIFICATION	"specification"
#define XK_TRUSTED		"trusted"
#define XK_DISCARD_ENABLE	"discard-enable"
#define XK_DIRECT_IO_SAFE	"direct-io-safe"
#define XK_FRONTEND		"frontend"
#define XK_FRONTEND_ID		"frontend-id"
#define XK_DEV			"dev"		/* vdev name, for people */
#define XK_DOMID		"domid"		/* under /local/domain/<id> */
#define XK_NAME			"name"		/* under /local/domain/<id> */
/* ... by the hotplug script */
#define XK_HOTPLUG_STATUS	"hotplug-status"
#define XK_HOTPLUG_ERROR	"hotplug-error"
#define HOTPLUG_CONNECTED	"connected"
/* ... by the backend */
#define XK_ERROR		"error"
#define XK_RECOVERY_POLICY	"recovery-policy"	/* ours: reissue | fail */
#define XK_SERVED_TARGET	"blkbackd-served-target"	/* ours: what the first open found */
#define XK_MAX_RING_PAGE_ORDER	"max-ring-page-order"
#define XK_MAX_RING_PAGES	"max-ring-pages"	/* blkif.h's legacy spelling; BSDs read it */
#define XK_MAX_INDIRECT_SEGS	"feature-max-indirect-segments"
#define XK_MQ_MAX_QUEUES	"multi-queue-max-queues"
#define XK_FEATURE_FLUSH	"feature-flush-cache"
#define XK_FEATURE_BARRIER	"feature-barrier"
#define XK_FEATURE_DISCARD	"feature-discard"
#define XK_FEATURE_PERSISTENT	"feature-persistent"	/* both ends */
#define XK_DISCARD_GRANULARITY	"discard-granularity"
#define XK_DISCARD_ALIGNMENT	"discard-alignment"
#define XK_DISCARD_SECURE	"discard-secure"
#define XK_SECTORS		"sectors"
#define XK_INFO			"info"
#define XK_SECTOR_SIZE		"sector-size"
#define XK_PHYS_SECTOR_SIZE	"physical-sector-size"
/* Frontend directory keys. */
#define XK_BACKEND		"backend"
#define XK_BACKEND_ID		"backend-id"
#define XK_VIRTUAL_DEVICE	"virtual-device"
#define XK_RING_REF		"ring-ref"
#define XK_RING_REF_FMT		"ring-ref%u"
#define XK_RING_PAGE_ORDER	"ring-page-order"
#define XK_NUM_RING_PAGES	"num-ring-pages"	/* legacy (BSD frontends) */
#define XK_EVENT_CHANNEL	"event-channel"
#define XK_PROTOCOL		"protocol"
#define XK_MQ_NUM_QUEUES	"multi-queue-num-queues"
#define XK_LARGE_SECTOR_SIZE	"feature-large-sector-size"	/* sectors in sector-size units */
#define XK_QUEUE_DIR_FMT	"queue-%u"	/* per-queue ring-ref*, event-channel */

/* "Connected" and the like (xen/io/xenbus.h); "Invalid" out of range. */
const char *xenbus_state_name(unsigned int state);

/* A decimal number with no sign, space or other text, at most max. */
int xenbus_parse_uint(const char *s, unsigned long long max, unsigned long long *ret_val);

/* dir/key, or dir alone when key is NULL. ret_val: a NUL-terminated
 * string to free(); a value with an embedded NUL is -EINVAL. */
int xenstore_read(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		  const char *key, char **ret_val);
/* -ENOENT when absent, -EINVAL when not a number, -ERANGE above max. */
int xenstore_read_uint(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		       const char *key, unsigned long long max, unsigned long long *ret_val);
int xenstore_write(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		   const char *key, const char *val);
int xenstore_printf(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		    const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
int xenstore_vprintf(struct xs_handle *xs, xs_transaction_t t, const char *dir,
		     const char *key, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));
/* Removing what is not there succeeds. */
int xenstore_rm(struct xs_handle *xs, xs_transaction_t t, const char *dir, const char *key);

#endif
