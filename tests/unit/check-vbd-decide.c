/* Unit tests for backend/vbd-decide.c, the vbd state machine's decision:
 * the state table in vbd.c's head comment row by row (phase, both ends'
 * states and the vbd's flags in, one action out), then rules that must
 * hold for every input, checked over all states including garbage. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include <xen/io/xenbus.h>

#include "util.h"
#include "vbd-decide.h"

/* xenbus states by their numbers, as the table speaks of them */
enum {
	UNK = XenbusStateUnknown,
	INI = XenbusStateInitialising,
	IWT = XenbusStateInitWait,
	IND = XenbusStateInitialised,
	CON = XenbusStateConnected,
	CLG = XenbusStateClosing,
	CLD = XenbusStateClosed,
	BAD = 4096,	/* garbage that parsed as a number */
};

/* Flags default to the common case (dir present, online, storage closed,
 * no rings) so that each row names only what it is about. */
struct row {
	const char *what;
	enum vbd_phase phase;
	unsigned int be, fe;
	bool dir_gone, offline, hotplug, script, fe_path_bad;
	bool removed_before, detach, takeover, fe_seen, backing, rings, rings_busy, refused;
	enum vbd_action want;
	bool release;
};

static const struct row rows[] = {
	/* backend dir removed, in any phase */
	{ "connected, dir removed", VBD_CONNECTED, CON, CON, .dir_gone = true, .rings = true,
	  .backing = true, .want = VBD_DO_STOP },
	{ "closing, dir removed, rings draining", VBD_CLOSING, CLG, CLG, .dir_gone = true,
	  .rings = true, .rings_busy = true, .want = VBD_DO_NOTHING },
	{ "closing, dir removed, drained", VBD_CLOSING, CLG, CLG, .dir_gone = true, .rings = true,
	  .want = VBD_DO_FORGET, .release = true },
	{ "initwait, dir removed", VBD_INITWAIT, IWT, INI, .dir_gone = true, .backing = true,
	  .want = VBD_DO_FORGET },
	{ "new, a write found the dir gone", VBD_NEW, INI, INI, .removed_before = true,
	  .want = VBD_DO_FORGET },
	{ "closed, dir removed", VBD_CLOSED, CLD, CLD, .dir_gone = true, .want = VBD_DO_FORGET },
	{ "foreign, dir removed", VBD_FOREIGN, INI, INI, .dir_gone = true, .script = true,
	  .want = VBD_DO_FORGET },

	/* foreign: claimed once the script names us */
	{ "foreign, script now ours", VBD_FOREIGN, INI, INI, .script = true, .want = VBD_DO_CLAIM },
	{ "foreign, script another's", VBD_FOREIGN, INI, INI, .want = VBD_DO_NOTHING },

	/* new */
	{ "new, fresh", VBD_NEW, INI, INI, .want = VBD_DO_CONFIGURE },
	{ "new, no state nodes yet", VBD_NEW, UNK, UNK, .want = VBD_DO_CONFIGURE },
	{ "new, toolstack left 6", VBD_NEW, CLD, INI, .want = VBD_DO_CONFIGURE },
	{ "new, both connected: take over", VBD_NEW, CON, CON, .want = VBD_DO_TAKE_OVER },
	{ "new, backend closing, frontend connected", VBD_NEW, CLG, CON,
	  .want = VBD_DO_TAKE_OVER },
	{ "new, connected but offline: take over to answer", VBD_NEW, CON, CON, .offline = true,
	  .want = VBD_DO_TAKE_OVER },
	{ "new, connected but detaching: take over to answer", VBD_NEW, CON, CON,
	  .detach = true, .want = VBD_DO_TAKE_OVER },
	{ "new, connected, frontend path unreadable", VBD_NEW, CON, UNK, .fe_path_bad = true,
	  .want = VBD_DO_TAKE_OVER },
	{ "new, closing before restart, frontend closing", VBD_NEW, CLG, CLG,
	  .want = VBD_DO_KEEP_CLOSING },
	{ "new, closing before restart, offline", VBD_NEW, CLG, CLG, .offline = true,
	  .want = VBD_DO_CLOSE_ORPHAN },
	{ "new, closing before restart, detach", VBD_NEW, CLG, CLG, .detach = true,
	  .want = VBD_DO_CLOSE_ORPHAN },
	{ "new, connected before restart, frontend closed", VBD_NEW, CON, CLD,
	  .want = VBD_DO_CLOSE_ORPHAN },
	{ "new, connected before restart, frontend gone", VBD_NEW, CON, UNK,
	  .want = VBD_DO_CLOSE_ORPHAN },
	{ "new, connected before restart, frontend restarted", VBD_NEW, CON, INI,
	  .want = VBD_DO_CLOSE_ORPHAN },
	{ "new, offline", VBD_NEW, INI, INI, .offline = true, .want = VBD_DO_CLOSE },
	{ "new, detach", VBD_NEW, IWT, INI, .detach = true, .want = VBD_DO_CLOSE },
	{ "new, garbage backend state", VBD_NEW, BAD, INI, .want = VBD_DO_CONFIGURE },

	/* initwait */
	{ "initwait, script not done", VBD_INITWAIT, IWT, INI, .want = VBD_DO_NOTHING },
	{ "initwait, script done: open", VBD_INITWAIT, IWT, INI, .hotplug = true,
	  .want = VBD_DO_OPEN },
	{ "initwait, storage open, frontend initialising", VBD_INITWAIT, IWT, INI,
	  .hotplug = true, .backing = true, .want = VBD_DO_NOTHING },
	{ "initwait, storage open, frontend initwait", VBD_INITWAIT, IWT, IWT, .hotplug = true,
	  .backing = true, .want = VBD_DO_NOTHING },
	{ "initwait, frontend initialised: start", VBD_INITWAIT, IWT, IND, .hotplug = true,
	  .backing = true, .want = VBD_DO_START },
	{ "initwait, frontend connected: start", VBD_INITWAIT, IWT, CON, .hotplug = true,
	  .backing = true, .want = VBD_DO_START },
	{ "initwait, rings refused in this frontend state", VBD_INITWAIT, IWT, IND,
	  .hotplug = true, .backing = true, .refused = true, .want = VBD_DO_NOTHING },
	{ "initwait, rings refused, frontend closing", VBD_INITWAIT, IWT, CLG, .hotplug = true,
	  .backing = true, .refused = true, .want = VBD_DO_STOP },
	{ "initwait, frontend ready, script not done", VBD_INITWAIT, IWT, IND, .backing = true,
	  .want = VBD_DO_NOTHING },
	{ "initwait, frontend closing: closing", VBD_INITWAIT, IWT, CLG, .hotplug = true,
	  .backing = true, .want = VBD_DO_STOP },
	{ "initwait, frontend closing, offline", VBD_INITWAIT, IWT, CLG, .offline = true,
	  .want = VBD_DO_CLOSE },
	{ "initwait, frontend closed", VBD_INITWAIT, IWT, CLD, .want = VBD_DO_CLOSE },
	{ "initwait, frontend gone", VBD_INITWAIT, IWT, UNK, .fe_seen = true,
	  .want = VBD_DO_CLOSE },
	{ "initwait, frontend not there yet", VBD_INITWAIT, IWT, UNK, .hotplug = true,
	  .want = VBD_DO_OPEN },
	{ "initwait, frontend garbage", VBD_INITWAIT, IWT, BAD, .hotplug = true,
	  .backing = true, .want = VBD_DO_CLOSE },
	{ "initwait, toolstack wrote 5", VBD_INITWAIT, CLG, CON, .hotplug = true,
	  .backing = true, .want = VBD_DO_CLOSE },
	{ "initwait, detach", VBD_INITWAIT, IWT, CON, .detach = true, .hotplug = true,
	  .backing = true, .want = VBD_DO_CLOSE },
	{ "initwait, offline, frontend ready", VBD_INITWAIT, IWT, IND, .offline = true,
	  .hotplug = true, .backing = true, .want = VBD_DO_CLOSE },
	/* initwait, rings started, their engines still starting */
	{ "initwait, rings starting: look again", VBD_INITWAIT, IWT, CON, .hotplug = true,
	  .backing = true, .rings = true, .rings_busy = true, .want = VBD_DO_START },
	{ "initwait, rings starting, dir removed", VBD_INITWAIT, IWT, CON, .dir_gone = true,
	  .hotplug = true, .backing = true, .rings = true, .rings_busy = true,
	  .want = VBD_DO_STOP },
	{ "initwait, rings starting, offline", VBD_INITWAIT, IWT, CON, .offline = true,
	  .hotplug = true, .backing = true, .rings = true, .rings_busy = true,
	  .want = VBD_DO_STOP },
	{ "initwait, rings starting, frontend closed", VBD_INITWAIT, IWT, CLD, .hotplug = true,
	  .backing = true, .rings = true, .rings_busy = true, .want = VBD_DO_STOP },
	{ "initwait, rings starting, frontend started over", VBD_INITWAIT, IWT, INI,
	  .hotplug = true, .backing = true, .rings = true, .rings_busy = true,
	  .want = VBD_DO_STOP },
	/* initwait, taking over */
	{ "takeover, no close", VBD_INITWAIT, CON, CON, .takeover = true, .hotplug = true,
	  .backing = true, .want = VBD_DO_START },
	{ "takeover, no close, script not done", VBD_INITWAIT, CON, CON, .takeover = true,
	  .want = VBD_DO_NOTHING },
	{ "takeover, offline: recover first", VBD_INITWAIT, CON, CON, .takeover = true,
	  .offline = true, .hotplug = true, .backing = true, .want = VBD_DO_TAKEOVER_START },
	{ "takeover, offline, storage closed", VBD_INITWAIT, CON, CON, .takeover = true,
	  .offline = true, .hotplug = true, .want = VBD_DO_TAKEOVER_OPEN },
	{ "takeover, detach, storage closed", VBD_INITWAIT, CON, CON, .takeover = true,
	  .detach = true, .hotplug = true, .want = VBD_DO_TAKEOVER_OPEN },
	{ "takeover, offline, script not done", VBD_INITWAIT, CON, CON, .takeover = true,
	  .offline = true, .backing = true, .want = VBD_DO_TAKEOVER_ABANDON },
	{ "takeover, frontend closed", VBD_INITWAIT, CON, CLD, .takeover = true,
	  .hotplug = true, .backing = true, .want = VBD_DO_TAKEOVER_ABANDON },
	{ "takeover, frontend closed, rings up", VBD_INITWAIT, CON, CLD, .takeover = true,
	  .hotplug = true, .backing = true, .rings = true, .want = VBD_DO_STOP },

	/* connected */
	{ "connected, steady", VBD_CONNECTED, CON, CON, .backing = true, .rings = true,
	  .want = VBD_DO_NOTHING },
	{ "connected, frontend initialised again", VBD_CONNECTED, CON, IND, .backing = true,
	  .rings = true, .want = VBD_DO_NOTHING },
	{ "connected, frontend closing", VBD_CONNECTED, CON, CLG, .rings = true,
	  .want = VBD_DO_DISCONNECT },
	{ "connected, frontend closed", VBD_CONNECTED, CON, CLD, .rings = true,
	  .want = VBD_DO_DISCONNECT },
	{ "connected, frontend back to initialising", VBD_CONNECTED, CON, INI, .rings = true,
	  .want = VBD_DO_DISCONNECT },
	{ "connected, frontend back to initwait", VBD_CONNECTED, CON, IWT, .rings = true,
	  .want = VBD_DO_DISCONNECT },
	{ "connected, frontend gone", VBD_CONNECTED, CON, UNK, .fe_seen = true, .rings = true,
	  .want = VBD_DO_DISCONNECT },
	{ "connected, frontend garbage", VBD_CONNECTED, CON, BAD, .rings = true,
	  .want = VBD_DO_DISCONNECT },
	{ "connected, offline", VBD_CONNECTED, CON, CON, .offline = true, .rings = true,
	  .want = VBD_DO_DISCONNECT },
	{ "connected, detach", VBD_CONNECTED, CON, CON, .detach = true, .rings = true,
	  .want = VBD_DO_DISCONNECT },
	{ "connected, toolstack wrote 5", VBD_CONNECTED, CLG, CON, .rings = true,
	  .want = VBD_DO_DISCONNECT },

	/* closing */
	{ "closing, rings draining", VBD_CLOSING, CLG, CLD, .rings = true, .rings_busy = true,
	  .want = VBD_DO_NOTHING },
	{ "closing, drained, frontend closing: hold 5", VBD_CLOSING, CLG, CLG, .rings = true,
	  .want = VBD_DO_NOTHING, .release = true },
	{ "closing, drained, frontend closed", VBD_CLOSING, CLG, CLD, .rings = true,
	  .want = VBD_DO_FINISH_CLOSE, .release = true },
	{ "closing, released, frontend closed", VBD_CLOSING, CLG, CLD,
	  .want = VBD_DO_FINISH_CLOSE },
	{ "closing, released, frontend connected: hold 5", VBD_CLOSING, CLG, CON,
	  .want = VBD_DO_NOTHING },
	{ "closing, released, frontend initialised: hold 5", VBD_CLOSING, CLG, IND,
	  .want = VBD_DO_NOTHING },
	{ "closing, toolstack overwrote our 5", VBD_CLOSING, CON, CON,
	  .want = VBD_DO_REWRITE_CLOSING },
	{ "closing, frontend started over", VBD_CLOSING, CLG, INI, .want = VBD_DO_FINISH_CLOSE },
	{ "closing, frontend initwait", VBD_CLOSING, CLG, IWT, .want = VBD_DO_FINISH_CLOSE },
	{ "closing, frontend gone", VBD_CLOSING, CLG, UNK, .want = VBD_DO_FINISH_CLOSE },
	{ "closing, frontend garbage", VBD_CLOSING, CLG, BAD, .want = VBD_DO_FINISH_CLOSE },
	{ "closing, offline", VBD_CLOSING, CLG, CON, .offline = true,
	  .want = VBD_DO_FINISH_CLOSE },
	{ "closing, detach", VBD_CLOSING, CLG, CLG, .detach = true, .want = VBD_DO_FINISH_CLOSE },

	/* closed */
	{ "closed, frontend starts over", VBD_CLOSED, CLD, INI, .want = VBD_DO_CONFIGURE },
	{ "closed, frontend initwait", VBD_CLOSED, CLD, IWT, .want = VBD_DO_CONFIGURE },
	{ "closed, frontend initialised", VBD_CLOSED, CLD, IND, .want = VBD_DO_CONFIGURE },
	{ "closed, frontend claims connected", VBD_CLOSED, CLD, CON, .want = VBD_DO_NOTHING },
	{ "closed, frontend closed", VBD_CLOSED, CLD, CLD, .want = VBD_DO_NOTHING },
	{ "closed, offline", VBD_CLOSED, CLD, INI, .offline = true, .want = VBD_DO_NOTHING },
	{ "closed, detach", VBD_CLOSED, CLD, INI, .detach = true, .want = VBD_DO_NOTHING },
	{ "closed, toolstack wrote 5, frontend starts over", VBD_CLOSED, CLG, INI,
	  .want = VBD_DO_CONFIGURE },
	{ "closed, state overwritten", VBD_CLOSED, CON, CLD, .want = VBD_DO_REWRITE_CLOSED },
	{ "closed, offline, state overwritten", VBD_CLOSED, CON, CON, .offline = true,
	  .want = VBD_DO_REWRITE_CLOSED },
};

