/* Client side of xensimd's simulator control protocol (DIR/sim for dom0,
 * DIR/domain/<id>/sim for a domain). The wire format is private to this
 * tree: fixed-size messages on a SOCK_SEQPACKET socket, fds passed with
 * SCM_RIGHTS. Every int function returns >= 0 or -errno. */
#ifndef BLKBACK_SIMCTL_H
#define BLKBACK_SIMCTL_H

#include <stddef.h>
#include <stdint.h>

struct simctl;

/* The simulator directory: dir if given, else $XENSIM_DIR, else NULL. */
const char *simctl_dir_resolve(const char *dir);

/* Connect as dom0 (domid 0) or as the given domain. */
int simctl_connect(const char *dir, uint32_t domid, struct simctl **ret);
void simctl_close(struct simctl *sc);

/* dom0 only. ram_pages 0 picks the default size. */
int simctl_domain_create(struct simctl *sc, uint32_t ram_pages, uint32_t *ret_domid);
int simctl_domain_destroy(struct simctl *sc, uint32_t domid);
/* Fills domids[0..max) with live domains (dom0 included), ascending. */
int simctl_domain_list(struct simctl *sc, uint32_t *domids, size_t max, size_t *ret_count);

#endif
