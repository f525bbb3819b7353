/* The control protocol, shared by its server (control.c, in blkbackd) and
 * its client (blkback-ctl): where the socket is, the version, the request
 * envelope and commands, and the error codes a reply can carry. Replies'
 * data members are described in blkback-ctl(8). */
#ifndef BLKBACK_CONTROL_PROTO_H
#define BLKBACK_CONTROL_PROTO_H

#include <string.h>

#define CONTROL_PATH_DEFAULT	"/run/blkbackd/control"
#define CONTROL_SIM_NAME	"blkbackd.control"	/* in the simulator's directory */

/* Version 1 only gains members; a change that breaks readers is version 2. */
#define CONTROL_VERSION		1

/* Every request: {"version": 1, "command": "<name>", ...}. */
#define CONTROL_KEY_VERSION	"version"
#define CONTROL_KEY_COMMAND	"command"
/* show, detach: the vbd, by domain id and devid (decimal) or vdev name. */
#define CONTROL_KEY_DOMID	"domid"
#define CONTROL_KEY_DEVICE	"device"
#define CONTROL_KEY_FORCE	"force"		/* detach: do not wait for the frontend */
/* check-target */
#define CONTROL_KEY_TARGET	"target"
#define CONTROL_KEY_MODE	"mode"		/* "r" or "w" */

#define CONTROL_CMD_LIST	"list"
#define CONTROL_CMD_STATS	"stats"
#define CONTROL_CMD_SHOW	"show"
#define CONTROL_CMD_DETACH	"detach"
#define CONTROL_CMD_CHECK_TARGET "check-target"
#define CONTROL_CMD_STATUS	"status"
#define CONTROL_CMD_UPGRADE	"upgrade"

/* Every reply: "version", "ok"; when ok is false, "error" says why for a
 * person and "code" which failure it is, for a program. */
#define CONTROL_KEY_OK		"ok"
#define CONTROL_KEY_ERROR	"error"
#define CONTROL_KEY_CODE	"code"

/* X(ENUM, code) */
#define CONTROL_ERROR_LIST(X) \
	X(FAILED, "failed")			/* the command itself failed */ \
	X(BAD_REQUEST, "bad-request")		/* not JSON, or a member missing */ \
	X(VERSION, "version")			/* another protocol version */ \
	X(UNKNOWN_COMMAND, "unknown-command") \
	X(PERMISSION, "permission")		/* the peer may not use the socket */ \
	X(NO_VBD, "no-vbd")			/* show, detach: no such vbd */

enum control_error {
#define CONTROL_ERROR_ENUM(e, code) CONTROL_E_##e,
	CONTROL_ERROR_LIST(CONTROL_ERROR_ENUM)
#undef CONTROL_ERROR_ENUM
	CONTROL_E_COUNT,
};

static inline const char *control_error_code(enum control_error e)
{
	static const char *const codes[] = {
#define CONTROL_ERROR_CODE(e, code) code,
		CONTROL_ERROR_LIST(CONTROL_ERROR_CODE)
#undef CONTROL_ERROR_CODE
	};

	return (unsigned int)e < CONTROL_E_COUNT ? codes[e] : "failed";
}

/* A reply's code back to its enum; an unknown or missing one (a newer or
 * older daemon) is CONTROL_E_FAILED. */
static inline enum control_error control_error_parse(const char *code)
{
	unsigned int e;

	for (e = 0; code && e < CONTROL_E_COUNT; e++)
		if (strcmp(code, control_error_code((enum control_error)e)) == 0)
			return (enum control_error)e;
	return CONTROL_E_FAILED;
}

#endif
