/*
 * hisp_xdr_out.c — ITI-41 requests we send (forwarding a received Direct message to an EHR's XDR endpoint):
 * a SOAP 1.2 envelope with WS-Addressing (To, Action urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b,
 * MessageID, ReplyTo anonymous) and the Direct addressing headers (direct:from, direct:to,
 * direct:metadata-level; XDR and XDM for Direct Messaging), the body an xdsb:ProvideAndRegisterDocumentSetRequest
 * holding a copy of the SubmitObjectsRequest and one xdsb:Document per document as an xop:Include of an MTOM
 * part (multipart/related; type="application/xop+xml"; start-info="application/soap+xml"), POSTed with
 * libcurl. TLS peers are always verified (peer and host name; ca_file or the system store), the whole
 * exchange has one deadline and the response body is capped (XDR_RESPONSE_MAX).
 *
 * Entry point: hisp_xdr_send. Outcome (hisp_edge.h): HIE_OK when an rs:RegistryResponse came back, whatever its
 * status; HIE_ETIMEOUT / HIE_EIO when the endpoint could not be reached, its certificate did not verify, or it
 * answered garbage, a Receiver fault or HTTP 5xx (retry later); HIE_EDENIED for a SOAP Sender fault or HTTP 4xx
 * (permanent); HIE_EINVAL for a bad request (our bug); HIE_ENOMEM, HIE_ETOOBIG.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/core_log.h"
#include "core/core_soap.h"
#include "core/core_xml.h"
#include "hisp/hisp_edge.h"
#include "hisp/hisp_util.h"
#include "hisp/hisp_xdr_int.h"

#define XDR_RESPONSE_MAX (16u << 20)
#define NS_SOAP12 HIE_SOAP12_NS

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The MTOM part's content type: the document's media type when it is a plain type/subtype token pair. */
static const char *part_type(const char *mime)
{
	if (!mime || !mime[0] || strlen(mime) > 100)
		return "application/octet-stream";
	int slash = 0;
	for (const char *p = mime; *p; p++) {
		if (*p == '/')
			slash++;
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			   strchr("!#$&^_.+-", *p)))
			return "application/octet-stream";
	}
	return slash == 1 && mime[0] != '/' && mime[strlen(mime) - 1] != '/' ? mime : "application/octet-stream";
}

static hie_err_t add_header(struct hie_buf *h, const char *name, const char *value)
{
	hie_err_t err = hie_buf_addf(h, "<direct:%s xmlns:direct=\"" HISP_DIRECT_NS "\">", name);
	if (!err)
		err = hie_buf_add_xml(h, value, strlen(value));
	if (!err)
		err = hie_buf_addf(h, "</direct:%s>", name);
	return err;
}

static hie_err_t build_headers(const struct hisp_xdr_request *r, struct hie_buf *h)
{
	hie_err_t err = HIE_OK;
	if (r->direct_from && r->direct_from[0])
		err = add_header(h, "from", r->direct_from);
	for (size_t i = 0; !err && i < r->ndirect_to; i++)
		if (r->direct_to[i] && r->direct_to[i][0])
			err = add_header(h, "to", r->direct_to[i]);
	if (!err && r->metadata_level && r->metadata_level[0])
		err = add_header(h, "metadata-level", r->metadata_level);
	return err;
}

/* The body and its MTOM parts (cids "docN@hienode", kept in cids). */
static hie_err_t build_body(const struct hisp_xdr_request *r, struct hie_buf *b, struct hie_mtom_out_part *parts,
			    char (*cids)[32])
{
	hie_err_t err = hie_buf_addstr(b, "<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb=\"" HISP_NS_XDSB "\">");
	if (!err)
		err = hie_xml_serialize_node(r->sor, b);
	for (size_t i = 0; !err && i < r->ndocs; i++) {
		const struct hisp_xdm_doc *d = &r->docs[i];
		if (!d->entry_id || !d->entry_id[0] || (!d->data && d->len))
			return HIE_EINVAL;
		snprintf(cids[i], sizeof cids[i], "doc%zu@hienode", i + 1);
		parts[i] = (struct hie_mtom_out_part){
			.cid = cids[i], .content_type = part_type(d->mime_type), .data = d->data ? (const void *)d->data : "",
			.len = d->len};
		err = hie_buf_addstr(b, "<xdsb:Document id=\"");
		if (!err)
			err = hie_buf_add_xml(b, d->entry_id, strlen(d->entry_id));
		if (!err)
			err = hie_buf_addf(b,
					   "\"><xop:Include xmlns:xop=\"" HIE_XOP_NS "\" href=\"cid:%s\"/></xdsb:Document>",
					   cids[i]);
	}
	if (!err)
		err = hie_buf_addstr(b, "</xdsb:ProvideAndRegisterDocumentSetRequest>");
	return err;
}

struct sink {
	struct hie_buf *b;
	bool toobig;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	if (hie_buf_add(s->b, p, n) != HIE_OK) {
		s->toobig = true;
		return 0; /* libcurl stops with CURLE_WRITE_ERROR */
	}
	return n;
}

