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
 * fires @introduceDomain. -EEXIST if already introduced. */
int xs_server_domain_introduce(uint32_t domid);
/* Drops that domain's connections, watches and transactions, removes its
 * socket, fires @releaseDomain. Its nodes stay (the toolstack removes them).
 * -ENOENT if not introduced. */
int xs_server_domain_release(uint32_t domid);

/* Below: the xenstore server's internals, shared by the xs-*.c files. */

/* Quotas for unprivileged domains, as xenstored 4.17's defaults. */
#define XS_QUOTA_NODES		1000
#define XS_QUOTA_WATCHES	128
#define XS_QUOTA_VALUE		2048
#define XS_QUOTA_TRANSACTIONS	10
#define XS_QUOTA_PERMS		5
/* Sockets one unprivileged domain may hold open (a real guest has one
 * ring; here each costs a buffer and a descriptor). */
#define XS_QUOTA_CONNS		64
/* Pending output per connection before a client that does not read its
 * replies and events is dropped. */
#define XS_CONN_OUT_MAX		(256 * 1024)

struct xs_tree;
struct xs_tx;
struct xs_watch;
struct xs_buf;
struct xs_perms;

/* Who sends a request: the domain of the socket it came in on. */
struct xs_caller {
	uint32_t domid;
	bool privileged;
};

/* One client connection (xs-server.c owns it, xs-wire.c answers it). */
struct xs_conn {
	int fd;
	struct xs_caller caller;
	bool dead;			/* closed; freed at the next reap */
	uint8_t in[16 + 4096];		/* header + XENSTORE_PAYLOAD_MAX */
	size_t in_len;
	struct xs_buf *out_head, *out_tail;
	size_t out_bytes;
	bool want_out;			/* EPOLLOUT requested */
	struct xs_watch *watches;
	struct xs_tx *txs;
	uint32_t next_tx_id;
	struct xs_conn *next;
};

/* Queue a reply or event; a connection over XS_CONN_OUT_MAX is dropped. */
void xs_conn_send(struct xs_conn *conn, uint32_t type, uint32_t req_id,
		  uint32_t tx_id, const void *data, size_t len);
/* Fire watches: path is absolute (or "@..."); perms of the changed node
 * decide whether an unprivileged watcher may see it; exact restricts to
 * watches on path itself (descendants of a removed subtree). */
void xs_server_fire(const char *path, const struct xs_perms *perms, bool exact);
struct xs_tree *xs_server_tree(void);
bool xs_server_domain_is_introduced(uint32_t domid);
/* Watches / open transactions held by all live connections of an
 * unprivileged domain: quotas are per domain, however many sockets it opens. */
unsigned int xs_server_count_watches(uint32_t domid);
unsigned int xs_server_count_txs(uint32_t domid);
/* Permissions of the special watch nodes @introduceDomain/@releaseDomain;
 * NULL if name is not one of them. */
struct xs_perms *xs_server_special_perms(const char *name);
/* Drop all watches and transactions of conn (RESET_WATCHES, close). */
void xs_conn_reset(struct xs_conn *conn);

/* xs-perms.c: node permissions, their string form, the access rule. */
#define XS_PERM_READ	1u
#define XS_PERM_WRITE	2u
#define XS_PERM_OWNER	4u

struct xs_perm {
	uint32_t domid;
	unsigned int mode;		/* XS_PERM_READ | XS_PERM_WRITE */
};

struct xs_perms {
	unsigned int nr;		/* >= 1: entry 0 is owner and default */
	struct xs_perm *v;
};

/* Parse nr NUL-terminated strings "n0", "r5", "w3", "b7" from buf. */
int xs_perms_parse(const char *buf, size_t len, unsigned int nr, struct xs_perms *ret);
/* Writes "n0\0r5\0..." into buf; returns the length needed. */
size_t xs_perms_format(const struct xs_perms *p, char *buf, size_t size);
int xs_perms_copy(const struct xs_perms *src, struct xs_perms *ret);
void xs_perms_done(struct xs_perms *p);
/* XS_PERM_* bits the caller has on a node with these perms. */
unsigned int xs_perms_for(const struct xs_perms *p, const struct xs_caller *c);

/* xs-tree.c: the node store, paths, per-request permission and quota
 * checks. Paths given to xs_tree_* are canonical (xs_path_canonical). */

/* Called once per path a transaction touches, before it changes it:
 * gen is the node's generation or 0 if it does not exist. */
