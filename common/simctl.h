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
/* Fills domids[0..max) with live domains (dom0 included), ascending;
 * *ret_count is how many it filled (max when there may be more). */
int simctl_domain_list(struct simctl *sc, uint32_t *domids, size_t max, size_t *ret_count);

/* The domain this connection acts as. */
uint32_t simctl_domid(const struct simctl *sc);

/* A domain's memory (common/simshm.h). A domain gets only its own, without
 * the active table (fds.active = -1); dom0 gets any domain's, with it.
 * The caller owns the fds. -ESRCH for a domain that does not exist. */
struct simshm_fds;
int simctl_domain_mem(struct simctl *sc, uint32_t domid, struct simshm_fds *ret_fds,
		      uint32_t *ret_ram_pages, uint32_t *ret_nr_grants);

/* dom0 only, once per connection: a pin log (struct simshm_pinrec[]) in
 * which xensimd finds the pins to drop when this connection closes. */
int simctl_pinlog_open(struct simctl *sc, int *ret_fd);

/* Event channels with Xen's semantics, bound through this connection:
 * closing it closes them. A bound port comes with two eventfds the caller
 * owns: fd_in becomes readable when the other end notifies, writing 1 to
 * fd_out notifies the other end. remote_domid may be DOMID_SELF. */
int simctl_evtchn_alloc_unbound(struct simctl *sc, uint32_t remote_domid,
				uint32_t *ret_port, int *ret_fd_in, int *ret_fd_out);
int simctl_evtchn_bind_interdomain(struct simctl *sc, uint32_t remote_domid,
				   uint32_t remote_port, uint32_t *ret_port,
				   int *ret_fd_in, int *ret_fd_out);
int simctl_evtchn_unbind(struct simctl *sc, uint32_t port);

struct simctl_evtchn_status {
	uint32_t state;		/* EVTCHNSTAT_closed, _unbound, _interdomain */
	uint32_t remote_domid;	/* unbound: the domain allowed to bind */
	uint32_t remote_port;	/* interdomain only */
};
/* A domain may ask about its own ports, dom0 about any domain's. */
int simctl_evtchn_status(struct simctl *sc, uint32_t domid, uint32_t port,
			 struct simctl_evtchn_status *ret);

/* The wire format, shared by this client and xensimd (dom-server.c).
 * One request, one response, in order; a malformed message drops the
 * connection. */
enum simctl_op {
	SIMCTL_OP_DOMAIN_CREATE = 1,	/* arg: ram_pages -> domid */
	SIMCTL_OP_DOMAIN_DESTROY,	/* domid */
	SIMCTL_OP_DOMAIN_LIST,		/* arg: first domid -> count, domids */
	SIMCTL_OP_DOMAIN_MEM,		/* domid -> ram_pages, nr_grants, fds */
	SIMCTL_OP_EVTCHN_ALLOC_UNBOUND,	/* domid = remote -> port, 2 fds */
	SIMCTL_OP_EVTCHN_BIND_INTERDOMAIN, /* domid, port = remote -> port, 2 fds */
	SIMCTL_OP_EVTCHN_UNBIND,	/* port */
	SIMCTL_OP_EVTCHN_STATUS,	/* domid, port -> state, remote */
	SIMCTL_OP_PINLOG_OPEN,		/* -> 1 fd */
};

#define SIMCTL_LIST_MAX 64
#define SIMCTL_MAX_FDS 4

struct simctl_req {
	uint32_t op;
	uint32_t domid;
	uint32_t port;
	uint32_t arg;
};

struct simctl_rsp {
	int32_t err;		/* 0 or -errno */
	uint32_t op;		/* echoes the request */
	uint32_t domid;
	uint32_t port;
	uint32_t val[3];	/* op-specific results */
	uint32_t count;		/* DOMAIN_LIST: total live domains */
	uint32_t nr_domids;	/* DOMAIN_LIST: entries in domids[] */
	uint32_t domids[SIMCTL_LIST_MAX];
};

#endif
