/* Event channels of the simulated domains, with Xen's state machine: a
 * port is closed, unbound (accepting one remote domain) or interdomain.
 * Closing one end of an interdomain channel returns the other end to
 * unbound, accepting the closer's domain, so a restarted process can bind
 * it again. The channel's two eventfds carry the notifications; xensimd
 * only hands them out. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <xen/event_channel.h>
#include <xen/xen.h>

#include "xensimd.h"

enum port_state { PORT_CLOSED, PORT_UNBOUND, PORT_INTERDOMAIN };

/* Lives while either end is bound. efd[s] is what side s polls; side s
 * notifies by writing efd[1 - s]. */
struct evtchn_chan {
	int efd[2];
	unsigned int refs;
};

struct evtchn_port {
	enum port_state state;
	unsigned int side;
	uint32_t remote_domid;		/* unbound: who may bind; else the peer */
	uint32_t remote_port;
	struct dom_evtchn_table *peer;	/* interdomain only */
	struct evtchn_chan *chan;
	const void *owner;
};

struct dom_evtchn_table {
	uint32_t domid;
	uint32_t max_ports;
	uint32_t nr_slots;		/* ports[0] is never used, as in Xen */
	struct evtchn_port *ports;
};

int dom_evtchn_table_new(uint32_t domid, uint32_t max_ports, struct dom_evtchn_table **ret)
{
	struct dom_evtchn_table *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->domid = domid;
	t->max_ports = max_ports;
	*ret = t;
	return 0;
}

static void chan_unref(struct evtchn_chan *c)
{
	if (--c->refs)
		return;
	close(c->efd[0]);
	close(c->efd[1]);
	free(c);
}

static int chan_new(struct evtchn_chan **ret)
{
	struct evtchn_chan *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->efd[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd[0] < 0) {
		r = -errno;
		free(c);
		return r;
	}
	c->efd[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->efd[1] < 0) {
		r = -errno;
		close(c->efd[0]);
		free(c);
		return r;
	}
	c->refs = 1;
	*ret = c;
	return 0;
}

static struct evtchn_port *port_get(const struct dom_evtchn_table *t, uint32_t port)
{
	if (port == 0 || port >= t->nr_slots || t->ports[port].state == PORT_CLOSED)
		return NULL;
	return &t->ports[port];
}

/* The lowest closed port, like Xen's get_free_port. May move t->ports. */
static int port_alloc(struct dom_evtchn_table *t, uint32_t *ret_port)
{
	uint32_t p, n;
	struct evtchn_port *np;

	for (p = 1; p < t->nr_slots; p++)
		if (t->ports[p].state == PORT_CLOSED)
			goto found;
	if (t->nr_slots >= t->max_ports + 1)
		return -ENOSPC;
	n = t->nr_slots ? t->nr_slots * 2 : 64;
	if (n > t->max_ports + 1)
		n = t->max_ports + 1;
	np = realloc(t->ports, n * sizeof(*np));
	if (!np)
		return -ENOMEM;
	memset(np + t->nr_slots, 0, (n - t->nr_slots) * sizeof(*np));
	p = t->nr_slots ? t->nr_slots : 1;
	t->ports = np;
	t->nr_slots = n;
found:
	*ret_port = p;
	return 0;
}

int dom_evtchn_alloc_unbound(struct dom_evtchn_table *t, const void *owner,
			     uint32_t remote_domid, uint32_t *ret_port, int ret_fds[2])
{
	struct evtchn_chan *c = NULL;
	struct evtchn_port *pt;
	uint32_t port;
	int r;

	if (remote_domid == DOMID_SELF)
		remote_domid = t->domid;
	if (remote_domid >= DOMID_FIRST_RESERVED)
		return -EINVAL;
	r = port_alloc(t, &port);
	if (r < 0)
		return r;
	r = chan_new(&c);
	if (r < 0)
		return r;
	pt = &t->ports[port];
	*pt = (struct evtchn_port){
		.state = PORT_UNBOUND, .side = 0, .remote_domid = remote_domid,
		.chan = c, .owner = owner,
	};
	ret_fds[0] = c->efd[0];
	ret_fds[1] = c->efd[1];
	*ret_port = port;
	return 0;
}