typedef void xs_tree_note_fn(void *opaque, const char *path, uint64_t gen);
/* Called for every change that fires watches. */
typedef void xs_tree_change_fn(void *opaque, const char *path,
			       const struct xs_perms *perms, bool exact);

struct xs_op {
	struct xs_caller caller;
	bool replay;			/* transaction commit: no checks */
	xs_tree_note_fn *note;
	void *note_opaque;
	xs_tree_change_fn *change;
	void *change_opaque;
};

/* Resolve a request path against /local/domain/<caller>; -EINVAL on bad
 * characters, "//", a trailing '/', or overlong paths. */
int xs_path_canonical(const struct xs_caller *c, const char *in, char **ret);
/* Is path equal to or below parent (on a '/' boundary)? */
bool xs_path_is_below(const char *path, const char *parent);

/* An initial tree like a booted dom0's. */
int xs_tree_new(struct xs_tree **ret);
void xs_tree_free(struct xs_tree *t);
int xs_tree_clone(const struct xs_tree *t, struct xs_tree **ret);
/* Generation of the node at path, 0 if it does not exist. */
uint64_t xs_tree_gen(const struct xs_tree *t, const char *path);
int xs_tree_read(struct xs_tree *t, const struct xs_op *op, const char *path,
		 const char **ret_val, size_t *ret_len);
int xs_tree_write(struct xs_tree *t, const struct xs_op *op, const char *path,
		  const void *val, size_t len);
int xs_tree_mkdir(struct xs_tree *t, const struct xs_op *op, const char *path);
int xs_tree_rm(struct xs_tree *t, const struct xs_op *op, const char *path);
/* Child names, each NUL-terminated, in a malloc'ed buffer. */
int xs_tree_directory(struct xs_tree *t, const struct xs_op *op, const char *path,
		      char **ret_buf, size_t *ret_len, uint64_t *ret_gen);
int xs_tree_get_perms(struct xs_tree *t, const struct xs_op *op, const char *path,
		      const struct xs_perms **ret);
int xs_tree_set_perms(struct xs_tree *t, const struct xs_op *op, const char *path,
		      const struct xs_perms *perms);
/* Nodes whose owner (first perm entry) is domid. */
unsigned int xs_tree_owned(const struct xs_tree *t, uint32_t domid);

/* xs-transaction.c: a transaction works on a private copy of the tree,
 * records what it touched and logs its changes; commit replays the log on
 * the main tree unless one of the touched nodes changed meanwhile. */
struct xs_tx {
	uint32_t id;
	struct xs_tx *next;		/* in the connection's list */
	/* private below */
	struct xs_tree *tree;
	struct xs_tx_note *notes;
	size_t nr_notes, cap_notes;
	struct xs_tx_rec *log, *log_tail;
	bool failed;			/* a logged change could not be recorded */
};

int xs_tx_new(const struct xs_tree *main, uint32_t id, struct xs_tx **ret);
void xs_tx_free(struct xs_tx *tx);
/* Prepare op to work inside tx (note hook, no watch firing). */
void xs_tx_op(struct xs_tx *tx, struct xs_op *op);
/* Record a successful change made inside tx, for the replay. */
void xs_tx_log_write(struct xs_tx *tx, const char *path, const void *val, size_t len);
void xs_tx_log_mkdir(struct xs_tx *tx, const char *path);
void xs_tx_log_rm(struct xs_tx *tx, const char *path);
void xs_tx_log_set_perms(struct xs_tx *tx, const char *path, const struct xs_perms *p);
/* -EAGAIN if something tx touched changed in main since tx started. */
int xs_tx_commit(struct xs_tx *tx, struct xs_tree *main, const struct xs_op *op);

/* xs-watch.c: one registered watch. */
struct xs_watch {
	char *path;			/* canonical, or "@..." */
	char *token;
	size_t strip;			/* prefix to cut for relative watches */
	struct xs_watch *next;
};

int xs_watch_new(const struct xs_caller *c, const char *path, const char *token,
		 struct xs_watch **ret);
void xs_watch_free(struct xs_watch *w);
/* The event path to report for a change at path, or NULL if w does not
 * fire for it. */
const char *xs_watch_match(const struct xs_watch *w, const char *path, bool exact);
/* Queue "path\0token\0" to conn. */
void xs_watch_send(struct xs_conn *conn, const struct xs_watch *w, const char *epath);

/* xs-wire.c: answers one complete request. */
void xs_wire_handle(struct xs_conn *conn, const void *hdr, const char *payload);

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
