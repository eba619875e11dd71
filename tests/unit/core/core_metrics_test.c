/*
 * core_metrics_test.c — counters, histograms, callbacks, caps, escaping, and the text format parsed back.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core_metrics.h"

/* ---- a strict parser for the text exposition format, so that the tests read what Prometheus reads ---- */

#define MAXS 256
#define MAXL 9

struct sample {
	char name[128];
	int nlabels;
	char key[MAXL][64];
	char val[MAXL][256];
	double value;
};

struct parsed {
	int n;
	struct sample s[MAXS];
	char types[64][160]; /* "name type" */
	int ntypes;
};

static int parse_name(const char **p, char *dst, size_t n)
{
	size_t i = 0;
	while (**p && (isalnum((unsigned char)**p) || **p == '_' || **p == ':')) {
		if (i + 1 >= n)
			return -1;
		dst[i++] = *(*p)++;
	}
	dst[i] = '\0';
	return i ? 0 : -1;
}

static int parse_value(const char **p, char *dst, size_t n)
{
	size_t i = 0;
	if (**p != '"')
		return -1;
	(*p)++;
	while (**p && **p != '"') {
		char c = *(*p)++;
		if (c == '\n')
			return -1; /* raw newline inside a value is a format error */
		if (c == '\\') {
			char e = *(*p)++;
			c = e == 'n' ? '\n' : e == '\\' ? '\\' : e == '"' ? '"' : 0;
			if (!c)
				return -1;
		}
		if (i + 1 >= n)
			return -1;
		dst[i++] = c;
	}
	if (**p != '"')
		return -1;
	(*p)++;
	dst[i] = '\0';
	return 0;
}

/* Returns 0 when every line is a HELP, TYPE or a well-formed sample. */
static int parse_text(const char *text, struct parsed *out)
{
	const char *p = text;
	memset(out, 0, sizeof *out);
	while (*p) {
		const char *eol = strchr(p, '\n');
		if (!eol)
			return -1; /* every line ends with \n */
		if (strncmp(p, "# HELP ", 7) == 0) {
			p = eol + 1;
			continue;
		}
		if (strncmp(p, "# TYPE ", 7) == 0) {
			size_t n = (size_t)(eol - p - 7);
			if (out->ntypes >= 64 || n >= sizeof out->types[0])
				return -1;
			memcpy(out->types[out->ntypes], p + 7, n);
			out->types[out->ntypes++][n] = '\0';
			p = eol + 1;
			continue;
		}
		if (out->n >= MAXS)
			return -1;
		struct sample *s = &out->s[out->n];
		if (parse_name(&p, s->name, sizeof s->name))
			return -1;
		if (*p == '{') {
			p++;
			while (*p != '}') {
				if (s->nlabels >= MAXL || parse_name(&p, s->key[s->nlabels], sizeof s->key[0]) ||
				    *p++ != '=' || parse_value(&p, s->val[s->nlabels], sizeof s->val[0]))
					return -1;
				s->nlabels++;
				if (*p == ',')
					p++;
				else if (*p != '}')
					return -1;
			}
			p++;
		}
		if (*p++ != ' ')
			return -1;
		char *end;
		s->value = strtod(p, &end);
		if (end != eol)
			return -1;
		out->n++;
		p = eol + 1;
	}
	return 0;
}

/* The value of the sample with this name and these "k=v" label pairs (all of them), or NAN. */
static double find(const struct parsed *ps, const char *name, int nl, ...)
{
	for (int i = 0; i < ps->n; i++) {
		const struct sample *s = &ps->s[i];
		if (strcmp(s->name, name) != 0 || s->nlabels != nl)
			continue;
		va_list ap;
		va_start(ap, nl);
		int ok = 1;
		for (int j = 0; j < nl; j++) {
			const char *k = va_arg(ap, const char *);
			const char *v = va_arg(ap, const char *);
			int found = 0;
			for (int x = 0; x < s->nlabels; x++)
				if (strcmp(s->key[x], k) == 0 && strcmp(s->val[x], v) == 0)
					found = 1;
			ok &= found;
		}
		va_end(ap);
		if (ok)
			return s->value;
	}
	return NAN;
}

