/* Fuzz target: the control socket's request handling (control_handle in
 * backend/control-cmd.c) fed line by line as client_read splits a client's
 * bytes, against a daemon with three vbds that need no xenstore (names
 * cached, no rings, no storage, detach already requested); every reply
 * must serialise to one JSON line with an "ok" member. */
#include "config.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xen/io/xenbus.h>

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

static struct vbd fuzz_vbds[3];

/* Rebuilt for every input: a request must not leave state behind. */
static void fuzz_vbds_init(struct blkbackd *d)
{
	static const struct {
		uint32_t domid, devid;
		enum vbd_phase phase;
		const char *vdev;
	} fix[3] = {
		{ 1, 51712, VBD_CONNECTED, "xvda" },
		{ 1, 51728, VBD_FOREIGN, "xvdb" },	/* hidden from every command */
		{ 2, 768, VBD_CLOSED, "hda" },
	};

	for (unsigned int i = 0; i < 3; i++) {
		struct vbd *v = &fuzz_vbds[i];

		memset(v, 0, sizeof(*v));
		v->d = d;
		v->fe_domid = fix[i].domid;
		v->devid = fix[i].devid;
		v->phase = fix[i].phase;
		v->dom_name = (char *)"guest";
		v->vdev_name = (char *)fix[i].vdev;
		v->be_path = (char *)"/local/domain/0/backend/vbd/1/51712";
		v->fe_path = (char *)"/local/domain/1/device/vbd/51712";
		v->seen_be_state = XenbusStateConnected;
		v->seen_fe_state = i == 2 ? XenbusStateClosed : XenbusStateConnected;
		/* vbd_update would talk to xenstore: detach reports progress. */
		v->detach = true;
		v->next = i < 2 ? &fuzz_vbds[i + 1] : NULL;
	}
	d->vbds = &fuzz_vbds[0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct blkbackd d;
	size_t off = 0;

	/* The socket reads at most CONTROL_MAX_LINE bytes per line. */
	if (size > 65536)
		return 0;
	memset(&d, 0, sizeof(d));
	fuzz_vbds_init(&d);
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
		rep = control_handle(&d, line, len, NULL);
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