static void row_to_input(const struct row *r, struct vbd_input *in, struct vbd_facts *f)
{
	*in = (struct vbd_input){
		.exists = !r->dir_gone,
		.online = r->offline ? 0 : 1,
		.be_state = r->be,
		.fe_state = r->fe,
		.hotplug_ok = r->hotplug,
		.script_matches = r->script,
		.fe_path_ok = !r->fe_path_bad,
	};
	*f = (struct vbd_facts){
		.phase = r->phase,
		.be_dir_removed = r->removed_before,
		.detach = r->detach,
		.takeover = r->takeover,
		.fe_seen = r->fe_seen,
		.has_backing = r->backing,
		.has_rings = r->rings,
		.rings_stopped = !r->rings_busy,
		.start_refused = r->refused,
	};
}

START_TEST(test_table_row)
{
	const struct row *r = &rows[_i];
	struct vbd_input in;
	struct vbd_facts f;
	struct vbd_decision d;

	row_to_input(r, &in, &f);
	d = vbd_decide(&in, &f);
	ck_assert_msg(d.action == r->want && d.release == r->release,
		      "%s: %s%s, wanted %s%s", r->what, d.release ? "release, " : "",
		      vbd_action_name(d.action), r->release ? "release, " : "",
		      vbd_action_name(r->want));
}
END_TEST

