/* xensimd's internal header, sectioned by the file that defines each
 * symbol. xensimd is one single-threaded epoll loop serving the xenstore
 * wire protocol and the simulator control protocol. */
#ifndef XENSIMD_H
#define XENSIMD_H

#include <stdbool.h>
#include <stdint.h>

/* loop.c: the epoll loop every socket of xensimd hangs off. */
struct loop;
typedef void loop_fn(void *opaque, uint32_t events);

int loop_new(struct loop **ret);
void loop_free(struct loop *loop);
int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn *fn, void *opaque);
int loop_mod(struct loop *loop, int fd, uint32_t events, loop_fn *fn, void *opaque);
void loop_del(struct loop *loop, int fd);
/* Runs until loop_quit(); returns 0 or -errno. */
int loop_run(struct loop *loop);
void loop_quit(struct loop *loop);

/* xs-server.c: the xenstore daemon. DIR/socket is dom0's (privileged). */
int xs_server_start(struct loop *loop, const char *dir);
void xs_server_stop(void);
/* Opens DIR/domain/<domid>/socket, connections on it act as domid;
 * fires @introduceDomain. */
int xs_server_domain_introduce(uint32_t domid);
/* Drops that domain's connections, watches and transactions, removes its
 * socket, fires @releaseDomain. Its nodes stay (the toolstack removes them). */
int xs_server_domain_release(uint32_t domid);

/* dom-server.c: simulated domains, grant tables, event channels. DIR/sim
 * is dom0's control socket, DIR/domain/<domid>/sim a domain's own. */
int dom_server_start(struct loop *loop, const char *dir);
void dom_server_stop(void);

/* dom-evtchn.c: one domain's event channels, Xen's state machine (closed,
 * unbound accepting one remote domain, interdomain). A channel owns two
 * eventfds, one per direction, handed to the processes that bind its ends,
 * so notifications never pass through xensimd. */
#define DOM_EVTCHN_MAX_GUEST	1023u		/* xl's max_event_channels */
#define DOM_EVTCHN_MAX_DOM0	(1u << 17)	/* Xen's FIFO ABI limit */

struct dom_evtchn_table;

int dom_evtchn_table_new(uint32_t domid, uint32_t max_ports, struct dom_evtchn_table **ret);
/* Closes every port: each peer returns to unbound, accepting this domain. */
void dom_evtchn_table_free(struct dom_evtchn_table *t);
/* owner is the connection that binds the port; fds[0] is the eventfd to
 * poll, fds[1] the one to write to notify. They stay xensimd's: the
 * caller sends copies and does not close them. */
int dom_evtchn_alloc_unbound(struct dom_evtchn_table *t, const void *owner,
			     uint32_t remote_domid, uint32_t *ret_port, int ret_fds[2]);
int dom_evtchn_bind_interdomain(struct dom_evtchn_table *t, const void *owner,
				struct dom_evtchn_table *remote, uint32_t remote_port,
				uint32_t *ret_port, int ret_fds[2]);
/* -EINVAL for a closed or invalid port, -ENOTCONN if owner did not bind it. */
int dom_evtchn_close(struct dom_evtchn_table *t, uint32_t port, const void *owner);
void dom_evtchn_close_owned(struct dom_evtchn_table *t, const void *owner);
int dom_evtchn_status(const struct dom_evtchn_table *t, uint32_t port, uint32_t *ret_state,
		      uint32_t *ret_remote_domid, uint32_t *ret_remote_port);

#endif
