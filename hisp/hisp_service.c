/*
 * hisp_service.c — the Direct service: builds struct hisp from configuration (keys, trust, discovery,
 * algorithms, STARTTLS context), registers the module's job handlers and serves SMTP.
 *
 * Entry points: hisp_service_open, hisp_service_register_jobs, hisp_service_smtp_start, hisp_service_smtp_stop,
 * hisp_service_close, hisp_wake. Errors: HIE_ECONFIG (an unusable setting, logged with its key), and what the
 * parts return.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_tls.h"
#include "hisp/hisp.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_notice.h"
#include "hisp/hisp_outbound.h"
#include "hisp/hisp_svc.h"

void hisp_wake(struct hisp *h)
{
	if (h && h->jobs)
		hie_jobs_wake(h->jobs);
}

void hisp_hostname(const struct hie_cfg *cfg, char *out, size_t outlen)
{
	const char *host = hie_cfg_str(cfg, "direct", "hostname");
	out[0] = '\0';
	if (host[0])
		snprintf(out, outlen, "%s", host);
	else if (gethostname(out, outlen - 1) != 0)
		out[0] = '\0';
	out[outlen - 1] = '\0';
	if (!out[0])
		snprintf(out, outlen, "localhost");
}

static hie_err_t load_algs(const struct hie_cfg *cfg, struct hisp_smime_algs *a)
{
	if (hisp_cipher_parse(hie_cfg_str(cfg, "direct", "cipher"), &a->cipher) ||
	    hisp_kt_parse(hie_cfg_str(cfg, "direct", "key_transport"), &a->kt) ||
	    hisp_digest_parse(hie_cfg_str(cfg, "direct", "digest"), &a->digest)) {
		hie_log(HIE_LOG_ERR, "event=hisp.config error=algorithms");
		return HIE_ECONFIG;
	}
	return HIE_OK;
}

static int tls_mode(const char *s)
{
	if (strcmp(s, "none") == 0)
		return 0;
	return strcmp(s, "required") == 0 ? 2 : 1;
}

hie_err_t hisp_service_open(const struct hie_cfg *cfg, struct hie_db_pool *pool, const char *state_dir,
			    struct hisp **out)
{
	*out = NULL;
	struct hisp *h = calloc(1, sizeof *h);
	if (!h)
		return HIE_ENOMEM;
	h->cfg = cfg;
	h->pool = pool;
	snprintf(h->state_dir, sizeof h->state_dir, "%s", state_dir);
	hisp_hostname(cfg, h->hostname, sizeof h->hostname);
	h->mdn_timeout_ms = hie_cfg_int(cfg, "direct", "mdn_timeout");
	snprintf(h->smarthost, sizeof h->smarthost, "%s", hie_cfg_str(cfg, "direct", "smarthost"));
	h->smtp_out_timeout_ms = (int)hie_cfg_int(cfg, "direct", "smtp_timeout");
	h->smtp_out_tls = tls_mode(hie_cfg_str(cfg, "direct", "smtp_tls"));
	h->max_message = (size_t)hie_cfg_int(cfg, "smtp", "max_message_size");
	h->edge_require_tls = hie_cfg_bool(cfg, "edge", "require_tls");
	h->auth_max_failures = (int)hie_cfg_int(cfg, "edge", "auth_max_failures");
	h->auth_lockout_ms = hie_cfg_int(cfg, "edge", "auth_lockout");
	h->xdr_timeout_ms = (int)hie_cfg_int(cfg, "edge", "xdr_timeout");
	snprintf(h->xdr_ca, sizeof h->xdr_ca, "%s", hie_cfg_str(cfg, "edge", "xdr_ca"));
	snprintf(h->forward_smtp_ca, sizeof h->forward_smtp_ca, "%s", hie_cfg_str(cfg, "edge", "forward_smtp_ca"));

	hie_err_t err = load_algs(cfg, &h->algs);
	if (!err)
		err = hisp_keys_open(pool, state_dir, &h->keys);
	if (!err) {
		struct hisp_trust_opts to = {
			.min_rsa_bits = (int)hie_cfg_int(cfg, "direct", "min_rsa_bits"),
			.allow_sha1_certs = hie_cfg_bool(cfg, "direct", "allow_sha1_certs"),
			.fetch_timeout_ms = (int)hie_cfg_int(cfg, "direct", "fetch_timeout"),
			.fetch_max = 10u * 1024 * 1024,
		};
		err = hisp_trust_open(pool, &to, &h->trust);
	}
	if (!err) {
		struct hisp_discovery_opts dopt = {
			.dns_server = hie_cfg_str(cfg, "direct", "dns_server"),
			.dns_timeout_ms = (int)hie_cfg_int(cfg, "direct", "dns_timeout"),
			.ldap_timeout_ms = (int)hie_cfg_int(cfg, "direct", "ldap_timeout"),
			.fetch_timeout_ms = (int)hie_cfg_int(cfg, "direct", "fetch_timeout"),
			.cache_ttl_ms = hie_cfg_int(cfg, "direct", "cert_cache_ttl"),
		};
		err = hisp_discovery_open(pool, h->keys, h->trust, &dopt, &h->disc);
	}
	if (err) {
		hisp_service_close(h);
		return err;
	}
	*out = h;
	return HIE_OK;
}

hie_err_t hisp_smtp_tls_load(const struct hie_cfg *cfg, SSL_CTX **out)
{
	*out = NULL;
	const char *cert = hie_cfg_str(cfg, "smtp", "tls_cert");
	if (!cert[0])
		return HIE_OK;
	if (hie_tls_server_ctx(cert, hie_cfg_str(cfg, "smtp", "tls_key"), NULL, false, out) != HIE_OK) {
		hie_log(HIE_LOG_ERR, "event=hisp.config error=smtp_tls key=smtp.tls_cert");
		return HIE_ECONFIG;
	}
	return HIE_OK;
}

hie_err_t hisp_service_register_jobs(struct hisp *h, struct hie_jobs *jobs)
{
	long long lease = hie_cfg_int(h->cfg, "jobs", "lease");
	int receive_lease = (int)(lease < 60000 ? lease : 60000);
	long long slowest = (h->xdr_timeout_ms > h->smtp_out_timeout_ms ? h->xdr_timeout_ms : h->smtp_out_timeout_ms) + 60000LL;
	int forward_lease = (int)(lease > slowest ? lease : slowest);
	const struct hie_jobs_handler handlers[] = {
		/* Short lease: decrypting and storing takes well under a second, and a message accepted by a node
		 * killed while processing it is taken up again a minute later ([jobs] lease if shorter). */
		{.kind = "hisp.receive", .fn = hisp_receive_job, .arg = h, .lease_ms = receive_lease},
		{.kind = "hisp.send", .fn = hisp_send_job, .arg = h},
		{.kind = "hisp.timeout", .fn = hisp_timeout_job, .arg = h},
		{.kind = "hisp.bundle", .fn = hisp_bundle_job, .arg = h, .max_attempts = 3},
		/* Long enough for the slowest delivery it waits on: an XDR or SMTP exchange with its own deadline. */
		{.kind = "hisp.forward", .fn = hisp_forward_job, .arg = h, .lease_ms = forward_lease},
		{.kind = "hisp.bridge", .fn = hisp_bridge_job, .arg = h},
	};
	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
		hie_err_t err = hie_jobs_register(jobs, &handlers[i]);
		if (err)
			return err;
	}
	h->jobs = jobs;
	return HIE_OK;
}

