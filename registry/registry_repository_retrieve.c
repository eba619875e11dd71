/*
 * registry_repository_retrieve.c — ITI-43 Retrieve Document Set (ITI TF-2b 3.43), answered as MTOM.
 *
 * Entry point: registry_repository_retrieve (called by registry_retrieve_handle). The request holds one or
 * more xdsb:DocumentRequest (HomeCommunityId optional, RepositoryUniqueId, DocumentUniqueId). The reply is an
 * xdsb:RetrieveDocumentSetResponse: rs:RegistryResponse (Success, PartialSuccess when some documents were
 * returned and some not, Failure when none) with its RegistryErrorList — XDSUnknownRepositoryId for a
 * RepositoryUniqueId that is not ours, XDSDocumentUniqueIdError for a document we do not hold,
 * XDSRepositoryOutOfResources past REPO_MAX_RETRIEVE_BYTES, XDSRepositoryBusy/XDSRepositoryError when the
 * database fails — then one xdsb:DocumentResponse per returned document whose xdsb:Document is an
 * xop:Include of an MTOM part.
 *
 * All requested documents are read in one statement with a binary-format result: the PGresult holds the raw
 * bytes, the MTOM parts point into it (no copy), and resp->release frees it after the reply is written.
 * The statement itself withholds the content of documents past the byte cap (their size column decides),
 * so an oversized request never pulls the bytes out of the database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

#include "core/core_db.h"
#include "core/core_log.h"
#include "registry/registry_repository.h"
#include "registry/registry_soap.h"

#define XOP_CID_MAX 48

/* One xdsb:DocumentRequest. */
struct item {
	char home[REPO_MAX_ID + 1];
	char repo[REPO_MAX_ID + 1];
	char uid[REPO_MAX_ID + 1];
	bool has_home;
	bool ok;          /* well-formed and addressed to us: looked up */
	int row;          /* row of the result, -1 when not found */
	int part;         /* index in parts, -1 when not returned */
};

/* What the reply points into, freed by resp->release once the reply is written. */
struct held {
	PGresult *res;
	struct hie_mtom_out_part *parts;
	char (*cids)[XOP_CID_MAX];
};

static void release_held(void *arg)
{
	struct held *h = arg;
	if (!h)
		return;
	PQclear(h->res);
	free(h->parts);
	free(h->cids);
	free(h);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Text of child (xdsb, local) of el, trimmed, into out. 0 = present and fits, 1 = absent or empty,
 * 2 = longer than REPO_MAX_ID. -1 = no memory.
 */
static int child_text(const xmlNode *el, const char *local, char out[REPO_MAX_ID + 1])
{
	out[0] = '\0';
	const xmlNode *c = hie_xml_child(el, REGISTRY_NS_XDSB, local);
	if (!c)
		return 1;
	xmlChar *t = xmlNodeGetContent(c);
	if (!t)
		return -1;
	const char *s = (const char *)t;
	size_t len = strlen(s);
	while (len && is_space(s[len - 1]))
		len--;
	while (len && is_space(*s)) {
		s++;
		len--;
	}
	int rc = len == 0 ? 1 : len > REPO_MAX_ID ? 2 : 0;
	if (rc == 0) {
		memcpy(out, s, len);
		out[len] = '\0';
	}
	xmlFree(t);
	return rc;
}

/* Reads one DocumentRequest; a request we cannot serve becomes an entry of r. */
static hie_err_t read_item(const xmlNode *el, size_t n, const char *our_repo, struct item *it,
			   struct registry_response *r)
{
	it->row = it->part = -1;
	int h = child_text(el, "HomeCommunityId", it->home);
	int p = child_text(el, "RepositoryUniqueId", it->repo);
	int u = child_text(el, "DocumentUniqueId", it->uid);
	if (h < 0 || p < 0 || u < 0)
		return HIE_ENOMEM;
	it->has_home = h == 0;
	if (u != 0)
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_DOC_UID, NULL,
					     "DocumentRequest %zu: DocumentUniqueId is %s", n,
					     u == 1 ? "missing" : "longer than 256 bytes");
	if (h == 2)
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_DOC_UID, it->uid,
					     "DocumentRequest %zu: HomeCommunityId is longer than 256 bytes", n);
	if (p != 0)
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_UNKNOWN_REPOSITORY, it->uid,
					     "DocumentRequest %zu: RepositoryUniqueId is %s",
					     n, p == 1 ? "missing" : "longer than 256 bytes");
	if (strcmp(it->repo, our_repo) != 0)
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_UNKNOWN_REPOSITORY, it->uid,
					     "RepositoryUniqueId '%s' is not this repository ('%s')",
					     it->repo, our_repo);
	it->ok = true;
	return HIE_OK;
}

