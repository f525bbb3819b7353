/* xensim's internal header, sectioned by the file that defines each
 * symbol. xensim is the simulator's toolstack: it does to xenstore and to
 * xensimd what xl/libxl do to xenstored and Xen (PROTOCOL.md §1). */
#ifndef XENSIM_H
#define XENSIM_H

#include <stdbool.h>
#include <stdint.h>
#include <xenstore.h>

#include "xenbus.h"

struct simctl;

/* libxl's timeouts (libxl_internal.h), in seconds. */
#define XENSIM_INIT_TIMEOUT	10	/* backend InitWait after attach */
#define XENSIM_DESTROY_TIMEOUT	10	/* backend Closed after detach */
#define XENSIM_HOTPLUG_TIMEOUT	40	/* hotplug script run time */

#define XENSIM_SCRIPT_DIR	"/etc/xen/scripts"
#define XENSIM_DEFAULT_SCRIPT	"block"

/* Exit statuses, documented in xensim(1). */
enum xensim_exit {
	XENSIM_EXIT_OK = 0,
	XENSIM_EXIT_FAIL = 1,		/* xenstore, simulator or script failure */
	XENSIM_EXIT_USAGE = 2,		/* bad command line or disk spec */
	XENSIM_EXIT_NOENT = 3,		/* no such domain or device */
	XENSIM_EXIT_EXISTS = 4,		/* name or vdev already in use */
	XENSIM_EXIT_TIMEOUT = 5,	/* backend did not answer in time */
};

/* The xenstore keys (XK_*) and state names are common/xenbus.h's. */

/* xensim.c: options and the connections every command shares. */
struct xensim {
	const char *dir;		/* simulator directory */
	const char *script_dir;		/* where relative script names resolve */
	struct xs_handle *xs;		/* opened on demand */
	struct simctl *sc;		/* opened on demand */
};

int xensim_xs(struct xensim *x, struct xs_handle **ret);
int xensim_simctl(struct xensim *x, struct simctl **ret);
/* "xensim: <fmt>\n" on stderr. */
void xensim_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a decimal number of seconds 0 < s <= 3600. */
int xensim_parse_seconds(const char *s, int *ret);

/* xensim-xs.c: xenstore helpers. Every int function returns >= 0 or
 * -errno; t may be XBT_NULL. */
/* Reads a node; returns NULL with errno set (ENOENT if absent). */
char *xsim_read(struct xs_handle *xs, xs_transaction_t t, const char *path);
/* Reads a node as a decimal integer; -ENOENT if absent, -EINVAL if junk. */
int xsim_read_int(struct xs_handle *xs, xs_transaction_t t, const char *path,
		  long *ret);
int xsim_write(struct xs_handle *xs, xs_transaction_t t, const char *path,
	       const char *value);
int xsim_set_perms(struct xs_handle *xs, xs_transaction_t t, const char *path,
		   struct xs_permissions *perms, unsigned int n);
/* Writes an empty node and sets its permissions (libxl's mknod). */
int xsim_mknod(struct xs_handle *xs, xs_transaction_t t, const char *path,
	       struct xs_permissions *perms, unsigned int n);
/* Removes path; a missing path is fine. */
int xsim_rm(struct xs_handle *xs, xs_transaction_t t, const char *path);
/* Removes path, then each parent that is left empty (no value, no
 * children), like libxl__xs_path_cleanup. */
int xsim_path_cleanup(struct xs_handle *xs, xs_transaction_t t, const char *path);
/* Lists children; *ret_names is one malloc'd block (free it), NULL + count
 * 0 when the node is absent. */
int xsim_directory(struct xs_handle *xs, xs_transaction_t t, const char *path,
		   char ***ret_names, unsigned int *ret_count);

/* Runs fn inside a transaction, retrying on EAGAIN like libxl. fn returns
 * >= 0 to commit, < 0 to abort (that value is returned). */
typedef int xsim_txn_fn(struct xs_handle *xs, xs_transaction_t t, void *opaque);
int xsim_transact(struct xs_handle *xs, xsim_txn_fn *fn, void *opaque);

/* Waits with a watch until the integer node at path equals want. Returns 0,
 * -ETIMEDOUT (with *ret_last the last value seen, -1 if none) or -ENOENT
 * when the node vanished. deadline_ms is CLOCK_MONOTONIC milliseconds. */
int xsim_wait_state(struct xs_handle *xs, const char *path, long want,
		    int64_t deadline_ms, long *ret_last);
int64_t xsim_now_ms(void);

/* xensim-disk.c: the xl disk spec and libxl's vdev numbering. */
struct xensim_disk {
	char *target;		/* params */
	char *vdev;		/* dev */
	char *script;		/* as given; NULL = "block" */
	bool readwrite;
	bool cdrom;
	bool removable;
	bool direct_io_safe;
	int discard;		/* -1 default (= readwrite), 0, 1 */
	int trusted;		/* -1 default, 0, 1 */
};

/* Parses a DISKSPEC into d (free with xensim_disk_done). On error returns
 * -EINVAL and writes a message (<= errlen bytes) into err. */
int xensim_disk_parse(const char *spec, struct xensim_disk *d, char *err,
		      size_t errlen);
void xensim_disk_done(struct xensim_disk *d);
/* libxl__device_disk_dev_number: xvdX/hdX/sdX/dNpM/number -> devid. */
int xensim_vdev_to_devid(const char *vdev, uint32_t *ret);

/* xensim-domain.c: create, destroy, list; name/id resolution. */
int xensim_domain_resolve(struct xensim *x, const char *arg, uint32_t *ret_domid);
int xensim_cmd_create(struct xensim *x, int argc, char **argv);
int xensim_cmd_destroy(struct xensim *x, int argc, char **argv);
int xensim_cmd_list(struct xensim *x, int argc, char **argv);

/* xensim-vbd.c: block devices. */
int xensim_cmd_block_attach(struct xensim *x, int argc, char **argv);
int xensim_cmd_block_detach(struct xensim *x, int argc, char **argv);
int xensim_cmd_block_list(struct xensim *x, int argc, char **argv);
/* Force-removes every device of domid (domain destroy), waiting at most
 * timeout_s for backends to close. */
int xensim_vbd_remove_all(struct xensim *x, uint32_t domid, int timeout_s);

#endif
