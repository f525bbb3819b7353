/* Regression runner for the fuzz harnesses in a normal build: feeds every
 * file of tests/fuzz/corpus/<target>/ and tests/fuzz/crashes/<target>/
 * through LLVMFuzzerTestOneInput, so inputs that once crashed stay tests.
 * The target is this program's name minus "-regress" and "fuzz-". */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Feeds one file; returns 0 or -errno (a crash does not return). */
static int regress_run_file(const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	FILE *f = fopen(path, "rb");
	int r = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t n;

		if (len == cap) {
			uint8_t *nb = realloc(buf, cap ? cap * 2 : 4096);

			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = cap ? cap * 2 : 4096;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		r = -EIO;
		goto out;
	}
	LLVMFuzzerTestOneInput(buf, len);
out:
	free(buf);
	fclose(f);
	return r;
}

/* Every regular file of dir; a missing dir counts as empty. */
static int regress_run_dir(const char *dir, unsigned int *count)
{
	struct dirent **names;
	int n, i, r = 0;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0)
		return errno == ENOENT ? 0 : -errno;
	for (i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		/* Dotfiles (.keep) only hold empty directories in git. */
		if (r == 0 && names[i]->d_name[0] != '.' && stat(path, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			r = regress_run_file(path);
			if (r < 0)
				fprintf(stderr, "%s: %s\n", path, strerror(-r));
			else
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	const char *srcdir = getenv("top_srcdir");
	char target[256], dir[4096];
	const char *base = strrchr(argv[0], '/');
	unsigned int count = 0;
	size_t len;

	base = base ? base + 1 : argv[0];
	if (strncmp(base, "fuzz-", 5) == 0)
		base += 5;
	snprintf(target, sizeof(target), "%s", base);
	len = strlen(target);
	if (len > 8 && strcmp(target + len - 8, "-regress") == 0)
		target[len - 8] = '\0';
	if (!srcdir)
		srcdir = ".";
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", srcdir, target);
	if (regress_run_dir(dir, &count) < 0)
		return 1;
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/crashes/%s", srcdir, target);
	if (regress_run_dir(dir, &count) < 0)
		return 1;
	/* An empty corpus would make this a test that cannot fail. */
	if (count == 0) {
		fprintf(stderr, "fuzz-%s-regress: no inputs under %s/tests/fuzz\n",
			target, srcdir);
		return 1;
	}
	printf("fuzz-%s-regress: %u inputs, no crash\n", target, count);
	return 0;
}
