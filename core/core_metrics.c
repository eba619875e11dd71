/*
 * core_metrics.c — counters, histograms and callback metrics; Prometheus text rendering. See core_metrics.h.
 *
 * Each metric keeps its series in an array guarded by its own mutex; a series is found by a hash of its
 * label values and then compared string by string. The registry mutex guards only the list of metrics.
 * Lock order: registry, then metric.
 */
#include "core/core_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_log.h"
#include "core/core_text.h"

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct series {
	uint64_t hash;
	char **values;      /* nlabels strings, one allocation with the pointers */
	double value;       /* counter */
	uint64_t *buckets;  /* histogram: nbounds + 1 non-cumulative counts, last is +Inf */
	double sum;
	uint64_t count;
};

struct hie_metric {
	struct hie_metric *next;
	enum hie_metric_type type;
	char *name;
	char *help;
	size_t nlabels;
	char **labels;
	size_t max_series;
	double *bounds;
	size_t nbounds;
	hie_metrics_collect_fn fn;  /* callback metrics only */
	void *ctx;
	pthread_mutex_t mu;
	struct series *series;
	size_t nseries;
	size_t capseries;
	int overflow_logged;
};

struct hie_metrics {
	pthread_mutex_t mu;
	struct hie_metric *head;
	struct hie_metric *tail;
};

struct hie_metrics_emitter {
	struct hie_metric *metric;
	struct hie_buf *out;
	hie_err_t err;
	size_t emitted;
	int have_other;
	double other;
};

