/*
 * core_metrics.h — a thread-safe metrics registry rendered in the Prometheus text format 0.0.4.
 *
 * A registry (struct hie_metrics) holds metrics in registration order:
 *   - counters and histograms that the program updates (hie_metric_add, hie_metric_observe), each with a
 *     fixed list of label names and a cap on the number of series (label value sets). When the cap is
 *     reached, further new label sets are aggregated into one series whose label values are all "other",
 *     so a peer that controls a label value cannot grow memory or the scrape without bound;
 *   - callback metrics (gauges or counters) whose series are produced at scrape time by a function the
 *     owner registers (queue depth by kind/state, database pool usage). Series past the cap are summed
 *     into the "other" series as well.
 * hie_metrics_render() writes HELP/TYPE lines, escaped label values, and for histograms the cumulative
 * `_bucket{le="..."}` series, `_sum` and `_count`.
 *
 * Thread safety: every function may be called from any thread. Updates take a per-metric mutex, so they
 * never wait on a scrape of another metric. Metric handles stay valid until hie_metrics_free().
 *
 * Errors: registration returns HIE_EINVAL for a bad name, label name or bucket list, HIE_EEXIST when the
 * name is taken by a metric of another type or labels, HIE_ENOMEM; rendering returns HIE_ETOOBIG when
 * the output buffer's cap is reached.
 */
#ifndef HIENODE_CORE_METRICS_H
#define HIENODE_CORE_METRICS_H

#include <stddef.h>

#include "core/core_buf.h"
#include "core/core_err.h"

#define HIE_METRICS_MAX_LABELS 8        /* label names per metric */
#define HIE_METRICS_MAX_BUCKETS 32      /* histogram bucket bounds, +Inf not counted */
#define HIE_METRICS_DEFAULT_SERIES 100  /* when hie_metric_def.max_series is 0 */
#define HIE_METRICS_LABEL_VALUE_MAX 128 /* longer label values are cut */
#define HIE_METRICS_OTHER "other"       /* label value of the overflow series */
#define HIE_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum hie_metric_type {
	HIE_METRIC_COUNTER,
	HIE_METRIC_GAUGE,
	HIE_METRIC_HISTOGRAM,
};

struct hie_metrics;              /* a registry */
struct hie_metric;               /* one metric family: name, labels and its series */
struct hie_metrics_emitter;      /* handed to a callback metric at scrape time */

struct hie_metric_def {
	const char *name;            /* [a-zA-Z_:][a-zA-Z0-9_:]*, copied */
	const char *help;            /* one line of text, copied (may be NULL) */
	const char *const *labels;   /* NULL-terminated label names ([a-zA-Z_][a-zA-Z0-9_]*, not "__*"), or NULL */
	size_t max_series;           /* cap on label value sets including "other"; 0 = HIE_METRICS_DEFAULT_SERIES */
	const double *buckets;       /* histograms: strictly increasing finite upper bounds; NULL = default */
	size_t nbuckets;             /* number of bounds in buckets */
};

/*
 * Fills the emitter's series for one scrape: call hie_metrics_emit() once per series. It runs on the
 * scraping thread with the metric's lock held; it must not register metrics or update this metric.
 */
typedef void (*hie_metrics_collect_fn)(void *ctx, struct hie_metrics_emitter *e);

/* A new empty registry, or NULL when out of memory. Free with hie_metrics_free(). */
struct hie_metrics *hie_metrics_new(void);
/* Frees the registry and every metric handle it gave out. NULL is accepted. */
void hie_metrics_free(struct hie_metrics *m);

/*
 * Registers a counter or histogram and sets *out to its handle (owned by the registry). Registering the
 * same name again with the same type and label names returns the existing handle (so two HTTP listeners
 * can share one registry); with a different type or labels it fails with HIE_EEXIST.
 */
hie_err_t hie_metrics_counter(struct hie_metrics *m, const struct hie_metric_def *def, struct hie_metric **out);
hie_err_t hie_metrics_histogram(struct hie_metrics *m, const struct hie_metric_def *def,
				struct hie_metric **out);

/*
 * Registers a callback metric of type HIE_METRIC_GAUGE or HIE_METRIC_COUNTER; fn(ctx, emitter) is called on
 * every render. ctx is borrowed and must outlive the registry. def->buckets is ignored.
 */
hie_err_t hie_metrics_callback(struct hie_metrics *m, enum hie_metric_type type, const struct hie_metric_def *def,
			       hie_metrics_collect_fn fn, void *ctx);

/*
 * label_values holds one string per label name of the metric, in the same order (NULL entries count as "");
 * it may be NULL for a metric without labels. Values are copied on first use; longer than
 * HIE_METRICS_LABEL_VALUE_MAX bytes they are cut. Out of memory drops the update silently.
 */
void hie_metric_add(struct hie_metric *c, const char *const *label_values, double delta); /* counters: delta >= 0 */
void hie_metric_inc(struct hie_metric *c, const char *const *label_values);
void hie_metric_observe(struct hie_metric *h, const char *const *label_values, double value); /* histograms */

/* From a collect callback: one series of the callback metric. */
void hie_metrics_emit(struct hie_metrics_emitter *e, const char *const *label_values, double value);

/*
 * Appends the whole registry in the text exposition format 0.0.4 to out (content type
 * HIE_METRICS_CONTENT_TYPE). HIE_ETOOBIG when out's cap is reached (out then holds a partial text).
 */
hie_err_t hie_metrics_render(struct hie_metrics *m, struct hie_buf *out);

/*
 * Formats a sample value the way the exposition format wants it ("NaN", "+Inf", "-Inf", or the shortest of
 * %.15g / %.17g that reads back exactly) into dst; returns dst.
 */
char *hie_metrics_format_value(char *dst, size_t dstlen, double v);

#endif