/* Every input: phases, both states 0..9 plus garbage, all flag mixes. */
#define NR_STATES	11
#define NR_FLAGS	12

static void input_from_index(unsigned int phase, unsigned int be, unsigned int fe,
			     unsigned int bits, struct vbd_input *in, struct vbd_facts *f)
{
	*in = (struct vbd_input){
		.exists = !(bits & 1),
		.online = (bits & 2) ? 0 : 1,
		.be_state = be == 10 ? BAD : be,
		.fe_state = fe == 10 ? BAD : fe,
		.hotplug_ok = bits & 4,
		.script_matches = bits & 8,
		.fe_path_ok = !(bits & 16),
	};
	*f = (struct vbd_facts){
		.phase = (enum vbd_phase)phase,
		.be_dir_removed = bits & 32,
		.detach = bits & 64,
		.takeover = bits & 128,
		.fe_seen = bits & 256,
		.has_backing = bits & 512,
		.has_rings = bits & 1024,
		.rings_stopped = !((bits & 1024) && (bits & 2048)),
	};
}

/* The phases each action may be taken in (bit per phase). */
static unsigned int action_phases(enum vbd_action a)
{
#define P(x) (1u << (x))
	switch (a) {
	case VBD_DO_NOTHING:
		return ~0u;
	case VBD_DO_CLAIM:
		return P(VBD_FOREIGN);
	case VBD_DO_TAKE_OVER:
	case VBD_DO_KEEP_CLOSING:
	case VBD_DO_CLOSE_ORPHAN:
		return P(VBD_NEW);
	case VBD_DO_CLOSE:
		return P(VBD_NEW) | P(VBD_INITWAIT);
	case VBD_DO_CONFIGURE:
		return P(VBD_NEW) | P(VBD_CLOSED);
	case VBD_DO_TAKEOVER_OPEN:
	case VBD_DO_TAKEOVER_START:
	case VBD_DO_TAKEOVER_ABANDON:
	case VBD_DO_OPEN:
	case VBD_DO_START:
		return P(VBD_INITWAIT);
	case VBD_DO_STOP:
		return P(VBD_INITWAIT) | P(VBD_CONNECTED);
	case VBD_DO_DISCONNECT:
		return P(VBD_CONNECTED);
	case VBD_DO_FINISH_CLOSE:
	case VBD_DO_REWRITE_CLOSING:
		return P(VBD_CLOSING);
	case VBD_DO_REWRITE_CLOSED:
		return P(VBD_CLOSED);
	case VBD_DO_FORGET:
		return ~0u;
	}
#undef P
	return 0;
}