/* POSTs body; *http gets the status (0 when none). HIE_OK when a response was read. */
static hie_err_t post(const char *url, const char *ca_file, int timeout_ms, const struct hie_buf *body,
		      const char *content_type, struct hie_buf *resp, char *ctype, size_t ctlen, long *http,
		      struct hisp_xdr_result *res)
{
	pthread_once(&curl_once, curl_init_once);
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL, *t;
	struct sink sk = {.b = resp};
	char ct[1200];
	hie_err_t err = HIE_OK;
	*http = 0;
	if (!c)
		return HIE_ENOMEM;
	snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
	if (!(t = curl_slist_append(hl, ct)) || !(hl = t, t = curl_slist_append(hl, "Expect:"))) {
		err = HIE_ENOMEM;
		goto out;
	}
	hl = t;
	curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "hienode-xdr");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	/* the EHR's certificate is always checked: documents with PHI go to no one else */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (ca_file && ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sk);
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
	char *cti = NULL;
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &cti);
	snprintf(ctype, ctlen, "%s", cti ? cti : "");
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(res->first_error, sizeof res->first_error, "timeout after %d ms", timeout_ms);
		err = HIE_ETIMEOUT;
	} else if (sk.toobig) {
		snprintf(res->first_error, sizeof res->first_error, "response larger than %u bytes", XDR_RESPONSE_MAX);
		err = HIE_EIO;
	} else if (rc != CURLE_OK) {
		snprintf(res->first_error, sizeof res->first_error, "%s", curl_easy_strerror(rc));
		err = HIE_EIO;
	}
out:
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return err;
}

/* "urn:...:ResponseStatusType:Success" → "Success" (the last segment). */
static void short_status(const char *v, char *out, size_t outlen)
{
	const char *c = strrchr(v, ':');
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%s", c ? c + 1 : v);
	hisp_printable(tmp, out, outlen, '?');
}

static hie_err_t read_registry_response(const xmlNode *rr, struct hisp_xdr_result *res)
{
	struct hie_buf v;
	hie_buf_init(&v, 512);
	hie_err_t err = hie_xml_attr(rr, NULL, "status", &v);
	if (err) {
		hie_buf_free(&v);
		snprintf(res->first_error, sizeof res->first_error, "RegistryResponse without status");
		return HIE_EIO;
	}
	short_status(hie_buf_str(&v), res->status, sizeof res->status);
	const xmlNode *list = hie_xml_child(rr, HISP_NS_RS3, "RegistryErrorList");
	const xmlNode *e1 = list ? hie_xml_child(list, HISP_NS_RS3, "RegistryError") : NULL;
	hie_buf_reset(&v);
	if (e1 && hie_xml_attr(e1, NULL, "errorCode", &v) == HIE_OK)
		hisp_printable(v.data, res->first_error, sizeof res->first_error, '?');
	hie_buf_free(&v);
	return HIE_OK;
}

static hie_err_t read_fault(const xmlNode *f, struct hisp_xdr_result *res)
{
	const xmlNode *code = hie_xml_child(f, NS_SOAP12, "Code");
	const xmlNode *val = code ? hie_xml_child(code, NS_SOAP12, "Value") : NULL;
	const xmlNode *reason = hie_xml_child(f, NS_SOAP12, "Reason");
	const xmlNode *text = reason ? hie_xml_child(reason, NS_SOAP12, "Text") : NULL;
	struct hie_buf cv, rv;
	hie_buf_init(&cv, 256);
	hie_buf_init(&rv, 512);
	if (val)
		(void)hie_xml_text(val, &cv);
	if (text)
		(void)hie_xml_text(text, &rv);
	const char *c = hie_buf_str(&cv), *colon = strrchr(c, ':');
	const char *local = colon ? colon + 1 : c;
	bool sender = strcmp(local, "Sender") == 0;
	char lc[40], lr[100];
	hisp_printable(local, lc, sizeof lc, '?');
	hisp_printable(hie_buf_str(&rv), lr, sizeof lr, '?');
	snprintf(res->first_error, sizeof res->first_error, "SOAP fault %s: %s", lc, lr);
	snprintf(res->status, sizeof res->status, "Failure");
	hie_buf_free(&cv);
	hie_buf_free(&rv);
	return sender ? HIE_EDENIED : HIE_EIO;
}

/* The first element of the SOAP 1.2 Body of an envelope that hie_soap_parse refused (e.g. no WS-Addressing in
 * a fault): the raw envelope (the MTOM root part) parsed with core_xml. *doc to be freed. */