hie_err_t hisp_service_smtp_start(struct hisp *h, struct hie_net_listener *l, SSL_CTX *tls)
{
	const struct hie_cfg *c = h->cfg;
	struct hisp_smtp_in_opts o = {
		.hostname = h->hostname,
		.max_message = h->max_message,
		.max_rcpts = (unsigned)hie_cfg_int(c, "smtp", "max_recipients"),
		.max_conns = (unsigned)hie_cfg_int(c, "smtp", "max_connections"),
		.cmd_ms = (int)hie_cfg_int(c, "smtp", "command_timeout"),
		.data_ms = (int)hie_cfg_int(c, "smtp", "data_timeout"),
		.tls = tls,
	};
	struct hisp_smtp_ops ops = {.rcpt = hisp_inbox_rcpt, .store = hisp_inbox_store, .arg = h};
	hie_err_t err = hisp_smtp_in_start(l, &o, &ops, &h->smtp);
	if (!err)
		h->smtp_tls = tls; /* freed with the service, after the server stopped */
	return err;
}

void hisp_service_smtp_stop(struct hisp *h, int grace_ms)
{
	if (!h)
		return;
	hisp_smtp_in_stop(h->smtp, grace_ms);
	h->smtp = NULL;
	hisp_smtp_in_stop(h->submission, grace_ms);
	h->submission = NULL;
}

void hisp_service_close(struct hisp *h)
{
	if (!h)
		return;
	hisp_service_smtp_stop(h, 0);
	hisp_discovery_close(h->disc);
	hisp_trust_close(h->trust);
	hisp_keys_close(h->keys);
	hie_tls_ctx_free(h->smtp_tls);
	hie_tls_ctx_free(h->submission_tls);
	free(h);
}