int dom_evtchn_bind_interdomain(struct dom_evtchn_table *t, const void *owner,
				struct dom_evtchn_table *remote, uint32_t remote_port,
				uint32_t *ret_port, int ret_fds[2])
{
	struct evtchn_port *rp = port_get(remote, remote_port), *lp;
	uint64_t one = 1;
	uint32_t port;
	int r;

	/* Xen: only an unbound port that accepts us (else -EINVAL). */
	if (!rp || rp->state != PORT_UNBOUND || rp->remote_domid != t->domid)
		return -EINVAL;
	r = port_alloc(t, &port);
	if (r < 0)
		return r;
	rp = &remote->ports[remote_port];	/* port_alloc may move a loopback table */
	lp = &t->ports[port];
	*lp = (struct evtchn_port){
		.state = PORT_INTERDOMAIN, .side = 1 - rp->side,
		.remote_domid = remote->domid, .remote_port = remote_port,
		.peer = remote, .chan = rp->chan, .owner = owner,
	};
	rp->chan->refs++;
	rp->state = PORT_INTERDOMAIN;
	rp->remote_domid = t->domid;
	rp->remote_port = port;
	rp->peer = t;
	/* Like Xen: notifications sent to the unbound end were lost, so the
	 * new binder always starts with one pending. */
	if (write(lp->chan->efd[lp->side], &one, sizeof(one)) < 0) {
		/* Only a saturated counter fails: already pending. */
	}
	ret_fds[0] = lp->chan->efd[lp->side];
	ret_fds[1] = lp->chan->efd[1 - lp->side];
	*ret_port = port;
	return 0;
}

static void port_close(struct dom_evtchn_table *t, struct evtchn_port *pt)
{
	if (pt->state == PORT_INTERDOMAIN) {
		struct evtchn_port *rp = &pt->peer->ports[pt->remote_port];

		rp->state = PORT_UNBOUND;
		rp->remote_domid = t->domid;
		rp->remote_port = 0;
		rp->peer = NULL;
	}
	chan_unref(pt->chan);
	memset(pt, 0, sizeof(*pt));
}

int dom_evtchn_close(struct dom_evtchn_table *t, uint32_t port, const void *owner)
{
	struct evtchn_port *pt = port_get(t, port);

	if (!pt)
		return -EINVAL;
	if (owner && pt->owner != owner)
		return -ENOTCONN;
	port_close(t, pt);
	return 0;
}

void dom_evtchn_close_owned(struct dom_evtchn_table *t, const void *owner)
{
	for (uint32_t p = 1; p < t->nr_slots; p++)
		if (t->ports[p].state != PORT_CLOSED && t->ports[p].owner == owner)
			port_close(t, &t->ports[p]);
}

void dom_evtchn_table_free(struct dom_evtchn_table *t)
{
	if (!t)
		return;
	for (uint32_t p = 1; p < t->nr_slots; p++)
		if (t->ports[p].state != PORT_CLOSED)
			port_close(t, &t->ports[p]);
	free(t->ports);
	free(t);
}

int dom_evtchn_status(const struct dom_evtchn_table *t, uint32_t port, uint32_t *ret_state,
		      uint32_t *ret_remote_domid, uint32_t *ret_remote_port)
{
	const struct evtchn_port *pt;

	if (port == 0 || port > t->max_ports)
		return -EINVAL;
	pt = port_get(t, port);
	if (!pt) {
		*ret_state = EVTCHNSTAT_closed;
		*ret_remote_domid = 0;
		*ret_remote_port = 0;
		return 0;
	}
	*ret_state = pt->state == PORT_UNBOUND ? EVTCHNSTAT_unbound : EVTCHNSTAT_interdomain;
	*ret_remote_domid = pt->remote_domid;
	*ret_remote_port = pt->state == PORT_INTERDOMAIN ? pt->remote_port : 0;
	return 0;
}
