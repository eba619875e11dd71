/*
 * hisp_edge_todo.c — TEMPORARY placeholders for edge functions still being written (issue 5). Each one is
 * removed from here by whoever implements it in its own file; this file is deleted when it is empty.
 */
#include "hisp/hisp.h"
#include "hisp/hisp_edge.h"

hie_err_t hisp_forward_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	(void)job, (void)arg, (void)errbuf, (void)errlen;
	return HIE_EUNSUPPORTED;
}

hie_err_t hisp_bridge_job(const struct hie_job *job, void *arg, char *errbuf, size_t errlen)
{
	(void)job, (void)arg, (void)errbuf, (void)errlen;
	return HIE_EUNSUPPORTED;
}

hie_err_t hisp_edge_http(void *ctx, const struct hie_http_req *req, struct hie_http_resp *resp)
{
	(void)ctx, (void)req, (void)resp;
	return HIE_EUNSUPPORTED;
}

hie_err_t hisp_xdr_handle(const struct hie_soap_msg *req, struct hie_soap_response *resp, void *arg)
{
	(void)req, (void)resp, (void)arg;
	return HIE_EUNSUPPORTED;
}

hie_err_t hisp_submission_tls_load(const struct hie_cfg *cfg, SSL_CTX **out)
{
	(void)cfg;
	*out = NULL;
	return HIE_OK;
}

hie_err_t hisp_service_submission_start(struct hisp *h, struct hie_net_listener *l, SSL_CTX *tls)
{
	(void)h, (void)l, (void)tls;
	return HIE_EUNSUPPORTED;
}

int hisp_cli_user(const struct hisp_cli *c, int argc, char **argv)
{
	(void)c, (void)argc, (void)argv;
	return 2;
}

int hisp_cli_forward(const struct hisp_cli *c, int argc, char **argv)
{
	(void)c, (void)argc, (void)argv;
	return 2;
}

int hisp_cli_bridge(const struct hisp_cli *c, int argc, char **argv)
{
	(void)c, (void)argc, (void)argv;
	return 2;
}