/* PostgreSQL text[] literal of the uniqueIds looked up (every element quoted, " and \ escaped). */
static hie_err_t uid_array(const struct item *items, size_t n, struct hie_buf *b)
{
	hie_err_t err = hie_buf_addstr(b, "{");
	bool first = true;
	for (size_t i = 0; i < n && !err; i++) {
		if (!items[i].ok)
			continue;
		err = hie_buf_addstr(b, first ? "\"" : ",\"");
		first = false;
		for (const char *c = items[i].uid; *c && !err; c++) {
			if (*c == '"' || *c == '\\')
				err = hie_buf_add(b, "\\", 1);
			if (!err)
				err = hie_buf_add(b, c, 1);
		}
		if (!err)
			err = hie_buf_addstr(b, "\"");
	}
	if (!err)
		err = hie_buf_addstr(b, "}");
	return err;
}

/*
 * One statement for every document: rows in byte order of unique_id (COLLATE "C": the order strcmp gives,
 * so the rows can be binary-searched), content NULL for the rows past the byte cap in that order.
 */
static hie_err_t fetch(PGconn *c, const struct item *items, size_t n, const char *repo, PGresult **out)
{
	static const char sql[] =
		"SELECT unique_id, mime_type, size::text, CASE WHEN total <= $3::bigint THEN content END FROM"
		" (SELECT unique_id, mime_type, size, content,"
		"   sum(size) OVER (ORDER BY unique_id COLLATE \"C\") AS total"
		"  FROM repo_documents WHERE unique_id = ANY($1::text[]) AND repository_unique_id = $2) d"
		" ORDER BY unique_id COLLATE \"C\"";
	struct hie_buf arr;
	char cap[24];
	hie_buf_init(&arr, (size_t)n * (2 * REPO_MAX_ID + 3) + 3);
	snprintf(cap, sizeof cap, "%u", REPO_MAX_RETRIEVE_BYTES);
	hie_err_t err = uid_array(items, n, &arr);
	if (!err) {
		const char *v[] = {hie_buf_str(&arr), repo, cap};
		err = hie_db_exec_bin(c, sql, 3, v, NULL, NULL, 1, out);
	}
	hie_buf_free(&arr);
	return err;
}

/* Row whose unique_id is uid (rows sorted bytewise), or -1. */
static int find_row(const PGresult *res, const char *uid)
{
	int lo = 0, hi = PQntuples(res);
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		int c = strcmp(PQgetvalue(res, mid, 0), uid);
		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static hie_err_t lookup(struct registry_service *svc, struct item *items, size_t n, struct held *h,
			struct registry_response *r)
{
	size_t nok = 0;
	for (size_t i = 0; i < n; i++)
		nok += items[i].ok;
	if (!nok)
		return HIE_OK;
	PGconn *c = NULL;
	hie_err_t err = hie_db_acquire(svc->pool, -1, &c);
	if (!err) {
		err = fetch(c, items, n, svc->repository_uid, &h->res);
		hie_db_release(svc->pool, c, false);
	}
	if (err == HIE_EBUSY || err == HIE_ETIMEOUT)
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_BUSY, NULL,
					     "the repository is busy; retry later");
	if (err == HIE_ENOMEM)
		return err;
	if (err)
		return registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_REPOSITORY, NULL,
					     "the repository could not read its documents");
	for (size_t i = 0; i < n; i++)
		if (items[i].ok)
			items[i].row = find_row(h->res, items[i].uid);
	return HIE_OK;
}

/* Turns found rows into MTOM parts, in request order, within the byte cap; the rest become entries of r. */
static hie_err_t assign_parts(struct item *items, size_t n, struct held *h, struct registry_response *r,
			      size_t *nparts, size_t *bytes)
{
	h->parts = calloc(n, sizeof *h->parts);
	h->cids = calloc(n, sizeof *h->cids);
	if (!h->parts || !h->cids)
		return HIE_ENOMEM;
	hie_err_t err = HIE_OK;
	for (size_t i = 0; i < n && !err; i++) {
		struct item *it = &items[i];
		if (!it->ok)
			continue;
		if (it->row < 0) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_DOC_UID, it->uid,
						    "document '%s' is not held by repository '%s'",
						    it->uid, it->repo);
			continue;
		}
		size_t len = PQgetisnull(h->res, it->row, 3) ? 0 : (size_t)PQgetlength(h->res, it->row, 3);
		if (PQgetisnull(h->res, it->row, 3) || len > REPO_MAX_RETRIEVE_BYTES - *bytes) {
			err = registry_response_add(r, REGISTRY_SEV_ERROR, REPO_ERR_OUT_OF_RESOURCES, it->uid,
						    "document '%s' (%s bytes) does not fit in this reply (at most %u "
						    "bytes per retrieve); request it on its own",
						    it->uid, PQgetvalue(h->res, it->row, 2), REPO_MAX_RETRIEVE_BYTES);
			continue;
		}
		*bytes += len;
		it->part = (int)*nparts;
		snprintf(h->cids[*nparts], XOP_CID_MAX, "doc%zu@hienode", *nparts + 1);
		h->parts[*nparts] = (struct hie_mtom_out_part){.cid = h->cids[*nparts],
							       .content_type = "application/octet-stream",
							       .data = PQgetvalue(h->res, it->row, 3),
							       .len = len};
		(*nparts)++;
	}
	return err;
}