static void render(struct hie_metrics *m, struct parsed *ps, struct hie_buf *text)
{
	hie_buf_init(text, 1 << 20);
	assert_int_equal(hie_metrics_render(m, text), HIE_OK);
	assert_int_equal(parse_text(hie_buf_str(text), ps), 0);
}

static struct parsed ps; /* large: keep it off the stack */

/* ---- tests ---- */

static void test_counter_labels(void **state)
{
	static const char *const labels[] = {"endpoint", "status", NULL};
	struct hie_metric_def def = {.name = "t_requests_total", .help = "Requests.", .labels = labels};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_metric *c = NULL, *again = NULL;
	struct hie_buf text;
	assert_non_null(m);
	assert_int_equal(hie_metrics_counter(m, &def, &c), HIE_OK);
	const char *a[] = {"/xds", "200"}, *b[] = {"/xds", "500"};
	hie_metric_inc(c, a);
	hie_metric_inc(c, a);
	hie_metric_add(c, b, 3.5);
	hie_metric_add(c, b, -1); /* counters never go down */
	assert_int_equal(hie_metrics_counter(m, &def, &again), HIE_OK);
	assert_ptr_equal(c, again);
	render(m, &ps, &text);
	assert_non_null(strstr(text.data, "# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"));
	assert_true(find(&ps, "t_requests_total", 2, "endpoint", "/xds", "status", "200") == 2);
	assert_true(find(&ps, "t_requests_total", 2, "endpoint", "/xds", "status", "500") == 3.5);
	assert_int_equal(ps.n, 2);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

static void test_label_escaping(void **state)
{
	static const char *const labels[] = {"v", NULL};
	struct hie_metric_def def = {.name = "t_escape_total", .help = "back\\slash\nnewline", .labels = labels};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_metric *c = NULL;
	struct hie_buf text;
	const char *tricky = "a\"b\\c\nd} x=\"1\"";
	const char *v1[] = {tricky}, *v2[] = {"caf\xc3\xa9 \xff\xfe end"}, *v3[] = {NULL};
	assert_int_equal(hie_metrics_counter(m, &def, &c), HIE_OK);
	hie_metric_inc(c, v1);
	hie_metric_inc(c, v2);
	hie_metric_inc(c, v3);
	render(m, &ps, &text);
	assert_non_null(strstr(text.data, "{v=\"a\\\"b\\\\c\\nd} x=\\\"1\\\"\"} 1\n"));
	assert_non_null(strstr(text.data, "# HELP t_escape_total back\\\\slash\\nnewline\n"));
	assert_true(find(&ps, "t_escape_total", 1, "v", tricky) == 1);
	/* valid UTF-8 kept, invalid bytes replaced */
	assert_true(find(&ps, "t_escape_total", 1, "v", "caf\xc3\xa9 ?? end") == 1);
	assert_true(find(&ps, "t_escape_total", 1, "v", "") == 1);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

static void test_histogram(void **state)
{
	static const char *const labels[] = {"endpoint", NULL};
	static const double b[] = {0.1, 1, 10};
	struct hie_metric_def def = {.name = "t_seconds", .help = "Latency.", .labels = labels, .buckets = b, .nbuckets = 3};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_metric *h = NULL;
	struct hie_buf text;
	const char *e[] = {"/q"};
	assert_int_equal(hie_metrics_histogram(m, &def, &h), HIE_OK);
	const double obs[] = {0.05, 0.1, 0.5, 5, 100, NAN};
	for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
		hie_metric_observe(h, e, obs[i]);
	render(m, &ps, &text);
	assert_non_null(strstr(text.data, "# TYPE t_seconds histogram\n"));
	assert_true(find(&ps, "t_seconds_bucket", 2, "endpoint", "/q", "le", "0.1") == 2); /* le is inclusive */
	assert_true(find(&ps, "t_seconds_bucket", 2, "endpoint", "/q", "le", "1") == 3);
	assert_true(find(&ps, "t_seconds_bucket", 2, "endpoint", "/q", "le", "10") == 4);
	assert_true(find(&ps, "t_seconds_bucket", 2, "endpoint", "/q", "le", "+Inf") == 5);
	assert_true(find(&ps, "t_seconds_count", 1, "endpoint", "/q") == 5);
	assert_true(fabs(find(&ps, "t_seconds_sum", 1, "endpoint", "/q") - 105.65) < 1e-9);
	/* the bucket order is the order of the bounds, +Inf last */
	const char *p1 = strstr(text.data, "le=\"0.1\""), *p2 = strstr(text.data, "le=\"10\""),
		   *p3 = strstr(text.data, "le=\"+Inf\"");
	assert_true(p1 && p2 && p3 && p1 < p2 && p2 < p3);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

static void test_default_buckets_no_labels(void **state)
{
	struct hie_metric_def def = {.name = "t_plain_seconds"};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_metric *h = NULL;
	struct hie_buf text;
	assert_int_equal(hie_metrics_histogram(m, &def, &h), HIE_OK);
	hie_metric_observe(h, NULL, 0.003);
	render(m, &ps, &text);
	assert_true(find(&ps, "t_plain_seconds_bucket", 1, "le", "0.005") == 1);
	assert_true(find(&ps, "t_plain_seconds_bucket", 1, "le", "10") == 1);
	assert_true(find(&ps, "t_plain_seconds_count", 0) == 1);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

static void test_series_cap_other(void **state)
{
	static const char *const labels[] = {"path", NULL};
	struct hie_metric_def def = {.name = "t_capped_total", .labels = labels, .max_series = 4};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_metric *c = NULL;
	struct hie_buf text;
	char v[32];
	assert_int_equal(hie_metrics_counter(m, &def, &c), HIE_OK);
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof v, "/p%d", i);
		const char *lv[] = {v};
		hie_metric_inc(c, lv);
	}
	const char *first[] = {"/p0"};
	hie_metric_inc(c, first); /* an existing series still counts as itself */
	render(m, &ps, &text);
	assert_int_equal(ps.n, 4);
	assert_true(find(&ps, "t_capped_total", 1, "path", "/p0") == 2);
	assert_true(find(&ps, "t_capped_total", 1, "path", "/p2") == 1);
	assert_true(isnan(find(&ps, "t_capped_total", 1, "path", "/p3")));
	assert_true(find(&ps, "t_capped_total", 1, "path", "other") == 7);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

static void test_long_label_value_cut(void **state)
{
	static const char *const labels[] = {"v", NULL};
	struct hie_metric_def def = {.name = "t_long_total", .labels = labels};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_metric *c = NULL;
	struct hie_buf text;
	char big[1000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	const char *lv[] = {big};
	assert_int_equal(hie_metrics_counter(m, &def, &c), HIE_OK);
	hie_metric_inc(c, lv);
	big[500] = 'y'; /* differs only past the cut: same series */
	hie_metric_inc(c, lv);
	render(m, &ps, &text);
	assert_int_equal(ps.n, 1);
	assert_int_equal(strlen(ps.s[0].val[0]), HIE_METRICS_LABEL_VALUE_MAX);
	assert_true(ps.s[0].value == 2);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

struct bad_def_case {
	const char *what;
	enum hie_metric_type type;
	struct hie_metric_def def;
};

static void test_bad_definitions(void **state)
{
	static const char *const dash[] = {"a-b", NULL}, *const reserved[] = {"__x", NULL},
				 *const le[] = {"le", NULL}, *const dup[] = {"a", "a", NULL},
				 *const digit[] = {"1a", NULL};
	static const double decreasing[] = {1, 0.5}, nan_b[] = {NAN}, inf_b[] = {1, INFINITY};
	const struct bad_def_case cases[] = {
		{.what = "empty name", .type = HIE_METRIC_COUNTER, .def = {.name = ""}},
		{.what = "NULL name", .type = HIE_METRIC_COUNTER, .def = {.name = NULL}},
		{.what = "leading digit", .type = HIE_METRIC_COUNTER, .def = {.name = "9abc"}},
		{.what = "dash in name", .type = HIE_METRIC_COUNTER, .def = {.name = "a-b"}},
		{.what = "space in name", .type = HIE_METRIC_COUNTER, .def = {.name = "a b"}},
		{.what = "dash in label", .type = HIE_METRIC_COUNTER, .def = {.name = "x", .labels = dash}},
		{.what = "reserved label", .type = HIE_METRIC_COUNTER, .def = {.name = "x", .labels = reserved}},
		{.what = "duplicate label", .type = HIE_METRIC_COUNTER, .def = {.name = "x", .labels = dup}},
		{.what = "digit label", .type = HIE_METRIC_COUNTER, .def = {.name = "x", .labels = digit}},
		{.what = "le on histogram", .type = HIE_METRIC_HISTOGRAM, .def = {.name = "x", .labels = le}},
		{.what = "decreasing buckets",
		 .type = HIE_METRIC_HISTOGRAM,
		 .def = {.name = "x", .buckets = decreasing, .nbuckets = 2}},
		{.what = "NaN bucket", .type = HIE_METRIC_HISTOGRAM, .def = {.name = "x", .buckets = nan_b, .nbuckets = 1}},
		{.what = "Inf bucket", .type = HIE_METRIC_HISTOGRAM, .def = {.name = "x", .buckets = inf_b, .nbuckets = 2}},
		{.what = "zero buckets", .type = HIE_METRIC_HISTOGRAM, .def = {.name = "x", .buckets = inf_b, .nbuckets = 0}},
	};
	struct hie_metrics *m = hie_metrics_new();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct hie_metric *x = NULL;
		hie_err_t err = cases[i].type == HIE_METRIC_HISTOGRAM ? hie_metrics_histogram(m, &cases[i].def, &x)
								       : hie_metrics_counter(m, &cases[i].def, &x);
		if (err != HIE_EINVAL)
			fail_msg("case '%s': expected EINVAL, got %d", cases[i].what, err);
		assert_null(x);
	}
	/* "le" is fine on a counter */
	struct hie_metric *ok = NULL;
	struct hie_metric_def le_counter = {.name = "x_total", .labels = le};
	assert_int_equal(hie_metrics_counter(m, &le_counter, &ok), HIE_OK);
	hie_metrics_free(m);
}

static void test_name_conflicts(void **state)
{
	static const char *const l1[] = {"a", NULL}, *const l2[] = {"b", NULL};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_metric *c = NULL, *x = NULL;
	struct hie_metric_def d1 = {.name = "t_total", .labels = l1}, d2 = {.name = "t_total", .labels = l2};
	assert_int_equal(hie_metrics_counter(m, &d1, &c), HIE_OK);
	assert_int_equal(hie_metrics_counter(m, &d2, &x), HIE_EEXIST);
	assert_int_equal(hie_metrics_histogram(m, &d1, &x), HIE_EEXIST);
	assert_null(x);
	/* updates of the wrong kind are ignored, not crashes */
	hie_metric_observe(c, NULL, 1);
	hie_metric_inc(NULL, NULL);
	hie_metrics_free(m);
}

struct queue_ctx {
	int calls;
	int n;
};

static void collect_queue(void *ctx, struct hie_metrics_emitter *e)
{
	struct queue_ctx *q = ctx;
	static const char *const kinds[] = {"deliver", "mdn", "notify", "retry", "audit"};
	q->calls++;
	for (int i = 0; i < q->n; i++) {
		const char *lv[] = {kinds[i % 5], "ready"};
		hie_metrics_emit(e, lv, (double)(i + 1));
	}
}

static void test_callback_gauge(void **state)
{
	static const char *const labels[] = {"kind", "state", NULL};
	struct hie_metric_def def = {.name = "t_queue_jobs", .help = "Jobs.", .labels = labels, .max_series = 3};
	struct queue_ctx q = {.n = 2};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_buf text;
	assert_int_equal(hie_metrics_callback(m, HIE_METRIC_GAUGE, &def, collect_queue, &q), HIE_OK);
	assert_int_equal(hie_metrics_callback(m, HIE_METRIC_GAUGE, &def, collect_queue, &q), HIE_EEXIST);
	assert_int_equal(hie_metrics_callback(m, HIE_METRIC_HISTOGRAM, &def, collect_queue, &q), HIE_EINVAL);
	render(m, &ps, &text);
	assert_int_equal(q.calls, 1);
	assert_non_null(strstr(text.data, "# TYPE t_queue_jobs gauge\n"));
	assert_true(find(&ps, "t_queue_jobs", 2, "kind", "deliver", "state", "ready") == 1);
	assert_true(find(&ps, "t_queue_jobs", 2, "kind", "mdn", "state", "ready") == 2);
	hie_buf_free(&text);
	/* past the cap: 2 series kept, the rest summed into other */
	q.n = 5;
	render(m, &ps, &text);
	assert_int_equal(q.calls, 2);
	assert_int_equal(ps.n, 3);
	assert_true(find(&ps, "t_queue_jobs", 2, "kind", "other", "state", "other") == 3 + 4 + 5);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

struct thread_arg {
	struct hie_metric *c;
	struct hie_metric *h;
};

#define THREADS 8
#define PER_THREAD 20000

static void *hammer(void *p)
{
	struct thread_arg *a = p;
	const char *lv[] = {"x"};
	for (int i = 0; i < PER_THREAD; i++) {
		hie_metric_inc(a->c, lv);
		hie_metric_observe(a->h, NULL, 0.5);
	}
	return NULL;
}

static void test_threads_exact_totals(void **state)
{
	static const char *const labels[] = {"l", NULL};
	struct hie_metric_def dc = {.name = "t_thr_total", .labels = labels}, dh = {.name = "t_thr_seconds"};
	struct hie_metrics *m = hie_metrics_new();
	struct thread_arg a;
	pthread_t t[THREADS];
	struct hie_buf text;
	assert_int_equal(hie_metrics_counter(m, &dc, &a.c), HIE_OK);
	assert_int_equal(hie_metrics_histogram(m, &dh, &a.h), HIE_OK);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &a), 0);
	for (int i = 0; i < 20; i++) { /* scrapes while updates run */
		hie_buf_init(&text, 1 << 20);
		assert_int_equal(hie_metrics_render(m, &text), HIE_OK);
		assert_int_equal(parse_text(hie_buf_str(&text), &ps), 0);
		hie_buf_free(&text);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	render(m, &ps, &text);
	assert_true(find(&ps, "t_thr_total", 1, "l", "x") == THREADS * PER_THREAD);
	assert_true(find(&ps, "t_thr_seconds_count", 0) == THREADS * PER_THREAD);
	assert_true(find(&ps, "t_thr_seconds_sum", 0) == THREADS * PER_THREAD * 0.5);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

static void test_render_cap(void **state)
{
	struct hie_metric_def def = {.name = "t_a_very_long_metric_name_for_the_cap_total", .help = "x"};
	struct hie_metrics *m = hie_metrics_new();
	struct hie_metric *c = NULL;
	struct hie_buf text;
	assert_int_equal(hie_metrics_counter(m, &def, &c), HIE_OK);
	hie_metric_inc(c, NULL);
	hie_buf_init(&text, 40);
	assert_int_equal(hie_metrics_render(m, &text), HIE_ETOOBIG);
	assert_true(text.len <= 40);
	hie_buf_free(&text);
	hie_metrics_free(m);
}

static void test_format_value(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
		{.v = 1, .want = "1"},		 {.v = 0, .want = "0"},		{.v = 0.1, .want = "0.1"},
		{.v = 2.5, .want = "2.5"},	 {.v = 1e300, .want = "1e+300"}, {.v = -3, .want = "-3"},
		{.v = INFINITY, .want = "+Inf"}, {.v = -INFINITY, .want = "-Inf"}, {.v = NAN, .want = "NaN"},
		{.v = 123456789012.0, .want = "123456789012"},
	};
	char buf[40];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_string_equal(hie_metrics_format_value(buf, sizeof buf, cases[i].v), cases[i].want);
	/* a value %.15g cannot carry reads back exactly */
	double v = 0.1 + 0.2;
	assert_true(strtod(hie_metrics_format_value(buf, sizeof buf, v), NULL) == v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_labels),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_default_buckets_no_labels),
		cmocka_unit_test(test_series_cap_other),
		cmocka_unit_test(test_long_label_value_cut),
		cmocka_unit_test(test_bad_definitions),
		cmocka_unit_test(test_name_conflicts),
		cmocka_unit_test(test_callback_gauge),
		cmocka_unit_test(test_threads_exact_totals),
		cmocka_unit_test(test_render_cap),
		cmocka_unit_test(test_format_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
