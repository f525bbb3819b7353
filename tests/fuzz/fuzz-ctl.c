/* Fuzz target: the control socket's request handling (control_handle in
 * backend/control.c) fed line by line as client_read splits a client's
 * bytes, against a daemon with no vbds; every reply must serialise to one
 * JSON line with an "ok" member. */
#include "config.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blkbackd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void fuzz_check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz-ctl", true, LOG_LEVEL_ERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blkbackd d;
	size_t off = 0;

	/* The socket reads at most CONTROL_MAX_LINE bytes per line. */
	if (size > 65536)
		return 0;
	memset(&d, 0, sizeof(d));
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
		struct json_object *rep, *ok;
		const char *text;
		char *line = malloc(len + 1);

		if (!line)
			abort();
		memcpy(line, data + off, len);
		line[len] = '\0';
		rep = control_handle(&d, line, len);
		fuzz_check(rep != NULL);
		fuzz_check(json_object_object_get_ex(rep, "ok", &ok) &&
			   json_object_is_type(ok, json_type_boolean));
		text = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN);
		fuzz_check(text && !strchr(text, '\n'));
		json_object_put(rep);
		free(line);
		off += len + 1;
	}
	return 0;
}