static hie_err_t add_elem(struct hie_buf *b, const char *local, const char *text)
{
	hie_err_t err = hie_buf_addf(b, "<xdsb:%s>", local);
	if (!err)
		err = hie_buf_add_xml(b, text, strlen(text));
	if (!err)
		err = hie_buf_addf(b, "</xdsb:%s>", local);
	return err;
}

static hie_err_t build_body(const struct item *items, size_t n, const struct held *h,
			    const struct registry_response *r, size_t nparts, struct hie_buf *b)
{
	enum registry_status st = nparts == 0 ? REGISTRY_STATUS_FAILURE
				  : r->nerrors ? REGISTRY_STATUS_PARTIAL
					       : REGISTRY_STATUS_SUCCESS;
	hie_err_t err = hie_buf_addstr(b, "<xdsb:RetrieveDocumentSetResponse xmlns:xdsb=\"" REGISTRY_NS_XDSB "\">");
	if (!err)
		err = registry_response_build(r, st, b);
	for (size_t i = 0; i < n && !err; i++) {
		const struct item *it = &items[i];
		if (it->part < 0)
			continue;
		err = hie_buf_addstr(b, "<xdsb:DocumentResponse>");
		if (!err && it->has_home)
			err = add_elem(b, "HomeCommunityId", it->home);
		if (!err)
			err = add_elem(b, "RepositoryUniqueId", it->repo);
		if (!err)
			err = add_elem(b, "DocumentUniqueId", it->uid);
		if (!err)
			err = add_elem(b, "mimeType", PQgetvalue(h->res, it->row, 1));
		if (!err)
			err = hie_buf_addf(b,
					   "<xdsb:Document><xop:Include xmlns:xop=\"" HIE_XOP_NS
					   "\" href=\"cid:%s\"/></xdsb:Document></xdsb:DocumentResponse>",
					   h->parts[it->part].cid);
	}
	if (!err)
		err = hie_buf_addstr(b, "</xdsb:RetrieveDocumentSetResponse>");
	return err;
}

hie_err_t registry_repository_retrieve(struct registry_service *svc, const struct hie_soap_msg *req,
				       struct hie_soap_response *resp)
{
	if (!hie_xml_is(req->payload, REGISTRY_NS_XDSB, "RetrieveDocumentSetRequest"))
		return registry_soap_sender_fault(resp, "the body of ITI-43 must be an xdsb:RetrieveDocumentSetRequest");
	size_t n = 0;
	const xmlNode *el;
	HIE_XML_FOREACH(el, req->payload, REGISTRY_NS_XDSB, "DocumentRequest")
		n++;
	if (n == 0)
		return registry_soap_sender_fault(resp, "xdsb:RetrieveDocumentSetRequest holds no xdsb:DocumentRequest");

	struct registry_response r;
	registry_response_init(&r, 0);
	struct item *items = NULL;
	size_t nparts = 0, bytes = 0;
	struct held *h = calloc(1, sizeof *h);
	hie_err_t err = h ? HIE_OK : HIE_ENOMEM;
	if (!err) {
		/* the reply's parts point into h: it lives until the reply is written, whatever happens here */
		resp->release = release_held;
		resp->release_arg = h;
	}
	if (!err && n > REPO_MAX_REQUESTS) {
		err = registry_response_add(&r, REGISTRY_SEV_ERROR, REPO_ERR_OUT_OF_RESOURCES, NULL,
					    "%zu DocumentRequests in one retrieve; at most %u", n, REPO_MAX_REQUESTS);
		n = 0;
	}
	if (!err && n) {
		items = calloc(n, sizeof *items);
		err = items ? HIE_OK : HIE_ENOMEM;
	}
	size_t i = 0;
	if (!err && n)
		HIE_XML_FOREACH(el, req->payload, REGISTRY_NS_XDSB, "DocumentRequest") {
			err = read_item(el, i + 1, svc->repository_uid, &items[i], &r);
			if (err)
				break;
			i++;
		}
	if (!err)
		err = lookup(svc, items, n, h, &r);
	if (!err && n)
		err = assign_parts(items, n, h, &r, &nparts, &bytes);
	if (!err)
		err = build_body(items, n, h, &r, nparts, &resp->body_xml);
	if (!err) {
		resp->parts = h->parts;
		resp->nparts = nparts;
	}
	resp->mtom = true; /* ITI TF-2b 3.43.5: the response is MTOM even when it carries no document */
	hie_log(r.nerrors ? HIE_LOG_NOTICE : HIE_LOG_INFO,
		"event=registry.iti43 requested=%zu returned=%zu bytes=%zu errors=%zu first=%s", n, nparts, bytes,
		r.nerrors, r.n ? r.errs[0].code : "-");
	free(items);
	registry_response_free(&r);
	return err;
}
