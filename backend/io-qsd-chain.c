/* An image's chain of backing files, as qemu-img reads it, checked before
 * a qemu-storage-daemon opens the image. QEMU probes the format of a
 * backing file whose format the image above it does not record, so a raw
 * backing file that some guest can write (it is another guest's disk, or
 * was) could be turned into a qcow2 image whose own backing file is any
 * file of the host, and the guest of the overlay would read it. Such
 * chains are refused, with how to record the format; everything else
 * (every level's format recorded, or no backing file) is served as QEMU
 * opens it. qemu-img does the reading: no image format is parsed here. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io-qsd.h"
#include "util.h"

/* The program, unless the environment names another. */
#define QSD_IMG_PROGRAM_DEFAULT "qemu-img"
#define QSD_IMG_ENV_PROGRAM "BLKBACKD_QEMU_IMG"
/* How long qemu-img may take to read the chain's headers. */
#define QSD_IMG_TIMEOUT_MS 10000
/* The most JSON we take from it: a few hundred bytes per level. */
#define QSD_IMG_OUTPUT_MAX (1u << 20)

/* The last line qemu-img wrote to errfd (its standard error), into err:
 * QEMU says "qemu-img: what failed". */
static void chain_error(int errfd, struct io_error *err)
{
	char buf[1024], *line, *end;
	ssize_t n;

	n = pread(errfd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	line = (end = strrchr(buf, '\n')) ? end + 1 : buf;
	if (*line)
		io_error_set(err, "%s", line);
}

/* qemu-img's standard output, until it exits or the deadline passes;
 * NULL with err set otherwise. */
static char *chain_read(const char *format, const char *file, struct io_error *err)
{
	const char *prog = getenv(QSD_IMG_ENV_PROGRAM);
	char *argv[] = { NULL, (char *)"info", (char *)"--output=json", (char *)"--backing-chain",
			 (char *)"-U", (char *)"-f", (char *)format, (char *)file, NULL };
	uint64_t deadline = clock_mono_ms() + QSD_IMG_TIMEOUT_MS;
	size_t len = 0, cap = 4096;
	char *out = NULL, *grown;
	int pipefd[2], errfd, status = 0, r = 0;
	struct pollfd pfd;
	ssize_t n;
	pid_t pid;

	if (!prog || !*prog)
		prog = QSD_IMG_PROGRAM_DEFAULT;
	argv[0] = (char *)prog;
	errfd = memfd_create("qemu-img-stderr", MFD_CLOEXEC);
	if (errfd < 0 || pipe2(pipefd, O_CLOEXEC) < 0) {
		io_error_set(err, "cannot run %s: %s", prog, strerror(errno));
		if (errfd >= 0)
			close(errfd);
		return NULL;
	}
	pid = fork();
	if (pid < 0) {
		io_error_set(err, "cannot run %s: %s", prog, strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		close(errfd);
		return NULL;
	}
	if (pid == 0) {
		int nullfd = open("/dev/null", O_RDONLY);

		if (nullfd >= 0)
			dup2(nullfd, 0);
		dup2(errfd, 2);
		dup2(pipefd[1], 1);
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execvp(prog, argv);
		_exit(127);
	}
	close(pipefd[1]);
	out = malloc(cap);
	if (!out)
		r = -ENOMEM;
	pfd.fd = pipefd[0];
	pfd.events = POLLIN;
	while (r == 0) {
		uint64_t now = clock_mono_ms();

		if (now >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		if (poll(&pfd, 1, (int)(deadline - now)) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (len + 1 >= cap) {
			if (cap >= QSD_IMG_OUTPUT_MAX) {
				r = -E2BIG;
				break;
			}
			grown = realloc(out, cap * 2);
			if (!grown) {
				r = -ENOMEM;
				break;
			}
			out = grown;
			cap *= 2;
		}
		n = read(pipefd[0], out + len, cap - len - 1);
		if (n == 0)
			break;
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			r = -errno;
		else if (n > 0)
			len += (size_t)n;
	}
	close(pipefd[0]);
	if (r < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		r = WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
	}
	if (r < 0) {
		if (r == -ENOENT)
			io_error_set(err, "%s not found (Debian: qemu-utils): it checks the "
				     "image's backing files", prog);
		else if (r == -ETIMEDOUT)
			io_error_set(err, "%s did not read %s within %d ms", prog, file,
				     QSD_IMG_TIMEOUT_MS);
		else
			io_error_set(err, "%s cannot read %s as %s (status %d)", prog, file,
				     format, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		if (r == -EIO)
			chain_error(errfd, err);
		close(errfd);
		free(out);
		return NULL;
	}
	close(errfd);
	out[len] = '\0';
	return out;
}

int qsd_chain_check(const char *format, const char *file, struct io_error *err)
{
	struct json_object *chain, *level, *backing, *fmt, *name;
	char *out;
	size_t i, n;
	int r = 0;

	out = chain_read(format, file, err);
	if (!out)
		return -EIO;
	chain = json_tokener_parse(out);
	free(out);
	if (!chain || !json_object_is_type(chain, json_type_array)) {
		json_object_put(chain);
		io_error_set(err, "qemu-img gave no backing chain for %s", file);
		return -EIO;
	}
	n = json_object_array_length(chain);
	for (i = 0; i < n && r == 0; i++) {
		level = json_object_array_get_idx(chain, i);
		if (!json_object_object_get_ex(level, "backing-filename", &backing))
			continue;
		if (json_object_object_get_ex(level, "backing-filename-format", &fmt) &&
		    *json_object_get_string(fmt))
			continue;
		if (!json_object_object_get_ex(level, "filename", &name))
			name = NULL;
		io_error_set(err, "%s: its backing file %s has no recorded format, which QEMU "
			     "would probe; record it (qemu-img rebase -u -b FILE -F FORMAT)",
			     name ? json_object_get_string(name) : file,
			     json_object_get_string(backing));
		r = -EPERM;
	}
	json_object_put(chain);
	return r;
}