static const xmlNode *raw_payload(const char *ctype, const struct hie_buf *resp, xmlDoc **doc)
{
	struct hie_mtom *m = NULL;
	const char *env = resp->data;
	size_t len = resp->len;
	*doc = NULL;
	if (strncasecmp(ctype, "multipart/related", 17) == 0) {
		if (hie_mtom_parse(ctype, resp->data, resp->len, NULL, &m) != HIE_OK)
			return NULL;
		env = m->root.data;
		len = m->root.len;
	}
	if (!env || hie_xml_parse(env, len, NULL, doc, NULL) != HIE_OK)
		*doc = NULL;
	hie_mtom_free(m);
	const xmlNode *root = *doc ? xmlDocGetRootElement(*doc) : NULL;
	const xmlNode *body = root && hie_xml_is(root, NS_SOAP12, "Envelope") ? hie_xml_child(root, NS_SOAP12, "Body")
									      : NULL;
	return body ? hie_xml_child(body, NULL, NULL) : NULL;
}

/* Maps what came back. */
static hie_err_t read_response(const char *ctype, const struct hie_buf *resp, long http, struct hisp_xdr_result *res)
{
	struct hie_soap_msg *msg = NULL;
	struct hie_soap_fault f;
	xmlDoc *doc = NULL;
	const xmlNode *payload = NULL;
	hie_err_t err;
	memset(&f, 0, sizeof f);
	if (resp->len && hie_soap_parse(ctype, resp->data, resp->len, NULL, &msg, &f) == HIE_OK)
		payload = msg->payload;
	else if (resp->len)
		payload = raw_payload(ctype, resp, &doc);
	if (payload && hie_xml_is(payload, HISP_NS_RS3, "RegistryResponse")) {
		err = read_registry_response(payload, res);
	} else if (payload && hie_xml_is(payload, NS_SOAP12, "Fault")) {
		err = read_fault(payload, res);
	} else {
		snprintf(res->first_error, sizeof res->first_error, "HTTP %ld%s", http,
			 http >= 200 && http < 300 ? ": not a RegistryResponse" : "");
		err = http >= 400 && http < 500 ? HIE_EDENIED : HIE_EIO;
	}
	hie_soap_msg_free(msg);
	xmlFreeDoc(doc);
	return err;
}

hie_err_t hisp_xdr_send(const char *url, const struct hisp_xdr_request *r, const char *ca_file, int timeout_ms,
			struct hisp_xdr_result *res)
{
	struct hie_buf xml, hdr, body, ct, resp;
	struct hie_mtom_out_part *parts = NULL;
	char (*cids)[32] = NULL;
	char ctype[512] = "";
	long http = 0;
	if (!res)
		return HIE_EINVAL;
	memset(res, 0, sizeof *res);
	if (!url || !url[0] || !r || !r->sor || (r->ndocs && !r->docs) || r->ndocs > HISP_XDM_MAX_DOCS ||
	    (r->ndirect_to && !r->direct_to))
		return HIE_EINVAL;
	if (timeout_ms <= 0)
		timeout_ms = 30000;
	size_t total = 0;
	for (size_t i = 0; i < r->ndocs; i++)
		total += r->docs[i].len;
	if (total > HISP_XDM_MAX_TOTAL)
		return HIE_ETOOBIG;
	hie_buf_init(&xml, 64u << 20);
	hie_buf_init(&hdr, 1u << 20);
	hie_buf_init(&body, total + (72u << 20));
	hie_buf_init(&ct, 2048);
	hie_buf_init(&resp, XDR_RESPONSE_MAX);
	hie_err_t err = HIE_OK;
	parts = calloc(r->ndocs ? r->ndocs : 1, sizeof *parts);
	cids = calloc(r->ndocs ? r->ndocs : 1, sizeof *cids);
	if (!parts || !cids) {
		err = HIE_ENOMEM;
		goto out;
	}
	err = build_headers(r, &hdr);
	if (!err)
		err = build_body(r, &xml, parts, cids);
	struct hie_soap_out o = {.action = HISP_XDR_ACTION,
				 .to = url,
				 .reply_to_anonymous = true,
				 .header_xml = hdr.len ? hdr.data : NULL,
				 .body_xml = xml.data,
				 .body_len = xml.len,
				 .parts = parts,
				 .nparts = r->ndocs,
				 .mtom = true};
	if (!err)
		err = hie_soap_build(&o, &body, &ct);
	if (err)
		goto out;
	err = post(url, ca_file, timeout_ms, &body, hie_buf_str(&ct), &resp, ctype, sizeof ctype, &http, res);
	res->http_status = (int)http;
	if (!err)
		err = read_response(ctype, &resp, http, res);
	hie_log(err ? HIE_LOG_NOTICE : HIE_LOG_INFO,
		"event=hisp.xdr.send message_id=%s documents=%zu http=%ld status=%s result=%s", o.message_id,
		r->ndocs, http, res->status[0] ? res->status : "-", err ? hie_errname(err) : "ok");
out:
	free(parts);
	free(cids);
	hie_buf_free(&xml);
	hie_buf_free(&hdr);
	hie_buf_free(&body);
	hie_buf_free(&ct);
	hie_buf_free(&resp);
	return err;
}