/* Rules that hold whatever the guest and the toolstack wrote. */
static const char *broken_rule(const struct vbd_input *in, const struct vbd_facts *f,
			       struct vbd_decision d)
{
	bool removed = !in->exists || f->be_dir_removed;
	bool closing_asked = in->online == 0 || f->detach;

	if (!(action_phases(d.action) & (1u << f->phase)))
		return "action taken in a phase it has no row in";
	if (d.release && !f->rings_stopped)
		return "rings released before they drained";
	if (d.action == VBD_DO_FORGET && f->phase == VBD_CLOSING && !f->rings_stopped)
		return "forgotten with rings in flight";
	if (removed && d.action != VBD_DO_STOP && d.action != VBD_DO_NOTHING &&
	    d.action != VBD_DO_FORGET)
		return "acted on a removed backend dir";
	if (!removed && d.action == VBD_DO_FORGET)
		return "forgot a vbd whose dir is there";
	if ((d.action == VBD_DO_START || d.action == VBD_DO_TAKEOVER_START) &&
	    !(in->hotplug_ok && f->has_backing &&
	      (in->fe_state == XenbusStateInitialised || in->fe_state == XenbusStateConnected)))
		return "started without the script's word, the storage or a ready frontend";
	if (d.action == VBD_DO_OPEN && (!in->hotplug_ok || f->has_backing))
		return "opened storage the script had not accepted, or twice";
	if ((d.action == VBD_DO_TAKEOVER_OPEN || d.action == VBD_DO_TAKEOVER_START ||
	     d.action == VBD_DO_TAKEOVER_ABANDON) && !f->takeover)
		return "took over a vbd not configured for it";
	if (d.action == VBD_DO_START && !f->takeover && closing_asked)
		return "connected a vbd the toolstack is closing";
	if (d.action == VBD_DO_CONFIGURE && closing_asked)
		return "configured a vbd the toolstack is closing";
	if (d.action == VBD_DO_CONFIGURE && f->phase == VBD_CLOSED &&
	    in->fe_state == XenbusStateConnected)
		return "reconnected a frontend that did not start over";
	if (d.action == VBD_DO_CLAIM && !in->script_matches)
		return "claimed a vbd whose script names another handler";
	return NULL;
}

