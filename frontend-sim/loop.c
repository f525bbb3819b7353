/* xensimd's event loop: epoll with one callback per fd. Callbacks may
 * add or delete fds (including their own) while the loop runs. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "xensimd.h"

struct loop_entry {
	int fd;
	loop_fn *fn;
	void *opaque;
	bool deleted;
	struct loop_entry *next_dead;
};

struct loop {
	int epfd;
	bool quit;
	/* Entries deleted during a dispatch round are freed after it, since
	 * a later event of the same epoll_wait batch may still point at them. */
	struct loop_entry *dead;
	struct loop_entry **by_fd;
	int nr_by_fd;
};

int loop_new(struct loop **ret)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int r = -errno;

		free(loop);
		return r;
	}
	*ret = loop;
	return 0;
}

static void loop_reap(struct loop *loop)
{
	while (loop->dead) {
		struct loop_entry *e = loop->dead;

		loop->dead = e->next_dead;
		free(e);
	}
}

void loop_free(struct loop *loop)
{
	int i;

	if (!loop)
		return;
	for (i = 0; i < loop->nr_by_fd; i++)
		free(loop->by_fd[i]);
	free(loop->by_fd);
	loop_reap(loop);
	close(loop->epfd);
	free(loop);
}

static int loop_slot(struct loop *loop, int fd)
{
	if (fd >= loop->nr_by_fd) {
		int n = fd + 64;
		struct loop_entry **t = realloc(loop->by_fd, n * sizeof(*t));

		if (!t)
			return -ENOMEM;
		for (int i = loop->nr_by_fd; i < n; i++)
			t[i] = NULL;
		loop->by_fd = t;
		loop->nr_by_fd = n;
	}
	return 0;
}

int loop_add(struct loop *loop, int fd, uint32_t events, loop_fn *fn, void *opaque)
{
	struct epoll_event ev = { .events = events };
	struct loop_entry *e;
	int r;

	if (fd < 0)
		return -EBADF;
	r = loop_slot(loop, fd);
	if (r < 0)
		return r;
	if (loop->by_fd[fd])
		return -EEXIST;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = fd;
	e->fn = fn;
	e->opaque = opaque;
	ev.data.ptr = e;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		free(e);
		return r;
	}
	loop->by_fd[fd] = e;
	return 0;
}

int loop_mod(struct loop *loop, int fd, uint32_t events, loop_fn *fn, void *opaque)
{
	struct epoll_event ev = { .events = events };
	struct loop_entry *e;

	if (fd < 0 || fd >= loop->nr_by_fd || !(e = loop->by_fd[fd]))
		return -ENOENT;
	e->fn = fn;
	e->opaque = opaque;
	ev.data.ptr = e;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

void loop_del(struct loop *loop, int fd)
{
	struct loop_entry *e;

	if (fd < 0 || fd >= loop->nr_by_fd || !(e = loop->by_fd[fd]))
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->by_fd[fd] = NULL;
	e->deleted = true;
	e->next_dead = loop->dead;
	loop->dead = e;
}

int loop_run(struct loop *loop)
{
	struct epoll_event evs[64];

	loop->quit = false;
	while (!loop->quit) {
		int n = epoll_wait(loop->epfd, evs, 64, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct loop_entry *e = evs[i].data.ptr;

			if (!e->deleted)
				e->fn(e->opaque, evs[i].events);
		}
		loop_reap(loop);
	}
	return 0;
}

void loop_quit(struct loop *loop)
{
	loop->quit = true;
}