static int valid_name(const char *s, int allow_colon)
{
	if (!s || !*s)
		return 0;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
			 (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

struct hie_metrics *hie_metrics_new(void)
{
	struct hie_metrics *m = calloc(1, sizeof *m);
	if (m)
		pthread_mutex_init(&m->mu, NULL);
	return m;
}

static void series_free(struct series *s)
{
	free(s->values);
	free(s->buckets);
}

static void metric_free(struct hie_metric *x)
{
	for (size_t i = 0; i < x->nseries; i++)
		series_free(&x->series[i]);
	free(x->series);
	for (size_t i = 0; i < x->nlabels; i++)
		free(x->labels[i]);
	free(x->labels);
	free(x->bounds);
	free(x->name);
	free(x->help);
	pthread_mutex_destroy(&x->mu);
	free(x);
}

void hie_metrics_free(struct hie_metrics *m)
{
	if (!m)
		return;
	struct hie_metric *x = m->head;
	while (x) {
		struct hie_metric *next = x->next;
		metric_free(x);
		x = next;
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static hie_err_t check_def(enum hie_metric_type type, const struct hie_metric_def *def, size_t *nlabels)
{
	size_t n = 0;
	if (!def || !valid_name(def->name, 1))
		return HIE_EINVAL;
	for (; def->labels && def->labels[n]; n++) {
		const char *l = def->labels[n];
		if (n >= HIE_METRICS_MAX_LABELS || !valid_name(l, 0) || strncmp(l, "__", 2) == 0)
			return HIE_EINVAL;
		if (type == HIE_METRIC_HISTOGRAM && strcmp(l, "le") == 0)
			return HIE_EINVAL;
		for (size_t j = 0; j < n; j++)
			if (strcmp(def->labels[j], l) == 0)
				return HIE_EINVAL;
	}
	if (type == HIE_METRIC_HISTOGRAM && def->buckets) {
		if (def->nbuckets == 0 || def->nbuckets > HIE_METRICS_MAX_BUCKETS)
			return HIE_EINVAL;
		for (size_t i = 0; i < def->nbuckets; i++) {
			if (!isfinite(def->buckets[i]) || (i > 0 && !(def->buckets[i] > def->buckets[i - 1])))
				return HIE_EINVAL;
		}
	}
	*nlabels = n;
	return HIE_OK;
}

static int same_shape(const struct hie_metric *x, enum hie_metric_type type, const struct hie_metric_def *def,
		      size_t nlabels)
{
	if (x->type != type || x->nlabels != nlabels || x->fn)
		return 0;
	for (size_t i = 0; i < nlabels; i++)
		if (strcmp(x->labels[i], def->labels[i]) != 0)
			return 0;
	return 1;
}

static hie_err_t metric_build(enum hie_metric_type type, const struct hie_metric_def *def, size_t nlabels,
			      struct hie_metric **out)
{
	struct hie_metric *x = calloc(1, sizeof *x);
	if (!x)
		return HIE_ENOMEM;
	pthread_mutex_init(&x->mu, NULL);
	x->type = type;
	x->max_series = def->max_series ? def->max_series : HIE_METRICS_DEFAULT_SERIES;
	x->name = strdup(def->name);
	x->help = strdup(def->help ? def->help : "");
	x->labels = calloc(nlabels + 1, sizeof *x->labels);
	if (!x->name || !x->help || !x->labels)
		goto nomem;
	for (; x->nlabels < nlabels; x->nlabels++) {
		x->labels[x->nlabels] = strdup(def->labels[x->nlabels]);
		if (!x->labels[x->nlabels])
			goto nomem;
	}
	if (type == HIE_METRIC_HISTOGRAM) {
		const double *b = def->buckets ? def->buckets : default_buckets;
		x->nbounds = def->buckets ? def->nbuckets : sizeof default_buckets / sizeof default_buckets[0];
		x->bounds = malloc(x->nbounds * sizeof *x->bounds);
		if (!x->bounds)
			goto nomem;
		memcpy(x->bounds, b, x->nbounds * sizeof *x->bounds);
	}
	*out = x;
	return HIE_OK;
nomem:
	metric_free(x);
	return HIE_ENOMEM;
}

static hie_err_t metrics_register(struct hie_metrics *m, enum hie_metric_type type, const struct hie_metric_def *def,
				  hie_metrics_collect_fn fn, void *ctx, struct hie_metric **out)
{
	size_t nlabels = 0;
	struct hie_metric *x = NULL;
	hie_err_t err = check_def(type, def, &nlabels);
	if (err)
		return err;
	pthread_mutex_lock(&m->mu);
	for (struct hie_metric *y = m->head; y; y = y->next) {
		if (strcmp(y->name, def->name) != 0)
			continue;
		if (!fn && same_shape(y, type, def, nlabels)) {
			*out = y;
			err = HIE_OK;
		} else {
			err = HIE_EEXIST;
		}
		goto out;
	}
	err = metric_build(type, def, nlabels, &x);
	if (err)
		goto out;
	x->fn = fn;
	x->ctx = ctx;
	if (m->tail)
		m->tail->next = x;
	else
		m->head = x;
	m->tail = x;
	if (out)
		*out = x;
out:
	pthread_mutex_unlock(&m->mu);
	return err;
}

hie_err_t hie_metrics_counter(struct hie_metrics *m, const struct hie_metric_def *def, struct hie_metric **out)
{
	return metrics_register(m, HIE_METRIC_COUNTER, def, NULL, NULL, out);
}

hie_err_t hie_metrics_histogram(struct hie_metrics *m, const struct hie_metric_def *def, struct hie_metric **out)
{
	return metrics_register(m, HIE_METRIC_HISTOGRAM, def, NULL, NULL, out);
}

hie_err_t hie_metrics_callback(struct hie_metrics *m, enum hie_metric_type type, const struct hie_metric_def *def,
			       hie_metrics_collect_fn fn, void *ctx)
{
	if (!fn || (type != HIE_METRIC_GAUGE && type != HIE_METRIC_COUNTER))
		return HIE_EINVAL;
	return metrics_register(m, type, def, fn, ctx, NULL);
}

static size_t value_len(const char *v)
{
	size_t n = v ? strnlen(v, HIE_METRICS_LABEL_VALUE_MAX) : 0;
	return n;
}

static uint64_t labels_hash(size_t nlabels, const char *const *values)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < nlabels; i++) {
		const char *v = values ? values[i] : NULL;
		size_t n = value_len(v);
		for (size_t j = 0; j < n; j++)
			h = (h ^ (unsigned char)v[j]) * 1099511628211ULL;
		h = (h ^ 0xffu) * 1099511628211ULL; /* separator: ("a","b") differs from ("ab","") */
	}
	return h;
}

static int labels_equal(const struct series *s, size_t nlabels, const char *const *values)
{
	for (size_t i = 0; i < nlabels; i++) {
		const char *v = values ? values[i] : NULL;
		size_t n = value_len(v);
		if (strlen(s->values[i]) != n || (n && memcmp(s->values[i], v, n) != 0))
			return 0;
	}
	return 1;
}

static hie_err_t series_init(struct hie_metric *x, struct series *s, uint64_t hash, const char *const *values)
{
	size_t total = x->nlabels * sizeof(char *);
	for (size_t i = 0; i < x->nlabels; i++)
		total += value_len(values ? values[i] : NULL) + 1;
	memset(s, 0, sizeof *s);
	s->hash = hash;
	s->values = malloc(total ? total : 1);
	if (!s->values)
		return HIE_ENOMEM;
	char *p = (char *)(s->values + x->nlabels);
	for (size_t i = 0; i < x->nlabels; i++) {
		size_t n = value_len(values ? values[i] : NULL);
		if (n)
			memcpy(p, values[i], n);
		p[n] = '\0';
		s->values[i] = p;
		p += n + 1;
	}
	if (x->type == HIE_METRIC_HISTOGRAM) {
		s->buckets = calloc(x->nbounds + 1, sizeof *s->buckets);
		if (!s->buckets) {
			free(s->values);
			return HIE_ENOMEM;
		}
	}
	return HIE_OK;
}

static struct series *series_find(struct hie_metric *x, uint64_t hash, const char *const *values)
{
	for (size_t i = 0; i < x->nseries; i++)
		if (x->series[i].hash == hash && labels_equal(&x->series[i], x->nlabels, values))
			return &x->series[i];
	return NULL;
}

/* The series for these label values, created if needed; the "other" series past the cap. Lock held. */
static struct series *series_get(struct hie_metric *x, const char *const *values)
{
	const char *other[HIE_METRICS_MAX_LABELS];
	uint64_t hash = labels_hash(x->nlabels, values);
	struct series *s = series_find(x, hash, values);
	if (s)
		return s;
	if (x->nlabels && x->nseries + 1 >= x->max_series) {
		/* Keep the last slot for "other", so that a peer-influenced label cannot grow the set. */
		for (size_t i = 0; i < x->nlabels; i++)
			other[i] = HIE_METRICS_OTHER;
		values = other;
		hash = labels_hash(x->nlabels, values);
		s = series_find(x, hash, values);
		if (s)
			return s;
		if (!x->overflow_logged) {
			x->overflow_logged = 1;
			hie_log(HIE_LOG_WARN, "event=metrics.overflow metric=%s max_series=%zu", x->name,
				x->max_series);
		}
	}
	if (x->nseries == x->capseries) {
		size_t cap = x->capseries ? x->capseries * 2 : 8;
		struct series *p = realloc(x->series, cap * sizeof *p);
		if (!p)
			return NULL;
		x->series = p;
		x->capseries = cap;
	}
	if (series_init(x, &x->series[x->nseries], hash, values))
		return NULL;
	return &x->series[x->nseries++];
}

void hie_metric_add(struct hie_metric *c, const char *const *label_values, double delta)
{
	if (!c || c->fn || c->type != HIE_METRIC_COUNTER || !(delta >= 0))
		return;
	pthread_mutex_lock(&c->mu);
	struct series *s = series_get(c, label_values);
	if (s)
		s->value += delta;
	pthread_mutex_unlock(&c->mu);
}

void hie_metric_inc(struct hie_metric *c, const char *const *label_values)
{
	hie_metric_add(c, label_values, 1);
}

void hie_metric_observe(struct hie_metric *h, const char *const *label_values, double value)
{
	if (!h || h->type != HIE_METRIC_HISTOGRAM || isnan(value))
		return;
	pthread_mutex_lock(&h->mu);
	struct series *s = series_get(h, label_values);
	if (s) {
		size_t i = 0;
		while (i < h->nbounds && value > h->bounds[i])
			i++; /* buckets are "less than or equal" (le) */
		s->buckets[i]++;
		s->sum += value;
		s->count++;
	}
	pthread_mutex_unlock(&h->mu);
}

char *hie_metrics_format_value(char *dst, size_t dstlen, double v)
{
	if (isnan(v)) {
		snprintf(dst, dstlen, "NaN");
	} else if (isinf(v)) {
		snprintf(dst, dstlen, "%s", v > 0 ? "+Inf" : "-Inf");
	} else {
		snprintf(dst, dstlen, "%.15g", v);
		if (strtod(dst, NULL) != v)
			snprintf(dst, dstlen, "%.17g", v);
	}
	return dst;
}

/*
 * Escapes text for a label value (quote = 1: backslash, double quote and newline) or a HELP line (quote = 0:
 * backslash and newline) as the exposition format says. Bytes that
 * are not valid UTF-8 become '?', since the format requires UTF-8.
 */
static hie_err_t add_escaped(struct hie_buf *out, const char *s, int quote)
{
	size_t n = strlen(s);
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < n && !err;) {
		unsigned char c = (unsigned char)s[i];
		size_t len = hie_text_utf8_len((const unsigned char *)s + i, n - i);
		if (c == '\\')
			err = hie_buf_add(out, "\\\\", 2);
		else if (c == '\n')
			err = hie_buf_add(out, "\\n", 2);
		else if (c == '"' && quote)
			err = hie_buf_add(out, "\\\"", 2);
		else if (len == 0)
			err = hie_buf_add(out, "?", 1);
		else
			err = hie_buf_add(out, s + i, len);
		i += len ? len : 1;
	}
	return err;
}

/* Writes `name{l1="v1",...,extra="xv"} value\n`; extra may be NULL. */
static hie_err_t add_sample(struct hie_buf *out, const struct hie_metric *x, const char *suffix,
			    const char *const *values, const char *extra, const char *extra_value, double v)
{
	char num[40];
	hie_err_t err = hie_buf_addf(out, "%s%s", x->name, suffix);
	int any = x->nlabels > 0 || extra;
	if (!err && any)
		err = hie_buf_add(out, "{", 1);
	for (size_t i = 0; !err && i < x->nlabels; i++) {
		err = hie_buf_addf(out, "%s%s=\"", i ? "," : "", x->labels[i]);
		if (!err)
			err = add_escaped(out, values && values[i] ? values[i] : "", 1);
		if (!err)
			err = hie_buf_add(out, "\"", 1);
	}
	if (!err && extra)
		err = hie_buf_addf(out, "%s%s=\"%s\"", x->nlabels ? "," : "", extra, extra_value);
	if (!err && any)
		err = hie_buf_add(out, "}", 1);
	if (!err)
		err = hie_buf_addf(out, " %s\n", hie_metrics_format_value(num, sizeof num, v));
	return err;
}

static const char *type_name(enum hie_metric_type t)
{
	switch (t) {
	case HIE_METRIC_COUNTER: return "counter";
	case HIE_METRIC_GAUGE: return "gauge";
	case HIE_METRIC_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

static hie_err_t render_histogram_series(struct hie_buf *out, const struct hie_metric *x, const struct series *s)
{
	char le[40];
	uint64_t cum = 0;
	hie_err_t err = HIE_OK;
	for (size_t i = 0; !err && i <= x->nbounds; i++) {
		cum += s->buckets[i];
		if (i < x->nbounds)
			hie_metrics_format_value(le, sizeof le, x->bounds[i]);
		else
			snprintf(le, sizeof le, "+Inf");
		err = add_sample(out, x, "_bucket", (const char *const *)s->values, "le", le, (double)cum);
	}
	if (!err)
		err = add_sample(out, x, "_sum", (const char *const *)s->values, NULL, NULL, s->sum);
	if (!err)
		err = add_sample(out, x, "_count", (const char *const *)s->values, NULL, NULL, (double)s->count);
	return err;
}

void hie_metrics_emit(struct hie_metrics_emitter *e, const char *const *label_values, double value)
{
	if (!e || e->err)
		return;
	const struct hie_metric *x = e->metric;
	if (x->nlabels && e->emitted + 1 >= x->max_series) {
		e->have_other = 1;
		e->other += value;
		return;
	}
	e->err = add_sample(e->out, x, "", label_values, NULL, NULL, value);
	e->emitted++;
}

static hie_err_t render_metric(struct hie_buf *out, struct hie_metric *x)
{
	hie_err_t err = hie_buf_addf(out, "# HELP %s ", x->name);
	if (!err)
		err = add_escaped(out, x->help, 0);
	if (!err)
		err = hie_buf_addf(out, "\n# TYPE %s %s\n", x->name, type_name(x->type));
	if (err)
		return err;
	if (x->fn) {
		const char *other[HIE_METRICS_MAX_LABELS];
		struct hie_metrics_emitter e = {.metric = x, .out = out};
		x->fn(x->ctx, &e);
		if (!e.err && e.have_other) {
			for (size_t i = 0; i < x->nlabels; i++)
				other[i] = HIE_METRICS_OTHER;
			e.err = add_sample(out, x, "", other, NULL, NULL, e.other);
		}
		return e.err;
	}
	for (size_t i = 0; !err && i < x->nseries; i++) {
		const struct series *s = &x->series[i];
		if (x->type == HIE_METRIC_HISTOGRAM)
			err = render_histogram_series(out, x, s);
		else
			err = add_sample(out, x, "", (const char *const *)s->values, NULL, NULL, s->value);
	}
	return err;
}

hie_err_t hie_metrics_render(struct hie_metrics *m, struct hie_buf *out)
{
	hie_err_t err = HIE_OK;
	pthread_mutex_lock(&m->mu);
	for (struct hie_metric *x = m->head; x && !err; x = x->next) {
		pthread_mutex_lock(&x->mu);
		err = render_metric(out, x);
		pthread_mutex_unlock(&x->mu);
	}
	pthread_mutex_unlock(&m->mu);
	return err;
}