START_TEST(test_rules_hold)
{
	unsigned int phase = (unsigned int)_i, be, fe, bits, checked = 0;

	for (be = 0; be < NR_STATES; be++)
		for (fe = 0; fe < NR_STATES; fe++)
			for (bits = 0; bits < 1u << NR_FLAGS; bits++) {
				struct vbd_input in;
				struct vbd_facts f;
				struct vbd_decision d;
				const char *why;

				input_from_index(phase, be, fe, bits, &in, &f);
				d = vbd_decide(&in, &f);
				why = broken_rule(&in, &f, d);
				if (why)
					ck_abort_msg("phase %u, backend %u, frontend %u, flags %#x: "
						     "%s (%s)", phase, be, fe, bits,
						     vbd_action_name(d.action), why);
				checked++;
			}
	ck_assert_uint_eq(checked, NR_STATES * NR_STATES * (1u << NR_FLAGS));
}
END_TEST

START_TEST(test_action_names)
{
	unsigned int a;

	for (a = VBD_DO_NOTHING; a <= VBD_DO_FORGET; a++)
		ck_assert_str_ne(vbd_action_name((enum vbd_action)a), "invalid");
	ck_assert_str_eq(vbd_action_name((enum vbd_action)(VBD_DO_FORGET + 1)), "invalid");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vbd-decide");
	TCase *tc = tcase_create("vbd-decide");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_table_row, 0, ARRAY_SIZE(rows));
	/* Half a million inputs a phase: well under a second, but make -j2
	 * check on a loaded machine beat Check's default of 4 s. */
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_rules_hold, VBD_NEW, VBD_FOREIGN + 1);
	tcase_add_test(tc, test_action_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
