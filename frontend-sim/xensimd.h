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

#endif
